// bench_grpo_step: seconds per GRPO step of aha against TRL's GRPOTrainer on the same work, CPU, in one run.
//
// Both train the same checkpoint (`aha init` of configs/model/bench_20m.json, seed 0: 20.7 M parameters, with
// tests/data/text/bpe_seq's tokenizer) on the same prompts ("What is A plus B? Think step by step."), one
// optimizer step per `--prompts` prompts x `--group` completions of up to `--tokens` new tokens,
// micro-batches of `--micro-batch` completions, one policy update per batch, no reference model, one rule
// reward (a digit in the completion), `--threads` threads each. aha runs as `aha train` (the CLI a user
// runs), TRL through scripts/bench_grpo_step_peer.py with the venv's python (AHA_PYTHON; trl 1.16.0, which
// scripts/bench_grpo_step.sh installs). Figures: the median step time over the steps after the first, the
// ratio TRL / aha, and aha's time split (the time/* metrics: rollout, reward, forward, backward, sync,
// optimizer, other). Shapes: `--shape default` (16 x 8 x 48, micro-batch 32), `g16` (16 x 16 x 48), `batch1`
// (1 x 2 x 128: decode-bound), `long` (16 x 8 x 256), or the flags.
//
//   bench_grpo_step [--shape default] [--steps 6] [--prompts N --group G --tokens T --micro-batch M]
//                   [--threads 2] [--aha PATH] [--python PATH] [--peer SCRIPT] [--no-peer] [--json OUT]
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <random>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

namespace fs = std::filesystem;
using Json = nlohmann::json;

namespace {

int run(const std::string& cmd) {
  std::cout << "$ " << cmd << std::endl;
  return std::system(cmd.c_str());
}

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]);
}

}  // namespace

