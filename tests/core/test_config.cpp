#include "aha/core/config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>

#include "aha/io/file.h"

namespace fs = std::filesystem;
using ::testing::HasSubstr;

namespace {

std::string error_of(std::string_view text, std::vector<std::string> overrides = {}) {
  try {
    aha::parse_config(text, "run.json", overrides);
  } catch (const aha::Error& e) {
    return e.what();
  }
  return "no error";
}

TEST(Config, DefaultsWhenEmpty) {
  const aha::Config c = aha::parse_config("{}", "run.json");
  const aha::Config d;
  EXPECT_EQ(c.optim.lr, d.optim.lr);
  EXPECT_EQ(c.rollout.num_generations, 8);
  EXPECT_EQ(c.grpo.epsilon_high, 0.28);
  ASSERT_EQ(c.reward.functions.size(), 2u);
  EXPECT_EQ(c.reward.functions[1].name, "math_accuracy");
}

TEST(Config, ReadsEverySectionAndKeepsUnsetFields) {
  const aha::Config c = aha::parse_config(R"({
    "model": {"precision": "bf16", "device": "cuda:1"},
    "data": {"source": "jsonl", "path": "gsm8k.jsonl", "template": "{question}"},
    "rollout": {"num_generations": 16, "temperature": 0.7, "stop": ["</answer>"]},
    "reward": {"functions": [{"name": "gsm8k", "weight": 2, "params": {"tolerance": 1e-6}}]},
    "grpo": {"beta": 0.001, "loss_aggregation": "seq-mean-token-mean", "dual_clip": 3},
    "optim": {"lr": 3e-6, "schedule": "cosine"},
    "train": {"steps": 1e3, "run_dir": "/tmp/r"},
    "dist": {"backend": "gloo", "master_port": 29501},
    "log": {"level": "debug"}
  })",
                                          "run.json");
  EXPECT_EQ(c.model.precision, "bf16");
  EXPECT_EQ(c.model.device, "cuda:1");
  EXPECT_EQ(c.data.template_name, "{question}");
  EXPECT_EQ(c.rollout.num_generations, 16);
  EXPECT_DOUBLE_EQ(c.rollout.temperature, 0.7);
  EXPECT_EQ(c.rollout.stop, std::vector<std::string>{"</answer>"});
  ASSERT_EQ(c.reward.functions.size(), 1u);
  EXPECT_EQ(c.reward.functions[0].weight, 2.0);
  EXPECT_EQ(c.reward.functions[0].params["tolerance"], 1e-6);
  EXPECT_EQ(c.grpo.beta, 0.001);
  EXPECT_EQ(c.train.steps, 1000);  // an integral number written as 1e3 is accepted
  EXPECT_EQ(c.dist.master_port, 29501);
  EXPECT_EQ(c.optim.adam_beta2, 0.99);  // untouched default
}

TEST(Config, UnknownKeyNamesPathAndFile) {
  const std::string e = error_of(R"({"optim": {"learning_rate": 1}})");
  EXPECT_THAT(e, HasSubstr("run.json: optim.learning_rate: unknown key"));
  EXPECT_THAT(e, HasSubstr("lr, weight_decay"));  // lists what is known there
  EXPECT_THAT(error_of(R"({"optimizer": {}})"), HasSubstr("run.json: optimizer: unknown key"));
  EXPECT_THAT(error_of(R"({"reward": {"functions": [{"name": "a"}, {"name": "b", "wieght": 1}]}})"),
              HasSubstr("run.json: reward.functions[1].wieght: unknown key"));
}

