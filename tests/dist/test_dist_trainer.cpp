// Data-parallel GRPO end to end with the `aha` executable on Gloo (localhost, free ports, CPU):
//   - 2 ranks x 3 steps started by `aha launch` end with the parameters of one process running the same
//   global
//     batch with the same seeds (within 1e-6), the same rewards, and only rank 0 writing the run directory;
//   - the same with dynamic sampling (refills decided from every rank's zero-variance groups);
//   - 2 ranks stopped after 2 steps and resumed end where an uninterrupted 2-rank run does, bit for bit;
//   - a rank killed with SIGKILL mid-run makes the other exit with an error naming the failed collective,
//     well within the timeout;
//   - torchrun --no-python starts a 2-rank run (skipped when the venv has no torchrun).
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <ATen/ATen.h>

#include <chrono>
#include <filesystem>
#include <thread>

#include "../support/run_cli.h"
#include "../support/temp_dir.h"
#include "aha/dist/launch.h"
#include "aha/dist/process_group.h"
#include "aha/io/file.h"
#include "aha/io/safetensors.h"
#include "aha/rl/run_files.h"

namespace aha::dist {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

fs::path temp_dir(const std::string& name) {
  return test::fresh_temp_dir(name);
}

// A tiny run: 4 prompts x G 4 per step, micro-batches of 4 (two per rank, the same rows as one process's),
// beta > 0 (the reference model), a held-out evaluation at the end (sharded over ranks). The ranks'
// gradients are summed in another order than one process sums its micro-batches, and AdamW's
// m / (sqrt(v) + eps) turns that rounding (1e-7 relative) in near-zero gradient components into steps of up
// to lr: with lr 1e-3 and adam_eps 1e-6 the largest difference after 3 steps was 1.1e-6 (a few elements of
// 2.3 M above 1e-7), hence lr 3e-4 here.
// `pattern`: a regex_match reward that a fresh model's completions match about half the time, so groups
// have reward variance and the updates are real.
std::string write_config(const fs::path& dir, const std::string& pattern = "[0-4]",
                         const std::string& extra = "") {
  const std::string text = R"({
    "model": {"architecture": "tiny", "init_seed": 3, "device": "cpu"},
    "data": {"task_params": {"max_operand": 9}, "eval_size": 6, "template": "User: {question}\nAssistant: <think>"},
    "rollout": {"num_generations": 4, "max_new_tokens": 10, "stop": ["</answer>"], "temperature": 1.5},
    "reward": {"functions": [{"name": "format", "params": {"prefix": "<think>"}},
                             {"name": "math_accuracy", "params": {"source": "answer_tag"}},
                             {"name": "regex_match", "params": {"pattern": ")" +
                           pattern + R"("}}]},
    "grpo": {"beta": 0.01)" +
                           extra + R"(},
    "optim": {"lr": 3e-4, "adam_eps": 1e-6},
    "train": {"steps": 3, "prompts_per_step": 4, "micro_batch_size": 4, "eval_every": 0, "save_every": 0,
              "eval_at_start": false},
    "log": {"level": "warn", "file": false, "samples_per_step": 2},
    "dist": {"timeout_s": 60}
  })";
  const std::string path = (dir / "run.json").string();
  io::write_file_atomic(path, text);
  return path;
}

// Largest |a - b| over every tensor of two HF checkpoints (they must hold the same names).
double max_difference(const fs::path& a, const fs::path& b) {
  io::Checkpoint ca = io::Checkpoint::open(a.string()), cb = io::Checkpoint::open(b.string());
  EXPECT_EQ(ca.names(), cb.names());
  double worst = 0;
  for (const auto& name : ca.names()) {
    if (!cb.contains(name)) continue;
    at::Tensor x = ca.tensor(name).to(at::kDouble), y = cb.tensor(name).to(at::kDouble);
    worst = std::max(worst, (x - y).abs().max().item<double>());
  }
  return worst;
}

std::vector<Json> metrics_of(const fs::path& run) {
  return rl::read_metrics((run / "metrics.jsonl").string());
}

