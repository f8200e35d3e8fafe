// Runs the built `aha` executable as a user would and checks what it prints and its exit status.
#include <ATen/ATen.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <string>

#include "../support/run_cli.h"
#include "aha/core/config_json.h"
#include "aha/io/file.h"
#include "aha/io/safetensors.h"

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::Not;

namespace {

using aha::test::CliRun;
CliRun run(const std::string& args) {
  return aha::test::run_cli(args);
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

TEST(Cli, ForwardWritesLogitsEqualToTransformers) {
  const std::string fixture = std::string(AHA_TEST_DATA) + "/model/yarn_qlora_groups";
  const auto out = (fs::temp_directory_path() / "aha_cli_logits.safetensors").string();
  const CliRun r = run("forward --model " + fixture + " --input " + fixture + "/inputs.json --output " + out);
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_THAT(r.out, HasSubstr("logits [3, 11, 512]"));
  const auto got = aha::io::SafetensorsFile::open(out);
  const at::Tensor want = aha::io::SafetensorsFile::open(fixture + "/expected.safetensors").tensor("logits");
  const at::Tensor keep = got.tensor("attention_mask").to(at::kBool).unsqueeze(-1).expand_as(want);
  EXPECT_LE((got.tensor("logits") - want).abs().masked_select(keep).max().item<double>(), 1e-4);
}

TEST(Cli, ForwardLeftPadsRaggedRowsAndRejectsBadInput) {
  const std::string fixture = std::string(AHA_TEST_DATA) + "/model/plain_no_qlora";
  const auto ids = (fs::temp_directory_path() / "aha_cli_ids.json").string();
  const auto out = (fs::temp_directory_path() / "aha_cli_ragged.safetensors").string();
  aha::io::write_file_atomic(ids, "[[5, 6, 7], [8]]");
  ASSERT_EQ(run("forward --model " + fixture + " --input " + ids + " --output " + out).status, 0);
  const at::Tensor mask = aha::io::SafetensorsFile::open(out).tensor("attention_mask");
  EXPECT_TRUE(at::equal(mask, at::tensor({1, 1, 1, 0, 0, 1}, at::kLong).view({2, 3})));
  aha::io::write_file_atomic(ids, "[[5, 6, 700]]");  // vocab is 512
  const CliRun bad = run("forward --model " + fixture + " --input " + ids + " --output " + out);
  EXPECT_EQ(bad.status, 1);
  EXPECT_THAT(bad.out, HasSubstr("token id out of range [0, 512)"));
  aha::io::write_file_atomic(ids, "[[5, \"x\"]]");
  EXPECT_THAT(run("forward --model " + fixture + " --input " + ids + " --output " + out).out, HasSubstr(ids));
}

TEST(Cli, InfoDescribesAModel) {
  const CliRun r = run("info --model " + std::string(AHA_TEST_DATA) + "/model/yarn_qlora_groups");
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_THAT(r.out, HasSubstr("layer map: D M M"));
  EXPECT_THAT(r.out, HasSubstr("active per token"));
  EXPECT_THAT(r.out, HasSubstr("KV cache per token: 144 values"));
}

TEST(Cli, InitWritesAFreshModelThatLoads) {
  const auto dir = (fs::temp_directory_path() / "aha_cli_init").string();
  fs::remove_all(dir);
  const CliRun r = run("init --config " + std::string(AHA_TEST_DATA) +
                       "/model/plain_no_qlora/config.json --output " + dir + " --seed 3");
  ASSERT_EQ(r.status, 0) << r.out;
  const auto ckpt = aha::io::Checkpoint::open(dir);
  EXPECT_TRUE(ckpt.contains("model.layers.0.mlp.experts.0.gate_proj.weight"));
  // Deterministic for a seed: the same call writes the same weights.
  const at::Tensor w = ckpt.tensor("model.embed_tokens.weight").clone();
  fs::remove_all(dir);
  ASSERT_EQ(run("init --config " + std::string(AHA_TEST_DATA) +
                "/model/plain_no_qlora/config.json --output " + dir + " --seed 3")
                .status,
            0);
  EXPECT_TRUE(at::equal(aha::io::Checkpoint::open(dir).tensor("model.embed_tokens.weight"), w));
}

// A model whose vocabulary fits the bpe_seq test tokenizer, with that tokenizer beside it.
std::string model_with_tokenizer() {
  const auto dir = (fs::temp_directory_path() / "aha_cli_generate_model").string();
  fs::remove_all(dir);
  fs::create_directories(dir);
  const std::string text = std::string(AHA_TEST_DATA) + "/text/bpe_seq";
  aha::Json config = aha::read_json_file(std::string(AHA_TEST_DATA) + "/model/plain_no_qlora/config.json");
  config["vocab_size"] = 1024;
  config["eos_token_id"] = 1;
  aha::io::write_file_atomic(dir + "/source_config.json", config.dump());
  EXPECT_EQ(run("init --config " + dir + "/source_config.json --output " + dir).status, 0);
  fs::copy_file(text + "/tokenizer.json", dir + "/tokenizer.json");
  fs::copy_file(text + "/tokenizer_config.json", dir + "/tokenizer_config.json");
  return dir;
}

TEST(Cli, GenerateStreamsCompletions) {
  const std::string dir = model_with_tokenizer();
  const CliRun one =
      run("generate --model " + dir + " --prompt 'Natalia sold clips' --greedy --max-new-tokens 6");
  ASSERT_EQ(one.status, 0) << one.out;
  EXPECT_THAT(one.out, HasSubstr("tokens, prefill"));
  const CliRun many =
      run("generate --model " + dir + " --prompt 'How many eggs?' -n 3 --max-new-tokens 5 --seed 2");
  ASSERT_EQ(many.status, 0) << many.out;
  EXPECT_THAT(many.out, HasSubstr("--- completion 2"));
  EXPECT_NE(run("generate --model " + dir + " --prompt x --top-p 0").status, 0);
}

TEST(Cli, ConvertRewritesACheckpoint) {
  const auto dir = (fs::temp_directory_path() / "aha_cli_convert").string();
  fs::remove_all(dir);
  const CliRun r = run("convert --model " + std::string(AHA_TEST_DATA) + "/model/fp8_blocks --output " + dir +
                       " --dtype bf16");
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_TRUE(fs::exists(dir + "/config.json"));
  EXPECT_EQ(aha::io::Checkpoint::open(dir).entry("model.layers.0.self_attn.kv_b_proj.weight").dtype,
            aha::io::st::Dtype::BF16);
  EXPECT_NE(run("convert --model /no/such --output " + dir).status, 0);
}

}  // namespace
