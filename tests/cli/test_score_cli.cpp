// aha score: per-reward summaries of a JSONL file of completions, per-sample output, and errors that name the
// file and line.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>

#include "../support/run_cli.h"
#include "aha/io/file.h"
#include "aha/io/jsonl.h"

namespace fs = std::filesystem;
using ::testing::HasSubstr;

namespace {

const std::string kData = std::string(AHA_TEST_DATA) + "/reward/";

// A file in the temp directory, named after this process too (other builds' tests may run at the same time).
std::string temp_file(const std::string& name, const std::string& text) {
  const auto p = (fs::temp_directory_path() / (std::to_string(getpid()) + "_" + name)).string();
  aha::io::write_file_atomic(p, text);
  return p;
}

TEST(ScoreCli, SummarisesEachReward) {
  const auto r =
      aha::test::run_cli("score --rewards " + kData + "rewards.json --input " + kData + "samples.jsonl");
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_THAT(r.out, HasSubstr("scored 5 samples from " + kData + "samples.jsonl with 3 rewards"));
  EXPECT_THAT(r.out,
              HasSubstr("reward                    weight      mean       std       min       max  scored  "
                        "skipped  failed"));
  EXPECT_THAT(r.out,
              HasSubstr("format                      1.00    0.8000    0.4000    0.0000    1.0000       5   "
                        "     0       0"));
  EXPECT_THAT(r.out,
              HasSubstr("math_accuracy               1.00    0.5000    0.5000    0.0000    1.0000       4   "
                        "     1       0"));
  EXPECT_THAT(r.out,
              HasSubstr("language_consistency        0.50    0.8000    0.4000    0.0000    1.0000       5"));
  EXPECT_THAT(r.out,
              HasSubstr("total                               1.6250    1.0232    0.0000    2.5000       4   "
                        "     1"));
}

TEST(ScoreCli, TakesARunConfigAndWritesPerSampleScores) {
  const auto config = temp_file("aha_score_run.json", R"({"reward": {"functions": [
      {"name": "gsm8k", "params": {"field": "solution"}}, {"name": "format"}, {"name": "format",
       "params": {"mode": "strict"}}, {"name": "overlong", "params": {"max_length": 20, "cache": 10}}]}})");
  const auto input =
      temp_file("aha_score_in.jsonl",
                "{\"completion\": \"<think>\\nx\\n</think>\\n<answer>\\n12\\n</answer>\", "
                "\"solution\": \"6+6 = 12\\n#### 12\", \"completion_tokens\": 15, \"id\": 7}\n"
                "\n"
                "{\"completion\": \"<think>x</think><answer>13</answer>\", \"solution\": \"#### 12\"}\n");
  const auto output =
      (fs::temp_directory_path() / (std::to_string(getpid()) + "_aha_score_out.jsonl")).string();
  const auto r = aha::test::run_cli("score -r " + config + " -i " + input + " -o " + output);
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_THAT(r.out, HasSubstr("format#1"));
  EXPECT_THAT(r.out, HasSubstr("per-sample scores -> " + output));
  const auto rows = aha::io::read_jsonl(output);
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].value["id"], 7);
  EXPECT_EQ(rows[0].value["line"], 1);
  EXPECT_EQ(rows[0].value["scores"],
            aha::Json({{"gsm8k", 1.0}, {"format#1", 1.0}, {"format#2", 1.0}, {"overlong", -0.5}}));
  EXPECT_EQ(rows[0].value["total"], 2.5);
  EXPECT_EQ(rows[1].value["id"], 3);  // the line number
  EXPECT_EQ(rows[1].value["scores"],
            aha::Json({{"gsm8k", 0.0}, {"format#1", 1.0}, {"format#2", 0.0}, {"overlong", 0.0}}));
}

TEST(ScoreCli, PluginsAndProcessesFromTheCommandLine) {
  const auto config =
      temp_file("aha_score_ext.json",
                std::string(R"([{"name": "reasoning_steps", "plugin": ")") + AHA_TEST_PLUGIN +
                    R"(", "params": {"target": 1}}, {"name": "process", "params": {"argv": ["python3", ")" +
                    AHA_SOURCE_DIR + R"(/examples/reward_process/reward.py"], "timeout_s": 10}}])");
  const auto r = aha::test::run_cli("score --rewards " + config + " --input " + kData + "samples.jsonl");
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_THAT(r.out,
              HasSubstr("reasoning_steps             1.00    0.6000    0.4899    0.0000    1.0000       5"));
  EXPECT_THAT(r.out,
              HasSubstr("process                     1.00    0.5000    0.5000    0.0000    1.0000       4   "
                        "     1       0"));
}

TEST(ScoreCli, ErrorsNameTheFileAndLine) {
  const std::string rewards = kData + "rewards.json";
  auto fails_with = [&](const std::string& args, const std::string& message) {
    const auto r = aha::test::run_cli(args);
    EXPECT_EQ(r.status, 1) << args << "\n" << r.out;
    EXPECT_THAT(r.out, HasSubstr(message)) << args;
  };
  const auto no_completion =
      temp_file("aha_score_bad1.jsonl", "{\"completion\": \"a\"}\n{\"prompt\": \"b\"}\n");
  fails_with("score -r " + rewards + " -i " + no_completion, no_completion + ":2: no \"completion\" field");
  const auto bad_tokens =
      temp_file("aha_score_bad2.jsonl",
                "{\"completion\": \"a\"}\n\n{\"completion\": \"b\", \"completion_tokens\": -1}\n");
  fails_with("score -r " + rewards + " -i " + bad_tokens,
             bad_tokens + ":3: completion_tokens: expected a non-negative integer, got -1");
  const auto bad_json = temp_file("aha_score_bad3.jsonl", "{\"completion\": \"a\"}\n{\"completion\": \n");
  fails_with("score -r " + rewards + " -i " + bad_json, bad_json + ":2");
  const auto bad_fields = temp_file("aha_score_bad4.jsonl", "{\"completion\": \"a\", \"fields\": [1]}\n");
  fails_with("score -r " + rewards + " -i " + bad_fields, bad_fields + ":1: fields: expected an object");
  const auto unknown =
      temp_file("aha_score_unknown.json", R"({"functions": [{"name": "format"}, {"name": "acc"}]})");
  fails_with("score -r " + unknown + " -i " + kData + "samples.jsonl",
             "reward.functions[1]: unknown reward \"acc\"");
  const auto not_rewards = temp_file("aha_score_notrewards.json", R"({"optim": {"lr": 1e-6}})");
  fails_with("score -r " + not_rewards + " -i " + kData + "samples.jsonl",
             not_rewards + ": expected a run config (with \"reward\"), a reward section");
  const auto typo = temp_file("aha_score_typo.json", R"({"functions": [{"nmae": "format"}]})");
  fails_with("score -r " + typo + " -i " + kData + "samples.jsonl",
             typo + ": functions[0].nmae: unknown key");
  EXPECT_NE(aha::test::run_cli("score -r " + rewards + " -i /no/such.jsonl").status, 0);
}

}  // namespace