// Trains one process and two ranks (started by `launch`) on the same config; checks what must agree.
void expect_two_ranks_match_one_process(const std::string& name, const std::string& pattern,
                                        const std::string& extra) {
  if (!backend_available("gloo")) GTEST_SKIP() << "built without the gloo headers (Debian libgloo-dev)";
  const fs::path d = temp_dir(name);
  const std::string cfg = write_config(d, pattern, extra);
  const test::CliRun one =
      test::run_cli("train -c '" + cfg + "' --set train.run_dir=" + (d / "one").string());
  ASSERT_EQ(one.status, 0) << one.out;
  const test::CliRun two = test::run_cli("launch --nproc-per-node 2 -- aha train -c '" + cfg +
                                         "' --set train.run_dir=" + (d / "two").string());
  ASSERT_EQ(two.status, 0) << two.out;

  EXPECT_LE(max_difference(d / "one/checkpoints/step-3/model", d / "two/checkpoints/step-3/model"), 1e-6);
  EXPECT_LE(max_difference(d / "one/checkpoints/step-3/ref", d / "two/checkpoints/step-3/ref"), 1e-6);
  const std::vector<Json> m1 = metrics_of(d / "one"), m2 = metrics_of(d / "two");
  ASSERT_EQ(m1.size(), 3u);
  ASSERT_EQ(m2.size(), 3u);
  double largest_grad = 0;  // real updates, not a comparison of untouched weights
  for (const auto& m : m1)
    if (m.contains("grad_norm")) largest_grad = std::max(largest_grad, m["grad_norm"].get<double>());
  EXPECT_GT(largest_grad, 0.1);
  for (size_t i = 0; i < 3; ++i) {
    // A step that kept no group has no figures of a trained batch (completion length, entropy, ...): on both.
    for (const char* k : {"groups", "completion_len_max"})
      EXPECT_EQ(m1[i].value(k, Json()).dump(), m2[i].value(k, Json()).dump()) << k << " at step " << i + 1;
    for (const char* k : {"reward", "reward_std", "accuracy", "completion_len", "zero_std_frac", "entropy",
                          "kl", "loss", "grad_norm", "rewards/format", "rewards/regex_match"}) {
      ASSERT_EQ(m1[i].contains(k), m2[i].contains(k)) << k << " at step " << i + 1;
      if (m1[i].contains(k)) {
        EXPECT_NEAR(m1[i][k].get<double>(), m2[i][k].get<double>(), 1e-5) << k << " at step " << i + 1;
      }
    }
  }
  EXPECT_NEAR(m1[2]["eval/accuracy"].get<double>(), m2[2]["eval/accuracy"].get<double>(), 1e-12);
  // Rank 0 alone wrote the run directory; the checkpoint step checked that both ranks' weights agree.
  EXPECT_TRUE(fs::exists(d / "two/config.json"));
  EXPECT_NE(two.out.find("finished after 3 steps"), std::string::npos) << two.out;
}

TEST(DistTrainer, TwoRanksEqualOneProcess) {
  expect_two_ranks_match_one_process("dist_equal", "[0-4]", "");
}

// "=" is rarer: after two refill rounds the steps keep 0, 3 and 2 of 4 groups, decided from both ranks'
// flags, so the ranks train on uneven shares and still match one process.
TEST(DistTrainer, TwoRanksEqualOneProcessWithDynamicSampling) {
  expect_two_ranks_match_one_process("dist_equal_dyn", "=",
                                     R"(, "dynamic_sampling": true, "max_resample_rounds": 2)");
}

