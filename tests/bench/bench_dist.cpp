// bench_dist: data-parallel GRPO on CPU (Gloo, localhost) for one global batch, laid out several ways: step
// time and this rank's bytes of weights, gradients and AdamW moments at 1, 2 and 4 ranks for dist.shard none,
// optimizer and full, with expert parallelism (and its token all-to-all time), and the gradient all-reduce
// overlapped with the backward pass or not. The peer is the same trainer in one process, measured in the same
// run: speed-ups are its step time over each layout's.
//
// Every run uses one config (the tiny preset, `--prompts` prompts x G `--group` completions of up to
// `--tokens` tokens per step) and the `aha` executable (`aha train` for one process, `aha launch
// --nproc-per-node W -- aha train` for W ranks). The process gets OMP_NUM_THREADS = `--threads` (default:
// every core), each of W ranks max(1, threads / W), so all layouts share the same cores (with more ranks than
// cores they share them: the step times of 4 ranks on a 2-core machine are not a scaling figure). Figures are
// medians over the steps after the first (warm-up), from metrics.jsonl: step_s, mem/params, mem/grads,
// mem/optimizer (rank 0's live bytes), weight_sync_s (full), expert_exchange_s (expert parallelism),
// grad_sync_s and grad_overlap (unsharded). `--bucket-mb` (default 1) splits the tiny model's 9 MB of
// gradients into several all-reduce buckets (at the default 25 MB it is one, which can only start when the
// backward pass ends).
//
//   bench_dist [--steps 6] [--prompts 8] [--group 8] [--tokens 24] [--threads N] [--bucket-mb 1]
//              [--layouts 1:none,2:none,...] [--aha PATH]
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

namespace fs = std::filesystem;

namespace {

// The median of metric `key` in metrics.jsonl over the steps after the first (-1: the metric is absent).
double median_after_first(const fs::path& metrics, const std::string& key = "step_s") {
  std::ifstream in(metrics);
  std::vector<double> s;
  std::string line;
  while (std::getline(in, line)) {
    const auto m = nlohmann::json::parse(line);
    if (m.contains(key) && m["step"].get<int>() > 1) s.push_back(m[key].get<double>());
  }
  if (s.empty()) return -1;
  std::sort(s.begin(), s.end());
  return s[s.size() / 2];
}

int run(const std::string& cmd) {
  std::cout << "$ " << cmd << std::endl;
  return std::system(cmd.c_str());
}

std::string mib(double bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f", bytes / (1 << 20));
  return buf;
}

// "ranks:shard[:epN]", e.g. "4:full:ep2".
struct Layout {
  int ranks = 1;
  std::string shard = "none";
  int experts = 1;
  bool overlap = true;
  std::string name() const {
    return std::to_string(ranks) + "_" + shard + "_ep" + std::to_string(experts) + (overlap ? "" : "_after");
  }
};

Layout parse_layout(const std::string& s) {
  Layout l;
  std::stringstream in(s);
  std::string part;
  std::getline(in, part, ':');
  l.ranks = std::stoi(part);
  if (std::getline(in, part, ':')) l.shard = part;
  if (std::getline(in, part, ':') && part.rfind("ep", 0) == 0) l.experts = std::stoi(part.substr(2));
  return l;
}

}  // namespace

