// bench_dist: step time of data-parallel GRPO on CPU with 1 and 2 ranks (Gloo, localhost) for the same
// global batch, and their ratio. The peer is the same trainer in one process, measured in the same run.
//
// Both runs use one config (the tiny preset, `--prompts` prompts x G `--group` completions of up to
// `--tokens` tokens per step) and the `aha` executable: `aha train` for one process with OMP_NUM_THREADS =
// `--threads` (default: every core), `aha launch --nproc-per-node 2 -- aha train` for two ranks with half as
// many each, so both use the same cores. The figure is the median `step_s` in metrics.jsonl over the steps
// after the first (warm-up). The two ranks run twice: gradient buckets all-reduced during the last backward
// pass (dist.overlap, the default) and after it; for each, the median `grad_sync_s` (rank 0's time from the
// end of the backward passes to summed gradients) and the share of buckets started during the backward pass.
// `--bucket-mb` (default 1) splits the tiny model's 9 MB of gradients into several buckets (at the default
// 25 MB it is one bucket, which can only start when the backward pass ends).
//
//   bench_dist [--steps 6] [--prompts 8] [--group 8] [--tokens 24] [--threads N] [--bucket-mb 1] [--aha PATH]
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

namespace fs = std::filesystem;

namespace {

// The median of metric `key` in metrics.jsonl over the steps after the first.
double median_after_first(const fs::path& metrics, const std::string& key = "step_s") {
  std::ifstream in(metrics);
  std::vector<double> s;
  std::string line;
  while (std::getline(in, line)) {
    const auto m = nlohmann::json::parse(line);
    if (m.contains(key) && m["step"].get<int>() > 1) s.push_back(m[key].get<double>());
  }
  if (s.empty()) return 0;
  std::sort(s.begin(), s.end());
  return s[s.size() / 2];
}

int run(const std::string& cmd) {
  std::cout << "$ " << cmd << std::endl;
  return std::system(cmd.c_str());
}

}  // namespace

int main(int argc, char** argv) {
  int steps = 6, prompts = 8, group = 8, tokens = 24;
  double bucket_mb = 1;
  std::string aha = AHA_CLI;
  int threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  CLI::App app{"bench_dist: data-parallel GRPO step time, 1 vs 2 ranks on CPU"};
  app.add_option("--steps", steps, "GRPO steps per run (the first is not counted)");
  app.add_option("--prompts", prompts, "prompts per step (global batch)");
  app.add_option("--group", group, "completions per prompt (G)");
  app.add_option("--tokens", tokens, "max new tokens per completion");
  app.add_option("--threads", threads, "OpenMP threads of the one process (each of 2 ranks: half)");
  app.add_option("--bucket-mb", bucket_mb, "dist.bucket_mb of the 2-rank runs");
  app.add_option("--aha", aha, "the aha executable");
  CLI11_PARSE(app, argc, argv);

  const fs::path dir = fs::temp_directory_path() / ("bench_dist_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  const std::string cfg = (dir / "run.json").string();
  std::ofstream(cfg) << R"({
    "model": {"architecture": "tiny", "init_seed": 3, "device": "cpu"},
    "data": {"task_params": {"max_operand": 9}, "eval_size": 8, "template": "User: {question}\nAssistant: <think>"},
    "rollout": {"num_generations": )"
                     << group << R"(, "max_new_tokens": )" << tokens << R"(, "temperature": 1.2},
    "reward": {"functions": [{"name": "format", "params": {"prefix": "<think>"}},
                             {"name": "regex_match", "params": {"pattern": "[0-4]"}}]},
    "optim": {"lr": 3e-4},
    "train": {"steps": )"
                     << steps << R"(, "prompts_per_step": )" << prompts << R"(, "micro_batch_size": 16,
              "eval_every": 0, "save_every": 0, "eval_at_start": false},
    "log": {"level": "warn", "file": false, "samples_per_step": 0}
  })";
  const std::string common = "train -c '" + cfg + "'";
  const std::string one_env = "OMP_NUM_THREADS=" + std::to_string(threads) + " ";
  const std::string two_env = "OMP_NUM_THREADS=" + std::to_string(std::max(1, threads / 2)) + " ";
  const auto two_ranks = [&](const std::string& name, bool overlap) {
    return run(two_env + "'" + aha + "' launch --nproc-per-node 2 -- aha " + common +
               " --set train.run_dir=" + (dir / name).string() + " --set dist.bucket_mb=" +
               std::to_string(bucket_mb) + " --set dist.overlap=" + (overlap ? "true" : "false") + " > " +
               (dir / (name + ".log")).string() + " 2>&1");
  };
  if (run(one_env + "'" + aha + "' " + common + " --set train.run_dir=" + (dir / "one").string() + " > " +
          (dir / "one.log").string() + " 2>&1") != 0 ||
      two_ranks("two", true) != 0 || two_ranks("two_after", false) != 0) {
    std::cerr << "bench_dist: a run failed; see " << dir << "/*.log\n";
    return 1;
  }
  const double one = median_after_first(dir / "one/metrics.jsonl");
  const double two = median_after_first(dir / "two/metrics.jsonl");
  std::printf("global batch: %d prompts x %d completions, up to %d new tokens; median of steps 2..%d\n",
              prompts, group, tokens, steps);
  std::printf("1 rank : %.3f s/step (%d OpenMP threads)\n2 ranks: %.3f s/step (gloo, localhost, %d each)\n",
              one, threads, two, std::max(1, threads / 2));
  std::printf("speed-up of 2 ranks over 1 process (same machine, %u cores): %.2fx\n",
              std::max(1u, std::thread::hardware_concurrency()), two > 0 ? one / two : 0.0);
  std::printf("gradient all-reduce in %g MB buckets, 2 ranks (rank 0's median over steps 2..%d):\n",
              bucket_mb, steps);
  for (const auto& [name, label] :
       {std::pair{"two", "during the backward pass (dist.overlap=true) "},
        std::pair{"two_after", "after the backward pass  (dist.overlap=false)"}}) {
    const fs::path m = dir / name / "metrics.jsonl";
    std::printf("  %s: %.4f s waited after it, %3.0f%% of buckets started during it, %.3f s/step\n", label,
                median_after_first(m, "grad_sync_s"), 100 * median_after_first(m, "grad_overlap"),
                median_after_first(m));
  }
  fs::remove_all(dir);
  return 0;
}
