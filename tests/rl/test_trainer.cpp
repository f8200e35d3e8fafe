// The trainer end to end on a tiny fresh model: the run directory's files appear, a stopped and resumed run
// gives the same metrics and weights bit for bit as one that never stopped, damaged checkpoints are refused.
#include "aha/rl/trainer.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "../support/error_of.h"
#include "aha/io/file.h"
#include "aha/io/safetensors.h"
#include "aha/rl/run_files.h"

namespace aha::rl {
namespace {

namespace fs = std::filesystem;

// A run directory of this process (parallel test runs on one machine must not share them).
fs::path temp_run(const std::string& name) {
  return fs::temp_directory_path() / (name + "_" + std::to_string(::getpid()));
}

Config tiny_run(const std::string& dir) {
  Config c = parse_config(R"({
    "model": {"architecture": "tiny", "init_seed": 3},
    "data": {"task_params": {"max_operand": 9}, "eval_size": 6, "template": "User: {question}\nAssistant: <think>"},
    "rollout": {"num_generations": 4, "max_new_tokens": 10, "stop": ["</answer>"]},
    "reward": {"functions": [{"name": "format", "params": {"prefix": "<think>"}},
                             {"name": "math_accuracy", "params": {"source": "answer_tag"}}]},
    "grpo": {"beta": 0.01},
    "optim": {"lr": 1e-3},
    "train": {"steps": 4, "prompts_per_step": 3, "micro_batch_size": 5, "eval_every": 2, "save_every": 2},
    "log": {"level": "warn", "file": false, "samples_per_step": 2}
  })",
                          "test");
  c.train.run_dir = dir;
  return c;
}

// One GRPO step of the tiny run, no evaluation, no reference model, no dynamic sampling: for comparing the
// update of two settings from the same model and samples.
Config one_step_run(const std::string& dir) {
  Config c = tiny_run(dir);
  c.train.steps = 1;
  c.train.eval_every = 0;
  c.train.eval_at_start = false;
  c.grpo.beta = 0;
  c.grpo.dynamic_sampling = false;
  return c;
}

// The metrics lines without the timings, one per line (compared as text: gtest cannot print Json).
std::string without_timing(std::vector<Json> v) {
  std::string out;
  for (auto& m : v) {
    for (const char* k : {"rollout_tok_s", "train_tok_s", "step_s"})
      m.erase(k);
    std::vector<std::string> split;
    for (auto it = m.begin(); it != m.end(); ++it)
      if (it.key().starts_with("time/")) split.push_back(it.key());
    for (const std::string& k : split)
      m.erase(k);
    out += m.dump() + "\n";
  }
  return out;
}

reward::Registry builtins() {
  reward::Registry r;
  reward::register_builtins(r);
  return r;
}