TEST(Config, WrongTypeNamesPathExpectedAndGot) {
  EXPECT_THAT(error_of(R"({"optim": {"lr": "fast"}})"),
              HasSubstr("run.json: optim.lr: expected a number, got string \"fast\""));
  EXPECT_THAT(error_of(R"({"train": {"steps": 2.5}})"),
              HasSubstr("run.json: train.steps: expected an integer, got number 2.5"));
  EXPECT_THAT(error_of(R"({"data": {"shuffle": 1}})"), HasSubstr("data.shuffle: expected a boolean"));
  EXPECT_THAT(error_of(R"({"rollout": {"stop": "x"}})"), HasSubstr("rollout.stop: expected an array"));
  EXPECT_THAT(error_of(R"({"rollout": {"stop": ["x", 3]}})"),
              HasSubstr("rollout.stop[1]: expected a string"));
  EXPECT_THAT(error_of(R"({"model": []})"), HasSubstr("run.json: model: expected an object"));
  EXPECT_THAT(error_of(R"([])"), HasSubstr("run.json: expected an object"));
  EXPECT_THAT(error_of(R"({"model": {"init_seed": -1}})"),
              HasSubstr("model.init_seed: integer -1 does not fit"));
}

TEST(Config, OutOfRangeNamesPathAndAllowedRange) {
  EXPECT_THAT(error_of(R"({"optim": {"lr": 0}})"),
              HasSubstr("optim.lr: value 0 is out of range: must be > 0"));
  EXPECT_THAT(error_of(R"({"rollout": {"top_p": 1.5}})"),
              HasSubstr("rollout.top_p: value 1.5 is out of range"));
  EXPECT_THAT(error_of(R"({"rollout": {"num_generations": 0}})"), HasSubstr("must be >= 1"));
  EXPECT_THAT(error_of(R"({"model": {"precision": "fp16"}})"),
              HasSubstr("model.precision: value \"fp16\" is not allowed: must be one of fp32|bf16|fp8"));
  EXPECT_THAT(error_of(R"({"dist": {"master_port": 70000}})"), HasSubstr("in [0, 65535]"));
}

TEST(Config, CrossFieldChecks) {
  EXPECT_THAT(error_of(R"({"data": {"source": "jsonl"}})"), HasSubstr("run.json: data.path"));
  EXPECT_THAT(error_of(R"({"grpo": {"dual_clip": 0.5}})"), HasSubstr("grpo.dual_clip"));
  EXPECT_THAT(error_of(R"({"model": {"device": "gpu"}})"), HasSubstr("model.device: expected auto, cpu"));
  EXPECT_THAT(error_of(R"({"rollout": {"num_generations": 1}})"), HasSubstr("rollout.num_generations"));
  EXPECT_EQ(error_of(R"({"rollout": {"num_generations": 1}, "grpo": {"advantage": "dr_grpo"}})"), "no error");
  EXPECT_THAT(error_of(R"({"reward": {"functions": []}})"), HasSubstr("reward.functions"));
}

TEST(Config, SyntaxErrorNamesLineAndColumn) {
  EXPECT_THAT(error_of("{\n  \"optim\": {\n    \"lr\": 1e-6,\n  }\n}"),
              HasSubstr("run.json:4:3: invalid JSON"));
}

TEST(Config, OverridesApplyInOrderWithTypesFromJson) {
  const aha::Config c =
      aha::parse_config(R"({"optim": {"lr": 1e-5}})", "run.json",
                        {"optim.lr=3e-6", "rollout.stop=[\"</answer>\",\"\\n\\n\"]", "data.path=123",
                         "data.source=jsonl", "grpo.mask_truncated=true", "reward.functions[1].weight=0.5",
                         "reward.functions[0].params.mode=strict", "train.steps=10", "train.steps=20"});
  EXPECT_DOUBLE_EQ(c.optim.lr, 3e-6);
  EXPECT_EQ(c.rollout.stop, (std::vector<std::string>{"</answer>", "\n\n"}));
  EXPECT_EQ(c.data.path, "123");  // string fields take the text as written
  EXPECT_TRUE(c.grpo.mask_truncated);
  EXPECT_EQ(c.reward.functions[1].weight, 0.5);
  EXPECT_EQ(c.reward.functions[0].params["mode"], "strict");
  EXPECT_EQ(c.train.steps, 20);
}