int main(int argc, char** argv) {
  std::string shape = "default", aha = AHA_CLI, python,
              peer = std::string(AHA_SOURCE_DIR) + "/scripts/bench_grpo_step_peer.py", json_out;
  int steps = 6, threads = 2, prompts = 0, group = 0, tokens = 0, micro = 0;
  bool no_peer = false;
  CLI::App app{"bench_grpo_step: aha vs TRL GRPOTrainer, seconds per GRPO step on CPU"};
  app.add_option("--shape", shape, "default (16x8x48), g16, batch1, long")
      ->check(CLI::IsMember({"default", "g16", "batch1", "long"}));
  app.add_option("--steps", steps, "optimizer steps per side (the first is not counted)");
  app.add_option("--prompts", prompts, "prompts per step (overrides the shape)");
  app.add_option("--group", group, "completions per prompt (overrides the shape)");
  app.add_option("--tokens", tokens, "new tokens per completion (overrides the shape)");
  app.add_option("--micro-batch", micro, "completions per forward/backward (overrides the shape)");
  app.add_option("--threads", threads, "threads of each side");
  app.add_option("--aha", aha, "the aha executable");
  app.add_option("--python", python, "the python with trl (default: $AHA_PYTHON or python3)");
  app.add_option("--peer", peer, "the TRL peer script");
  app.add_flag("--no-peer", no_peer, "aha only");
  app.add_option("--json", json_out, "write the figures here");
  CLI11_PARSE(app, argc, argv);
  const std::map<std::string, std::vector<int>> shapes = {{"default", {16, 8, 48, 32}},
                                                          {"g16", {16, 16, 48, 32}},
                                                          {"batch1", {1, 2, 128, 2}},
                                                          {"long", {16, 8, 256, 32}}};
  const std::vector<int> s = shapes.at(shape);
  prompts = prompts ? prompts : s[0];
  group = group ? group : s[1];
  tokens = tokens ? tokens : s[2];
  micro = micro ? micro : s[3];
  if (python.empty()) python = std::getenv("AHA_PYTHON") ? std::getenv("AHA_PYTHON") : "python3";

  const fs::path dir = fs::temp_directory_path() / ("bench_grpo_step_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const std::string model = (dir / "model").string();
  if (run("'" + aha + "' init --config '" + AHA_SOURCE_DIR + "/configs/model/bench_20m.json' --output '" +
          model + "' --seed 0 > /dev/null") != 0)
    return 1;
  fs::copy_file(std::string(AHA_SOURCE_DIR) + "/tests/data/text/bpe_seq/tokenizer.json",
                fs::path(model) / "tokenizer.json");
  {
    std::ofstream p(dir / "prompts.jsonl");
    std::mt19937 rng(0);
    for (int i = 0; i < std::max(64, prompts * steps); ++i) {
      const int a = 10 + static_cast<int>(rng() % 90), b = 10 + static_cast<int>(rng() % 90);
      p << Json{{"question",
                 "What is " + std::to_string(a) + " plus " + std::to_string(b) + "? Think step by step."},
                {"answer", std::to_string(a + b)}}
               .dump()
        << "\n";
    }
  }
  const std::string cfg = (dir / "aha.json").string();
  std::ofstream(cfg)
      << Json{{"model", {{"path", model}, {"device", "cpu"}}},
              {"data",
               {{"source", "jsonl"},
                {"path", (dir / "prompts.jsonl").string()},
                {"template", "{question}"},
                {"eval_size", 0}}},
              {"rollout",
               {{"num_generations", group},
                {"max_new_tokens", tokens},
                {"temperature", 1.0},
                {"stop", Json::array()}}},
              {"reward", {{"functions", {{{"name", "regex_match"}, {"params", {{"pattern", "[0-9]"}}}}}}}},
              {"grpo", {{"beta", 0.0}, {"mu", 1}, {"dynamic_sampling", false}}},
              {"optim", {{"lr", 1e-5}}},
              {"train",
               {{"steps", steps},
                {"prompts_per_step", prompts},
                {"micro_batch_size", micro},
                {"eval_every", 0},
                {"eval_at_start", false},
                {"save_every", 0}}},
              {"log", {{"level", "warn"}, {"file", false}, {"samples_per_step", 0}}}}
             .dump(2);
  const std::string env = "OMP_NUM_THREADS=" + std::to_string(threads) + " ";
  if (run(env + "'" + aha + "' train -c '" + cfg + "' --set train.run_dir='" + (dir / "run").string() +
          "' > '" + (dir / "aha.log").string() + "' 2>&1") != 0) {
    std::cerr << "bench_grpo_step: aha failed; see " << dir / "aha.log"
              << "\n";
    return 1;
  }
  std::vector<Json> metrics;
  {
    std::ifstream in(dir / "run/metrics.jsonl");
    std::string line;
    while (std::getline(in, line))
      if (!line.empty()) metrics.push_back(Json::parse(line));
  }
  auto med = [&](const std::string& key) {
    std::vector<double> v;
    for (const auto& m : metrics)
      if (m.value("step", 0) > 1 && m.contains(key)) v.push_back(m[key].get<double>());
    return median(v);
  };
  const double aha_s = med("step_s");
  double trl_s = 0;
  if (!no_peer) {
    const std::string out = (dir / "trl.json").string();
    if (run(env + "'" + python + "' '" + peer + "' --model '" + model + "' --prompts-file '" +
            (dir / "prompts.jsonl").string() + "' --json '" + out + "' --steps " + std::to_string(steps) +
            " --prompts " + std::to_string(prompts) + " --group " + std::to_string(group) + " --tokens " +
            std::to_string(tokens) + " --micro-batch " + std::to_string(micro) + " --threads " +
            std::to_string(threads) + " > '" + (dir / "trl.log").string() + "' 2>&1") != 0) {
      std::cerr << "bench_grpo_step: the TRL peer failed; see " << dir / "trl.log"
                << "\n";
      return 1;
    }
    trl_s = Json::parse(std::ifstream(out))["median_step_s"].get<double>();
  }
  std::printf(
      "\nshape %s: %d prompts x %d completions of up to %d tokens, micro-batch %d, %d threads; median of "
      "steps 2..%d\n",
      shape.c_str(), prompts, group, tokens, micro, threads, steps);
  std::printf("aha %.3f s/step", aha_s);
  if (!no_peer) std::printf(" | TRL 1.16 %.3f s/step | TRL / aha %.2fx", trl_s, trl_s / aha_s);
  std::printf("\naha's step:");
  Json split = Json::object();
  for (const char* k : {"rollout", "reward", "ref", "forward", "backward", "sync", "optimizer", "other"}) {
    const double v = med(std::string("time/") + k + "_s");
    split[k] = v;
    std::printf(" %s %.3f s (%.0f%%)", k, v, aha_s > 0 ? 100 * v / aha_s : 0.0);
  }
  std::printf("\n");
  if (!json_out.empty())
    std::ofstream(json_out) << Json{
        {"shape", shape},      {"prompts", prompts},   {"group", group},
        {"tokens", tokens},    {"micro_batch", micro}, {"threads", threads},
        {"aha_step_s", aha_s}, {"trl_step_s", trl_s},  {"ratio", no_peer ? 0.0 : trl_s / aha_s},
        {"aha_split_s", split}}.dump(1);
  fs::remove_all(dir);
  return 0;
}
