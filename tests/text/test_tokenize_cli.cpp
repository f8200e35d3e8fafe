// `aha tokenize` run as a user would: ids and pieces, totals, templates, JSONL input and errors.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "../support/run_cli.h"
#include "aha/io/file.h"
#include "aha/text/template.h"
#include "aha/text/tokenizer.h"

namespace fs = std::filesystem;
using ::testing::HasSubstr;

namespace {

const std::string kTok = std::string(AHA_TEST_DATA) + "/text/bpe_seq";

using aha::test::CliRun;
CliRun run(const std::string& args) {
  return aha::test::run_cli(args);
}

TEST(TokenizeCli, PrintsIdsPiecesAndTotal) {
  const auto tok = aha::text::load_tokenizer(kTok);
  const auto ids = tok->encode("Hi <think>\n", true);
  const CliRun r = run("tokenize --tokenizer " + kTok + " --text 'Hi <think>\n' --add-special-tokens");
  ASSERT_EQ(r.status, 0) << r.out;
  // One line per token, "<id right-aligned in 8>  <quoted piece>", then the total.
  std::vector<std::string> lines;
  for (size_t start = 0, end; (end = r.out.find('\n', start)) != std::string::npos; start = end + 1)
    lines.push_back(r.out.substr(start, end - start));
  ASSERT_EQ(lines.size(), ids.size() + 1) << r.out;
  for (size_t i = 0; i < ids.size(); ++i) {
    char id[16];
    std::snprintf(id, sizeof id, "%8lld  \"", static_cast<long long>(ids[i]));
    EXPECT_EQ(lines[i].rfind(id, 0), 0u) << lines[i];
  }
  EXPECT_THAT(r.out, HasSubstr(std::to_string(ids.size()) + " tokens\n"));
  EXPECT_THAT(r.out, HasSubstr("\"<|begin_of_sentence|>\"  (special)"));
  EXPECT_THAT(r.out, HasSubstr("\"\\n\""));  // the newline shown escaped
}

TEST(TokenizeCli, TemplateAndQuiet) {
  const auto tok = aha::text::load_tokenizer(kTok);
  const std::string prompt =
      aha::text::render(aha::text::resolve_template("r1_zero"), {{"question", "2+2?"}});
  const CliRun r =
      run("tokenize --tokenizer " + kTok + "/tokenizer.json --text '2+2?' --template r1_zero -q");
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_EQ(r.out, std::to_string(tok->encode(prompt).size()) + " tokens\n");
}

TEST(TokenizeCli, JsonlInput) {
  const auto path = (fs::temp_directory_path() / "aha_tokenize_cli.jsonl").string();
  aha::io::write_file_atomic(
      path, "{\"question\": \"one two\", \"n\": 1}\n\n{\"question\": \"three\", \"n\": 2}\n");
  const auto tok = aha::text::load_tokenizer(kTok);
  const size_t total = tok->encode("one two").size() + tok->encode("three").size();
  CliRun r = run("tokenize --tokenizer " + kTok + " --input " + path);
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_THAT(r.out, HasSubstr("line 1: " + std::to_string(tok->encode("one two").size()) + " tokens"));
  EXPECT_THAT(r.out, HasSubstr("line 3: "));
  EXPECT_THAT(r.out, HasSubstr("2 texts, " + std::to_string(total) + " tokens"));
  r = run("tokenize --tokenizer " + kTok + " --input " + path + " --template '{question} #{n}' -q");
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_THAT(r.out,
              HasSubstr("2 texts, " +
                        std::to_string(tok->encode("one two #1").size() + tok->encode("three #2").size()) +
                        " tokens"));
  r = run("tokenize --tokenizer " + kTok + " --input " + path + " --field answer");
  EXPECT_EQ(r.status, 1);
  EXPECT_THAT(r.out, HasSubstr(path + ":1: no string field \"answer\""));
  r = run("tokenize --tokenizer " + kTok + " --input " + path + " --template '{answer}'");
  EXPECT_EQ(r.status, 1);
  EXPECT_THAT(r.out, HasSubstr(path + ":1: template \"{answer}\": field \"answer\" is missing"));
  fs::remove(path);
}

TEST(TokenizeCli, ErrorsExitNonZero) {
  CliRun r = run("tokenize --tokenizer /no/such/tokenizer --text hi");
  EXPECT_EQ(r.status, 1);
  EXPECT_THAT(r.out, HasSubstr("aha: error: /no/such/tokenizer: no such file or directory"));
  r = run("tokenize --tokenizer " + kTok);
  EXPECT_EQ(r.status, 1);
  EXPECT_THAT(r.out, HasSubstr("give exactly one of --text and --input"));
  EXPECT_NE(run("tokenize --text hi").status, 0);  // --tokenizer is required
  EXPECT_THAT(run("--help").out, HasSubstr("tokenize"));
}

}  // namespace