TEST(DistTrainer, TwoRanksResumeAsIfNeverStopped) {
  if (!backend_available("gloo")) GTEST_SKIP() << "built without the gloo headers (Debian libgloo-dev)";
  const fs::path d = temp_dir("dist_resume");
  const std::string cfg = write_config(d);
  const std::string launch = "launch --nproc-per-node 2 -- aha train ";
  const test::CliRun whole =
      test::run_cli(launch + "-c '" + cfg + "' --set train.run_dir=" + (d / "whole").string());
  ASSERT_EQ(whole.status, 0) << whole.out;
  const test::CliRun first = test::run_cli(
      launch + "-c '" + cfg + "' --set train.steps=2 --set train.run_dir=" + (d / "cut").string());
  ASSERT_EQ(first.status, 0) << first.out;
  const test::CliRun rest =
      test::run_cli(launch + "--resume " + (d / "cut").string() + " --set train.steps=3");
  ASSERT_EQ(rest.status, 0) << rest.out;
  EXPECT_EQ(max_difference(d / "whole/checkpoints/step-3/model", d / "cut/checkpoints/step-3/model"), 0.0);
  const std::vector<Json> a = metrics_of(d / "whole"), b = metrics_of(d / "cut");
  ASSERT_EQ(a.size(), 3u);
  ASSERT_EQ(b.size(), 3u);
  EXPECT_NEAR(a[2]["reward"].get<double>(), b[2]["reward"].get<double>(), 1e-12);
  EXPECT_NEAR(a[2]["loss"].get<double>(), b[2]["loss"].get<double>(), 1e-9);
}

// What a sharded run must agree on with one process: every weight of the policy and the reference within
// 1e-6, and the metrics of every step.
void expect_same_run(const fs::path& a, const fs::path& b, int64_t steps, double tolerance) {
  const std::string step = "checkpoints/step-" + std::to_string(steps);
  EXPECT_LE(max_difference(a / step / "model", b / step / "model"), tolerance) << b;
  EXPECT_LE(max_difference(a / step / "ref", b / step / "ref"), tolerance) << b;
  const std::vector<Json> m1 = metrics_of(a), m2 = metrics_of(b);
  ASSERT_EQ(m1.size(), static_cast<size_t>(steps)) << a;
  ASSERT_EQ(m2.size(), static_cast<size_t>(steps)) << b;
  for (size_t i = 0; i < m1.size(); ++i) {
    EXPECT_EQ(m1[i].value("groups", Json()).dump(), m2[i].value("groups", Json()).dump())
        << b << " step " << i;
    for (const char* k : {"reward", "reward_std", "accuracy", "completion_len", "entropy", "kl", "loss",
                          "grad_norm", "clip_low", "ratio", "rewards/regex_match"}) {
      ASSERT_EQ(m1[i].contains(k), m2[i].contains(k)) << k << " at step " << i + 1 << " of " << b;
      if (m1[i].contains(k)) {
        EXPECT_NEAR(m1[i][k].get<double>(), m2[i][k].get<double>(), tolerance)
            << k << " at step " << i + 1 << " of " << b;
      }
    }
  }
}

// The last step's live bytes of run `run` (mem/params, mem/grads, mem/optimizer) against `aha plan` for its
// layout: within 5%.
void expect_plan_matches(const fs::path& run, const std::string& layout) {
  const test::CliRun plan =
      test::run_cli("plan --model " + (run / "checkpoints/step-5/model").string() + " " + layout + " --json");
  ASSERT_EQ(plan.status, 0) << plan.out;
  const Json p = Json::parse(plan.out).at("plan");
  const Json m = metrics_of(run).back();
  for (const auto& [metric, key] : {std::pair{"mem/params", "params"}, std::pair{"mem/grads", "grads"},
                                    std::pair{"mem/optimizer", "optimizer"}}) {
    const double want = p.at(key).get<double>();
    EXPECT_NEAR(m.at(metric).get<double>(), want, 0.05 * want)
        << metric << " of " << run << " (" << layout << ")";
  }
}