int main(int argc, char** argv) {
  int steps = 6, prompts = 8, group = 8, tokens = 24;
  double bucket_mb = 1;
  std::string aha = AHA_CLI;
  std::string layouts = "1:none,2:none,2:optimizer,2:full,4:none,4:optimizer,4:full,2:none:ep2,4:full:ep2";
  int threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  CLI::App app{"bench_dist: GRPO step time and bytes per rank on CPU, sharded and expert-parallel layouts"};
  app.add_option("--steps", steps, "GRPO steps per run (the first is not counted)");
  app.add_option("--prompts", prompts, "prompts per step (global batch)");
  app.add_option("--group", group, "completions per prompt (G)");
  app.add_option("--tokens", tokens, "max new tokens per completion");
  app.add_option("--threads", threads, "OpenMP threads of the one process (each of W ranks: threads / W)");
  app.add_option("--bucket-mb", bucket_mb, "dist.bucket_mb of the unsharded runs");
  app.add_option("--layouts", layouts, "comma-separated ranks:shard[:epN] (the first is the peer)");
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

  std::vector<Layout> all;
  {
    std::stringstream in(layouts);
    std::string item;
    while (std::getline(in, item, ','))
      all.push_back(parse_layout(item));
  }
  // The overlap comparison: 2 unsharded ranks with the all-reduce after the backward pass.
  Layout after = parse_layout("2:none");
  after.overlap = false;
  all.push_back(after);
  for (const Layout& l : all) {
    const int each = std::max(1, threads / l.ranks);
    const std::string env = "OMP_NUM_THREADS=" + std::to_string(each) + " ";
    const std::string train = "train -c '" + cfg + "' --set train.run_dir=" + (dir / l.name()).string() +
                              " --set dist.shard=" + l.shard +
                              " --set dist.expert_parallel=" + std::to_string(l.experts) +
                              " --set dist.bucket_mb=" + std::to_string(bucket_mb) +
                              " --set dist.overlap=" + (l.overlap ? "true" : "false");
    const std::string cmd =
        l.ranks == 1 && l.experts == 1 && l.shard == "none"
            ? env + "'" + aha + "' " + train
            : env + "'" + aha + "' launch --nproc-per-node " + std::to_string(l.ranks) + " -- aha " + train;
    if (run(cmd + " > " + (dir / (l.name() + ".log")).string() + " 2>&1") != 0) {
      std::cerr << "bench_dist: the run " << l.name() << " failed; see " << dir / (l.name() + ".log") << "\n";
      return 1;
    }
  }

  std::printf(
      "\nglobal batch: %d prompts x %d completions, up to %d new tokens; medians of steps 2..%d; %d "
      "threads in all (%u cores)\n",
      prompts, group, tokens, steps, threads, std::max(1u, std::thread::hardware_concurrency()));
  std::printf("%-5s %-9s %-3s %8s %9s | %9s %9s %9s %10s | %9s %9s\n", "ranks", "shard", "EP", "s/step",
              "vs peer", "params", "grads", "AdamW", "MiB/rank", "wsync s", "a2a s");
  const double peer = median_after_first(dir / all[0].name() / "metrics.jsonl");
  double peer_state = 0;
  for (const Layout& l : all) {
    if (!l.overlap) continue;
    const fs::path m = dir / l.name() / "metrics.jsonl";
    const double step = median_after_first(m);
    const double p = median_after_first(m, "mem/params"), g = median_after_first(m, "mem/grads"),
                 o = median_after_first(m, "mem/optimizer");
    const double state = p + std::max(0.0, g) + o;
    if (&l == &all[0]) peer_state = state;
    const double sync = median_after_first(m, "weight_sync_s"),
                 a2a = median_after_first(m, "expert_exchange_s");
    char sync_s[16] = "-", a2a_s[16] = "-";
    if (sync >= 0) std::snprintf(sync_s, sizeof sync_s, "%.4f", sync);
    if (a2a >= 0) std::snprintf(a2a_s, sizeof a2a_s, "%.4f", a2a);
    std::printf("%-5d %-9s %-3d %8.3f %8.2fx | %9s %9s %9s %5s %3.0f%% | %9s %9s\n", l.ranks, l.shard.c_str(),
                l.experts, step, step > 0 ? peer / step : 0.0, mib(p).c_str(), mib(g).c_str(), mib(o).c_str(),
                mib(state).c_str(), peer_state > 0 ? 100 * state / peer_state : 0.0, sync_s, a2a_s);
  }
  std::printf(
      "(MiB of rank 0's live tensors; %% of the peer's; wsync: gathering whole weights for rollouts, "
      "a2a: expert all-to-alls per step)\n");
  std::printf("gradient all-reduce in %g MB buckets, 2 unsharded ranks (rank 0's median over steps 2..%d):\n",
              bucket_mb, steps);
  for (const auto& [name, label] :
       {std::pair{parse_layout("2:none").name(), "during the backward pass (dist.overlap=true) "},
        std::pair{after.name(), "after the backward pass  (dist.overlap=false)"}}) {
    const fs::path m = dir / name / "metrics.jsonl";
    std::printf("  %s: %.4f s waited after it, %3.0f%% of buckets started during it, %.3f s/step\n", label,
                median_after_first(m, "grad_sync_s"), 100 * median_after_first(m, "grad_overlap"),
                median_after_first(m));
  }
  fs::remove_all(dir);
  return 0;
}