TEST(Trainer, RunDirectoryHoldsConfigMetricsSamplesCheckpointsAndPlot) {
  const fs::path dir = temp_run("aha_trainer_files");
  fs::remove_all(dir);
  reward::Registry reg = builtins();
  Trainer t(tiny_run(dir.string()), reg, {.console = false});
  RunSummary s = t.run();
  EXPECT_EQ(s.steps, 4);
  ASSERT_TRUE(s.before.has_value());
  ASSERT_TRUE(s.after.has_value());
  EXPECT_EQ(s.after->prompts, 6);
  for (const char* f : {"config.json", "metrics.jsonl", "samples.jsonl", "plot.png", "checkpoints/latest"})
    EXPECT_TRUE(fs::exists(dir / f)) << f;
  const std::string ckpt = latest_checkpoint(dir.string());
  EXPECT_EQ(fs::path(ckpt).filename().string(), "step-4");
  for (const char* f : {"model/config.json", "model/model.safetensors", "model/tokenizer.json",
                        "ref/config.json", "optimizer.pt", "rng.safetensors", "trainer_state.json"})
    EXPECT_TRUE(fs::exists(fs::path(ckpt) / f)) << f;
  EXPECT_TRUE(fs::exists(dir / "checkpoints/step-2"));  // keep_checkpoints = 2
  std::vector<Json> m = read_metrics((dir / "metrics.jsonl").string());
  ASSERT_EQ(m.size(), 5u);  // the evaluation before training, then one line per step
  EXPECT_EQ(m[0]["step"].get<int>(), 0);
  EXPECT_TRUE(m[0].contains("eval/accuracy"));
  for (const char* k : {"loss",
                        "reward",
                        "reward_std",
                        "rewards/format",
                        "rewards/math_accuracy",
                        "accuracy",
                        "zero_std_frac",
                        "completion_len",
                        "completion_len_max",
                        "truncated_frac",
                        "kl",
                        "entropy",
                        "clip_low",
                        "clip_high",
                        "grad_norm",
                        "lr",
                        "rollout_tok_s",
                        "train_tok_s",
                        "train_pad_frac",
                        "step_s",
                        "expert_imbalance"})
    EXPECT_TRUE(m[1].contains(k)) << k;
  // The time split: its parts (the reference model's forward among them, beta > 0) add up to the step time.
  for (size_t i = 1; i < m.size(); ++i) {
    double sum = 0;
    for (const char* k : {"time/rollout_s", "time/reward_s", "time/ref_s", "time/forward_s",
                          "time/backward_s", "time/sync_s", "time/optimizer_s", "time/other_s"}) {
      ASSERT_TRUE(m[i].contains(k)) << k;
      EXPECT_GE(m[i][k].get<double>(), 0) << k;
      sum += m[i][k].get<double>();
    }
    EXPECT_NEAR(sum, m[i]["step_s"].get<double>(), 1e-6 + 0.001 * m[i]["step_s"].get<double>());
    EXPECT_GT(m[i]["time/rollout_s"].get<double>(), 0);
    EXPECT_GT(m[i]["time/backward_s"].get<double>(), 0);
    EXPECT_GT(m[i]["time/ref_s"].get<double>(), 0);
  }
  EXPECT_TRUE(m[2].contains("eval/accuracy"));
  EXPECT_TRUE(m[4].contains("eval/accuracy"));
  EXPECT_GT(m[1]["entropy"].get<double>(), 0);
  EXPECT_GE(m[1]["kl"].get<double>(), 0);
  EXPECT_TRUE(std::isfinite(m[4]["loss"].get<double>()));
  std::vector<Json> samples = read_metrics((dir / "samples.jsonl").string());
  EXPECT_EQ(samples.size(), 8u);
  EXPECT_TRUE(samples[0].contains("completion"));
  EXPECT_TRUE(samples[0]["rewards"].contains("math_accuracy"));
  // A second fresh run into the same directory is refused rather than overwriting it.
  EXPECT_NE(test::error_of([&] {
              Trainer again(tiny_run(dir.string()), reg, {.console = false});
            }).find("aha train --resume"),
            std::string::npos);
}

TEST(Trainer, ResumedRunMatchesAnUninterruptedOneBitForBit) {
  const fs::path a = temp_run("aha_trainer_straight");
  const fs::path b = temp_run("aha_trainer_resumed");
  fs::remove_all(a);
  fs::remove_all(b);
  reward::Registry reg = builtins();
  {
    Trainer t(tiny_run(a.string()), reg, {.console = false});
    t.run();
  }
  {
    // Stopped after step 1 (as Ctrl-C does: the step finishes, a checkpoint is written), then resumed.
    clear_stop_request();
    Trainer t(tiny_run(b.string()), reg, {.console = false, .on_step = [](const Json& m) {
                                            if (m["step"] == 1) request_stop();
                                          }});
    RunSummary s = t.run();
    EXPECT_TRUE(s.stopped_early);
    EXPECT_EQ(s.steps, 1);
    clear_stop_request();
  }
  {
    Config c = load_run_config(b.string());
    Trainer t(c, reg, {.resume = true, .console = false});
    EXPECT_EQ(t.step_index(), 1);
    RunSummary s = t.run();
    EXPECT_EQ(s.steps, 4);
  }
  const std::string straight = without_timing(read_metrics((a / "metrics.jsonl").string()));
  const std::string resumed = without_timing(read_metrics((b / "metrics.jsonl").string()));
  EXPECT_TRUE(straight == resumed) << "uninterrupted:\n" << straight << "resumed:\n" << resumed;
  EXPECT_TRUE(io::read_file((a / "samples.jsonl").string()) == io::read_file((b / "samples.jsonl").string()));
  // optimizer.pt is a torch archive with a random serialization id, so it is not compared as bytes; the Adam
  // moments it restores are checked through the weights of the steps after the resume.
  for (const char* f : {"model/model.safetensors", "ref/model.safetensors"})
    EXPECT_TRUE(io::read_file((a / "checkpoints/step-4" / f).string()) ==
                io::read_file((b / "checkpoints/step-4" / f).string()))
        << f << " differs";
  fs::remove_all(a);
  fs::remove_all(b);
}