// Sharded data parallelism end to end, 5 steps with dynamic sampling (uneven shares: some steps leave ranks
// without rows, which then run empty micro-batches to keep the per-layer collectives in step) and two policy
// updates per batch (grpo.mu 2: the second pass gathers the weights the first one updated): one process
// against dist.shard=full on 2 and 4 ranks, grads with activation checkpointing on 4 and optimizer on 2;
// a full run stopped after 2 steps resumes bit for bit on 2 ranks, and resharded on 4.
TEST(DistTrainer, ShardedRunsEqualOneProcessAndResumeAtAnyWorldSize) {
  if (!backend_available("gloo")) GTEST_SKIP() << "built without the gloo headers (Debian libgloo-dev)";
  const fs::path d = temp_dir("dist_sharded");
  const std::string cfg =
      write_config(d, "=", R"(, "dynamic_sampling": true, "max_resample_rounds": 2, "mu": 2)");
  const std::string five = "' --set train.steps=5 --set train.run_dir=";
  auto launch = [&](int ranks, const std::string& run, const std::string& extra) {
    const test::CliRun r =
        test::run_cli("launch --nproc-per-node " + std::to_string(ranks) + " -- aha train -c '" + cfg + five +
                      (d / run).string() + " " + extra);
    EXPECT_EQ(r.status, 0) << r.out;
    return r;
  };
  const test::CliRun one = test::run_cli("train -c '" + cfg + five + (d / "one").string());
  ASSERT_EQ(one.status, 0) << one.out;
  launch(2, "full2", "--set dist.shard=full");
  launch(4, "full4", "--set dist.shard=full");
  launch(4, "grads4", "--set dist.shard=grads --set train.activation_checkpointing=true");
  launch(2, "opt2", "--set dist.shard=optimizer");
  for (const char* run : {"full2", "full4", "grads4", "opt2"})
    expect_same_run(d / "one", d / run, 5, 1e-6);
  // Some step kept groups on fewer ranks than there are (so empty micro-batches ran), and one trained.
  const std::vector<Json> m = metrics_of(d / "one");
  bool uneven = false, trained = false;
  for (const auto& x : m) {
    uneven |= x.value("groups", 0) % 4 != 0;
    trained |= x.contains("grad_norm") && x["grad_norm"].get<double>() > 0.1;
  }
  EXPECT_TRUE(uneven && trained);
  // Per rank: a half and a quarter of one process's bytes of fp32 weights, gradients and AdamW moments.
  const Json last1 = metrics_of(d / "one").back(), last2 = metrics_of(d / "full2").back(),
             last4 = metrics_of(d / "full4").back();
  for (const char* k : {"mem/params", "mem/grads", "mem/optimizer"}) {
    const double whole = last1.at(k).get<double>();
    EXPECT_NEAR(last2.at(k).get<double>(), whole / 2, whole * 0.01) << k;
    EXPECT_NEAR(last4.at(k).get<double>(), whole / 4, whole * 0.01) << k;
  }
  EXPECT_GT(last2.at("weight_sync_s").get<double>(), 0);
  expect_plan_matches(d / "one", "");
  expect_plan_matches(d / "full2", "--world-size 2 --shard full");
  expect_plan_matches(d / "full4", "--world-size 4 --shard full");
  expect_plan_matches(d / "grads4", "--world-size 4 --shard grads");
  expect_plan_matches(d / "opt2", "--world-size 2 --shard optimizer");

  const std::string resume = "launch --nproc-per-node ";
  test::CliRun cut = test::run_cli(resume + "2 -- aha train -c '" + cfg +
                                   "' --set train.steps=2 --set train.run_dir=" + (d / "cut").string() +
                                   " --set dist.shard=full");
  ASSERT_EQ(cut.status, 0) << cut.out;
  fs::copy(d / "cut", d / "cut4", fs::copy_options::recursive);
  const test::CliRun same =
      test::run_cli(resume + "2 -- aha train --resume " + (d / "cut").string() + " --set train.steps=5");
  ASSERT_EQ(same.status, 0) << same.out;
  expect_same_run(d / "full2", d / "cut", 5, 0.0);
  const test::CliRun four =
      test::run_cli(resume + "4 -- aha train --resume " + (d / "cut4").string() + " --set train.steps=5");
  ASSERT_EQ(four.status, 0) << four.out;
  expect_same_run(d / "one", d / "cut4", 5, 1e-6);
  // The checkpoint holds each rank's slices and their manifests besides the whole HF model.
  for (int r = 0; r < 4; ++r)
    EXPECT_TRUE(fs::exists(d / "cut4/checkpoints/step-5/shards" / ("rank-" + std::to_string(r) + ".json")));
  // An unsharded run does not resume a sharded checkpoint (its optimizer state is elsewhere): it says so.
  const test::CliRun wrong =
      test::run_cli("train --resume " + (d / "cut").string() + " --set train.steps=6 --set dist.shard=none");
  EXPECT_NE(wrong.status, 0);
  EXPECT_NE(wrong.out.find("was written with dist.shard=full"), std::string::npos) << wrong.out;
}

