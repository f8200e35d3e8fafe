// Runs the built `aha` executable as a user would and checks what it prints and its exit status.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <string>

#include "aha/core/config_json.h"
#include "aha/io/file.h"

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::Not;

namespace {

struct CliRun {
  int status = -1;
  std::string out;  // stdout and stderr together
};

CliRun run(const std::string& args) {
  CliRun r;
  const std::string cmd = std::string("'") + AHA_CLI + "' " + args + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return r;
  std::array<char, 4096> buf{};
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0)
    r.out.append(buf.data(), n);
  const int w = pclose(p);
  r.status = WIFEXITED(w) ? WEXITSTATUS(w) : -1;
  return r;
}

TEST(Cli, NoArgumentsPrintsHelpWithEverySubcommand) {
  const CliRun r = run("");
  EXPECT_EQ(r.status, 0);
  for (const char* sub : {"config", "inspect", "info"})
    EXPECT_THAT(r.out, HasSubstr(sub));
  EXPECT_EQ(run("--help").status, 0);
  EXPECT_THAT(run("config --help").out, HasSubstr("--set"));
}

TEST(Cli, UnknownSubcommandFails) {
  EXPECT_NE(run("trian").status, 0);
}

TEST(Cli, ConfigPrintsResolvedJsonWithOverrides) {
  const CliRun r = run("config --set optim.lr=3e-6 --set rollout.num_generations=4");
  ASSERT_EQ(r.status, 0) << r.out;
  const aha::Json j = aha::Json::parse(r.out);
  EXPECT_EQ(j["optim"]["lr"], 3e-6);
  EXPECT_EQ(j["rollout"]["num_generations"], 4);
  EXPECT_EQ(j["data"]["task"], "arithmetic");  // from the embedded default
}

TEST(Cli, ConfigErrorsNameFileAndPathAndExitNonZero) {
  const auto p = (fs::temp_directory_path() / "aha_cli_bad.json").string();
  aha::io::write_file_atomic(p, R"({"grpo": {"epsilon_lo": 0.2}})");
  const CliRun r = run("config --config " + p);
  EXPECT_EQ(r.status, 1);
  EXPECT_THAT(r.out, HasSubstr("aha: error: " + p + ": grpo.epsilon_lo: unknown key"));
  const CliRun bad_set = run("config --set optim.lr=abc");
  EXPECT_EQ(bad_set.status, 1);
  EXPECT_THAT(bad_set.out, HasSubstr("--set optim.lr=abc: optim.lr: expected a number"));
  EXPECT_NE(run("config --config /no/such.json").status, 0);
}

TEST(Cli, ConfigExplainDocumentsFields) {
  const CliRun r = run("config --explain");
  ASSERT_EQ(r.status, 0);
  EXPECT_THAT(r.out, HasSubstr("grpo.epsilon_high (number) = 0.28"));
  EXPECT_THAT(r.out, HasSubstr("DAPO clip-higher"));
}

TEST(Cli, InfoRunsWithoutAGpuDriver) {
  const CliRun r = run("info");
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_THAT(r.out, HasSubstr("torch 2.11.0"));
  EXPECT_THAT(r.out, HasSubstr("cuda available:"));
}

TEST(Cli, InspectListsTensorsAndReportsBadFiles) {
  const std::string fixture = std::string(AHA_TEST_DATA) + "/safetensors/all_dtypes.safetensors";
  const CliRun r = run("inspect " + fixture);
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_THAT(r.out, HasSubstr("BF16"));
  EXPECT_THAT(r.out, HasSubstr("F8_E4M3"));
  EXPECT_THAT(r.out, HasSubstr("metadata format = pt"));
  const auto bad = (fs::temp_directory_path() / "aha_cli_bad.safetensors").string();
  aha::io::write_file_atomic(bad, "garbage!garbage!");
  const CliRun e = run("inspect " + bad);
  EXPECT_EQ(e.status, 1);
  EXPECT_THAT(e.out, HasSubstr(bad));
  EXPECT_THAT(e.out, Not(HasSubstr("Segmentation")));
}

}  // namespace