// train.group_by_length fills micro-batches with completions of similar length: less padding, the same update
// (the same per-row terms summed in another order). The routing-bias update is off: it counts padded
// positions.
// The largest difference between two safetensors files' tensors of the same names.
double max_weight_difference(const std::string& path_a, const std::string& path_b) {
  const io::SafetensorsFile a = io::SafetensorsFile::open(path_a), b = io::SafetensorsFile::open(path_b);
  EXPECT_EQ(a.names(), b.names());
  double worst = 0;
  for (const std::string& name : a.names())
    worst = std::max(
        worst, (a.tensor(name).to(at::kDouble) - b.tensor(name).to(at::kDouble)).abs().max().item<double>());
  return worst;
}

TEST(Trainer, GroupByLengthPadsLessAndGivesTheSameUpdate) {
  reward::Registry reg = builtins();
  std::vector<std::string> weights;
  std::vector<double> padding, loss;
  std::vector<fs::path> dirs;
  for (bool grouped : {false, true}) {
    const fs::path dir =
        dirs.emplace_back(temp_run(grouped ? "aha_trainer_grouped" : "aha_trainer_ungrouped"));
    fs::remove_all(dir);
    Config c = one_step_run(dir.string());
    c.train.bias_update_speed = 0;
    c.rollout.num_generations = 8;
    c.train.prompts_per_step = 4;
    // Lengths that differ: a fresh model stops at any of these characters, after 1 to 40 tokens.
    c.rollout.stop = {"a", "e", "1", "2"};
    c.rollout.max_new_tokens = 40;
    c.train.group_by_length = grouped;
    c.optim.lr = 3e-4;  // Adam divides each gradient component by its size: eps keeps rounding noise small
    c.optim.adam_eps = 1e-6;
    Trainer t(c, reg, {.console = false});
    t.run();
    const std::vector<Json> m = read_metrics((dir / "metrics.jsonl").string());
    ASSERT_EQ(m.size(), 1u);
    padding.push_back(m[0]["train_pad_frac"].get<double>());
    loss.push_back(m[0]["loss"].get<double>());
    weights.push_back((dir / "checkpoints/step-1/model/model.safetensors").string());
  }
  EXPECT_LT(padding[1], padding[0] - 0.05) << "grouped " << padding[1] << ", ungrouped " << padding[0];
  EXPECT_NEAR(loss[1], loss[0], 1e-6);
  EXPECT_LT(max_weight_difference(weights[0], weights[1]), 1e-6);
  for (const fs::path& d : dirs)
    fs::remove_all(d);
}

TEST(Trainer, EntropyBonusEntersTheLossInEveryPolicyUpdate) {
  // One step from the same model and samples with entropy_coef 0 and 0.3: the reported loss (token-mean, like
  // the entropy metric) drops by 0.3 x the entropy at mu = 1; at mu = 2 (logits needed in the second pass
  // too) the run completes and the weights differ from those without the bonus.
  reward::Registry reg = builtins();
  for (int64_t mu : {1, 2}) {
    std::vector<double> loss, entropy;
    std::vector<std::string> weights;
    std::vector<fs::path> dirs;
    for (double coef : {0.0, 0.3}) {
      const fs::path dir = dirs.emplace_back(temp_run("aha_trainer_entropy_" + std::to_string(mu) + "_" +
                                                      std::to_string(static_cast<int>(coef * 10))));
      fs::remove_all(dir);
      Config c = one_step_run(dir.string());
      c.grpo.mu = mu;
      c.grpo.entropy_coef = coef;
      Trainer t(c, reg, {.console = false});
      t.run();
      const std::vector<Json> m = read_metrics((dir / "metrics.jsonl").string());
      ASSERT_EQ(m.size(), 1u);
      loss.push_back(m[0]["loss"].get<double>());
      entropy.push_back(m[0]["entropy"].get<double>());
      weights.push_back((dir / "checkpoints/step-1/model/model.safetensors").string());
    }
    EXPECT_NEAR(entropy[1], entropy[0], 1e-6) << "the same samples from the same model";
    EXPECT_GT(entropy[0], 0.1);
    if (mu == 1) {
      EXPECT_NEAR(loss[1], loss[0] - 0.3 * entropy[0], 1e-5);
    }
    EXPECT_GT(max_weight_difference(weights[0], weights[1]), 1e-6)
        << "mu " << mu << ": the bonus changed nothing";
    for (const fs::path& d : dirs)
      fs::remove_all(d);
  }
}