// Expert parallelism end to end (the tiny model's 8 routed experts split over 2 or 4 ranks), 5 steps with
// dynamic sampling and grpo.mu 2 against one process: unsharded on 2 ranks (each its own half of the
// experts), full sharding with 2-way expert parallelism on 4 ranks (2 replicas of each half), grads +
// checkpointing with 4-way on 4; a full run stopped after 2 steps resumes with 4-way instead of 2-way expert
// parallelism, and an unsharded one only with its own layout.
TEST(DistTrainer, ExpertParallelRunsEqualOneProcessAndReshard) {
  if (!backend_available("gloo")) GTEST_SKIP() << "built without the gloo headers (Debian libgloo-dev)";
  const fs::path d = temp_dir("dist_expert_parallel");
  const std::string cfg =
      write_config(d, "=", R"(, "dynamic_sampling": true, "max_resample_rounds": 2, "mu": 2)");
  auto launch = [&](int ranks, const std::string& args) {
    const test::CliRun r =
        test::run_cli("launch --nproc-per-node " + std::to_string(ranks) + " -- aha train " + args);
    EXPECT_EQ(r.status, 0) << r.out;
    return r;
  };
  const std::string five = "-c '" + cfg + "' --set train.steps=5 --set train.run_dir=";
  const test::CliRun one = test::run_cli("train " + five + (d / "one").string());
  ASSERT_EQ(one.status, 0) << one.out;
  launch(2, five + (d / "ep2").string() + " --set dist.expert_parallel=2");
  launch(4, five + (d / "ep2full4").string() + " --set dist.expert_parallel=2 --set dist.shard=full");
  launch(
      4,
      five + (d / "ep4grads").string() +
          " --set dist.expert_parallel=4 --set dist.shard=grads --set train.activation_checkpointing=true");
  for (const char* run : {"ep2", "ep2full4", "ep4grads"})
    expect_same_run(d / "one", d / run, 5, 1e-6);
  expect_plan_matches(d / "ep2", "--world-size 2 --expert-parallel 2");
  expect_plan_matches(d / "ep2full4", "--world-size 4 --expert-parallel 2 --shard full");
  expect_plan_matches(d / "ep4grads", "--world-size 4 --expert-parallel 4 --shard grads");
  const std::string two = "-c '" + cfg + "' --set train.steps=2 --set train.run_dir=";
  launch(4, two + (d / "cut").string() + " --set dist.expert_parallel=2 --set dist.shard=full");
  launch(4, "--resume " + (d / "cut").string() + " --set train.steps=5 --set dist.expert_parallel=4");
  expect_same_run(d / "one", d / "cut", 5, 1e-6);
  launch(2, two + (d / "plain").string() + " --set dist.expert_parallel=2");
  const test::CliRun other =
      test::run_cli("launch --nproc-per-node 4 -- aha train --resume " + (d / "plain").string() +
                    " --set train.steps=5 --set dist.expert_parallel=4");
  EXPECT_NE(other.status, 0);
  EXPECT_NE(other.out.find("resumes only with the same layout"), std::string::npos) << other.out;
  launch(2, "--resume " + (d / "plain").string() + " --set train.steps=5");
  expect_same_run(d / "ep2", d / "plain", 5, 0.0);
}

// Starts `aha` with extra environment variables, its output into `log`.
pid_t spawn_aha(const std::vector<std::string>& args,
                const std::vector<std::pair<std::string, std::string>>& env, const std::string& log) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    for (const auto& [k, v] : env)
      ::setenv(k.c_str(), v.c_str(), 1);
    FILE* f = std::fopen(log.c_str(), "w");
    ::dup2(::fileno(f), 1);
    ::dup2(::fileno(f), 2);
    std::vector<char*> argv{const_cast<char*>(AHA_CLI)};
    for (const auto& a : args)
      argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    ::execv(AHA_CLI, argv.data());
    ::_exit(127);
  }
  return pid;
}