TEST(Config, BadOverridesNameTheOverride) {
  EXPECT_THAT(error_of("{}", {"optim.lr=-1"}),
              HasSubstr("--set optim.lr=-1: optim.lr: value -1 is out of range"));
  EXPECT_THAT(error_of("{}", {"optim.lrr=1"}), HasSubstr("--set optim.lrr=1: optim.lrr: unknown key"));
  EXPECT_THAT(error_of("{}", {"optim.lr"}), HasSubstr("expected key.path=value"));
  EXPECT_THAT(error_of("{}", {"train.steps=many"}),
              HasSubstr("train.steps: expected an integer, got string"));
  EXPECT_THAT(error_of("{}", {"reward.functions[5].weight=1"}),
              HasSubstr("reward.functions[5]: index out of range"));
  EXPECT_THAT(error_of("{}", {"optim.lr.x=1"}), HasSubstr("has no field \"x\""));
  EXPECT_THAT(error_of("{}", {"optim..lr=1"}), HasSubstr("empty key"));
  EXPECT_THAT(error_of("{}", {"data.source=jsonl"}), HasSubstr("with --set overrides: data.path"));
}

TEST(Config, WriteThenReadRoundTrips) {
  aha::Config c = aha::parse_config("{}", "x", {"optim.lr=2e-6", "rollout.stop=[\"a\"]", "log.level=warn"});
  const aha::Json j = aha::to_json(c);
  EXPECT_EQ(j["optim"]["lr"], 2e-6);
  EXPECT_EQ(j["data"]["template"], "r1_zero");  // the JSON key, not the member name
  const aha::Config back = aha::parse_config(j.dump(), "round-trip");
  EXPECT_EQ(aha::to_json(back), j);
}

TEST(Config, DescribeListsEveryLeafWithDocAndConstraint) {
  const auto fields = aha::describe_fields(aha::Config{});
  bool saw_lr = false, saw_precision = false;
  for (const auto& f : fields) {
    EXPECT_FALSE(f.doc.empty()) << f.path;
    if (f.path == "optim.lr") {
      saw_lr = true;
      EXPECT_EQ(f.type, "number");
      EXPECT_EQ(f.constraint, "> 0");
    }
    if (f.path == "model.precision") {
      saw_precision = true;
      EXPECT_EQ(f.constraint, "one of fp32|bf16|fp8");
      EXPECT_EQ(f.default_value, "\"fp32\"");
    }
  }
  EXPECT_TRUE(saw_lr && saw_precision);
  EXPECT_GT(fields.size(), 50u);
}

TEST(Config, EmbeddedDefaultAndShippedConfigsLoad) {
  const aha::Config d = aha::load_config("");
  EXPECT_EQ(d.data.task, "arithmetic");
  EXPECT_EQ(aha::parse_json(aha::default_config_text(), "default"),
            aha::read_json_file(std::string(AHA_SOURCE_DIR) + "/configs/default.json"));
  int n = 0;
  for (const auto& entry : fs::directory_iterator(std::string(AHA_SOURCE_DIR) + "/configs")) {
    if (entry.path().extension() != ".json") continue;
    EXPECT_NO_THROW(aha::load_config(entry.path().string())) << entry.path();
    ++n;
  }
  EXPECT_GE(n, 1);
}

TEST(Config, LoadConfigNamesTheFile) {
  const auto p = (fs::temp_directory_path() / "aha_cfg_bad.json").string();
  aha::io::write_file_atomic(p, R"({"train": {"steps": -5}})");
  try {
    aha::load_config(p);
    FAIL();
  } catch (const aha::Error& e) {
    EXPECT_THAT(e.what(), HasSubstr(p + ": train.steps: value -5 is out of range: must be >= 0"));
  }
  EXPECT_THROW(aha::load_config("/no/such/config.json"), aha::Error);
}

}  // namespace