TEST(Trainer, ProfileStepWritesAChromeTraceOfThatStepOnly) {
  const fs::path dir = temp_run("aha_trainer_profile");
  fs::remove_all(dir);
  Config c = one_step_run(dir.string());
  c.train.steps = 2;
  reward::Registry reg = builtins();
  Trainer t(c, reg, {.console = false, .profile_step = 2});
  t.run();
  EXPECT_FALSE(fs::exists(dir / "profile_step1.json"));
  const fs::path trace = dir / "profile_step2.json";
  ASSERT_TRUE(fs::exists(trace));
  const Json j = Json::parse(io::read_file(trace.string()));
  int64_t matmuls = 0, backward = 0;
  ASSERT_TRUE(j.is_array()) << "a Chrome trace: an array of events";
  for (const Json& e : j) {
    const std::string name = e.value("name", "");
    matmuls += name == "aten::mm";
    backward += name.starts_with("autograd::engine::evaluate_function");
  }
  EXPECT_GT(matmuls, 10) << "the rollout's and the update's matrix products";
  EXPECT_GT(backward, 10) << "the update's backward";
  fs::remove_all(dir);
}

TEST(Trainer, AStepWithNoGroupLeftLeavesOutTheFiguresOfTheTrainedBatch) {
  // A fresh model never writes the layout: with the format reward alone every group's rewards agree, dynamic
  // sampling keeps none, and nothing is trained. The step's metrics then hold what was drawn (reward,
  // accuracy, groups 0) but no completion length, entropy or gradient norm of a batch that does not exist
  // (they read 0 before, and the plot dipped to 0).
  reward::Registry reg = builtins();
  const fs::path dir = temp_run("aha_trainer_no_group");
  fs::remove_all(dir);
  Config c = one_step_run(dir.string());
  c.grpo.dynamic_sampling = true;
  c.grpo.max_resample_rounds = 0;
  c.reward.functions.resize(1);
  ASSERT_EQ(c.reward.functions[0].name, "format");
  Trainer t(c, reg, {.console = false});
  t.run();
  const std::vector<Json> m = read_metrics((dir / "metrics.jsonl").string());
  ASSERT_EQ(m.size(), 1u);
  EXPECT_EQ(m[0]["groups"].get<int64_t>(), 0);
  EXPECT_NEAR(m[0]["zero_std_frac"].get<double>(), 1.0, 1e-12);
  EXPECT_TRUE(m[0].contains("reward"));
  EXPECT_TRUE(m[0].contains("accuracy"));
  for (const char* k : {"completion_len", "completion_len_max", "entropy", "grad_norm", "rewards/format"})
    EXPECT_FALSE(m[0].contains(k)) << k;
  EXPECT_TRUE(fs::exists(dir / "plot.png"));
  fs::remove_all(dir);
}

TEST(Trainer, DamagedCheckpointIsRefusedWithTheFileNamed) {
  const fs::path dir = temp_run("aha_trainer_damaged");
  fs::remove_all(dir);
  reward::Registry reg = builtins();
  Config c = tiny_run(dir.string());
  c.train.steps = 1;
  c.train.eval_at_start = false;
  { Trainer(c, reg, {.console = false}).run(); }
  const std::string ckpt = latest_checkpoint(dir.string());
  {
    std::fstream f((fs::path(ckpt) / "optimizer.pt").string(),
                   std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(100);
    f.put('\x7f');
  }
  EXPECT_NE(test::error_of([&] {
              Trainer(c, reg, {.resume = true, .console = false});
            }).find("optimizer.pt does not match its checksum"),
            std::string::npos);
}

}  // namespace
}  // namespace aha::rl