// Kills rank 1 of a 2-rank run with SIGKILL after the first step; rank 0 must exit with an error naming the
// failed collective, well within the timeout (`shard`: dist.shard, whose collectives run inside the passes).
void expect_killed_rank_is_reported(const std::string& shard) {
  if (!backend_available("gloo")) GTEST_SKIP() << "built without the gloo headers (Debian libgloo-dev)";
  const fs::path d = temp_dir("dist_kill_" + shard);
  const std::string cfg = write_config(d);
  const std::string port = std::to_string(free_port());
  pid_t pids[2];
  for (int r = 0; r < 2; ++r)
    pids[r] = spawn_aha(
        {"train", "-c", cfg, "--set", "train.run_dir=" + (d / "run").string(), "--set", "train.steps=100000",
         "--set", "dist.timeout_s=20", "--set", "log.level=info", "--set", "dist.shard=" + shard},
        {{"RANK", std::to_string(r)},
         {"WORLD_SIZE", "2"},
         {"MASTER_ADDR", "127.0.0.1"},
         {"MASTER_PORT", port},
         {"OMP_NUM_THREADS", "1"}},
        (d / ("rank" + std::to_string(r) + ".log")).string());
  // Wait for the first step on rank 0, then kill rank 1 without warning.
  const auto t0 = Clock::now();
  while (metrics_of(d / "run").empty() && std::chrono::duration<double>(Clock::now() - t0).count() < 60)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  ASSERT_FALSE(metrics_of(d / "run").empty()) << io::read_file((d / "rank0.log").string());
  ::kill(pids[1], SIGKILL);
  const auto t_kill = Clock::now();
  int status = 0;
  pid_t got = 0;
  while ((got = ::waitpid(pids[0], &status, WNOHANG)) == 0 &&
         std::chrono::duration<double>(Clock::now() - t_kill).count() < 40)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  const double seconds = std::chrono::duration<double>(Clock::now() - t_kill).count();
  if (got == 0) ::kill(pids[0], SIGKILL);
  ::waitpid(pids[1], nullptr, 0);
  if (got == 0) ::waitpid(pids[0], nullptr, 0);
  ASSERT_EQ(got, pids[0]) << "rank 0 still running " << seconds << " s after rank 1 was killed";
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 1);
  EXPECT_LT(seconds, 25);  // the timeout is 20 s; a closed connection is usually noticed at once
  const std::string log = io::read_file((d / "rank0.log").string());
  EXPECT_NE(log.find("aha: error: collective"), std::string::npos) << log;
  EXPECT_NE(log.find("failed on rank 0 of 2 (gloo"), std::string::npos) << log;
}

TEST(DistTrainer, AKilledRankMakesTheOtherExitWithAClearError) {
  expect_killed_rank_is_reported("none");
}

TEST(DistTrainer, AKilledRankOfAShardedRunMakesTheOtherExitWithAClearError) {
  expect_killed_rank_is_reported("full");
}

TEST(DistTrainer, TorchrunStartsATwoRankRun) {
  if (!backend_available("gloo")) GTEST_SKIP() << "built without the gloo headers (Debian libgloo-dev)";
  if (!fs::exists(AHA_TORCHRUN)) GTEST_SKIP() << "no torchrun at " << AHA_TORCHRUN;
  const fs::path d = temp_dir("dist_torchrun");
  const std::string cfg = write_config(d);
  const std::string cmd = std::string("OMP_NUM_THREADS=1 '") + AHA_TORCHRUN +
                          "' --no-python --nproc-per-node 2 --master-port " + std::to_string(free_port()) +
                          " '" + AHA_CLI + "' train -c '" + cfg +
                          "' --set train.run_dir=" + (d / "run").string() + " --set train.steps=2 2>&1";
  FILE* p = ::popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0)
    out.append(buf, n);
  const int w = ::pclose(p);
  ASSERT_TRUE(WIFEXITED(w) && WEXITSTATUS(w) == 0) << out;
  EXPECT_EQ(metrics_of(d / "run").size(), 2u);
  EXPECT_TRUE(fs::exists(d / "run/checkpoints/step-2/model"));
}

}  // namespace
}  // namespace aha::dist
