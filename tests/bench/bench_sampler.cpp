// bench_sampler: decode tokens/s of aha's rollout sampler on CPU (fp32) at several batch sizes.
//
// Loads an HF checkpoint directory (scripts/bench_sampler.sh writes one from configs/model/bench_20m.json so
// that transformers' generate runs on the very same weights), then for each batch size generates
// max_new_tokens tokens per row from random prompts of prompt_len tokens (temperature 1, eos ignored so every
// row runs to the end) and prints prefill and decode tokens/s. scripts/bench_sampler_peer.py measures
// transformers the same way. Also printed: the process CPU seconds of one whole generate call (prefill and
// decode), the best of the repeats.
//
//   bench_sampler --model DIR [--batches 1,16,64] [--prompt-len 64] [--new-tokens 64] [--threads 2] [--json
//   OUT]
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <fstream>
#include <iostream>
#include <random>

#include <time.h>

#include <torch/csrc/autograd/profiler_legacy.h>

#include "aha/core/config_json.h"
#include "aha/model/checkpoint.h"
#include "aha/rollout/sampler.h"

namespace {

// CPU seconds of the whole process (all threads): with --threads 1 a figure that other jobs on a shared
// machine barely move, unlike wall time.
double process_cpu_seconds() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"bench_sampler: decode tokens/s of aha's sampler"};
  std::string model_dir, json_out;
  std::vector<int64_t> batches = {1, 16, 64};
  int64_t prompt_len = 64, new_tokens = 64, threads = 2, repeats = 2;
  app.add_option("--model", model_dir, "HF-format model directory")->required();
  app.add_option("--batches", batches, "batch sizes")->delimiter(',');
  app.add_option("--prompt-len", prompt_len, "prompt tokens per row");
  app.add_option("--new-tokens", new_tokens, "tokens generated per row");
  app.add_option("--threads", threads, "intra-op threads");
  app.add_option("--repeats", repeats, "timed runs per batch size (the best is kept)");
  app.add_option("--json", json_out, "write the figures as JSON");
  std::string profile;
  app.add_option("--profile", profile,
                 "a Chrome trace of one more generate call per batch size (autograd profiler)");
  CLI11_PARSE(app, argc, argv);
  try {
    at::set_num_threads(static_cast<int>(threads));
    auto model = aha::model::load_pretrained(model_dir);
    model->eval();
    aha::Json results = aha::Json::array();
    std::cout << "batch  prefill tok/s  decode tok/s  total s  cpu s\n";
    for (int64_t b : batches) {
      std::mt19937_64 rng(1234);
      std::vector<std::vector<int64_t>> prompts(static_cast<size_t>(b), std::vector<int64_t>(prompt_len));
      for (auto& p : prompts)
        for (auto& t : p)
          t = 2 + static_cast<int64_t>(rng() % static_cast<uint64_t>(model->config().vocab_size - 2));
      aha::rollout::SamplingParams params;
      params.temperature = 1.0;
      params.max_new_tokens = new_tokens;
      params.ignore_eos = true;
      aha::rollout::GenerateResult best;
      best.decode_seconds = 1e300;
      double best_total = 1e300, best_cpu = 1e300;
      for (int64_t r = 0; r < repeats + 1; ++r) {  // the first run warms up
        const double cpu0 = process_cpu_seconds();
        const auto result = aha::rollout::Sampler().generate(*model, prompts, params);
        if (r > 0) best_cpu = std::min(best_cpu, process_cpu_seconds() - cpu0);
        const double total = result.prefill_seconds + result.decode_seconds;
        if (r > 0 && result.decode_seconds < best.decode_seconds) best = result;
        if (r > 0 && total < best_total) {
          best_total = total;
        }
      }
      if (!profile.empty()) {
        torch::autograd::profiler::RecordProfile guard(profile + "." + std::to_string(b) + ".json");
        aha::rollout::Sampler().generate(*model, prompts, params);
      }
      // Decode steps after the prefill: new_tokens - 1 forwards per row (the first token comes from the
      // prefill's logits), counted the same way as the transformers peer does.
      const double decode_tps = static_cast<double>(b * (new_tokens - 1)) / best.decode_seconds;
      std::cout << std::setw(5) << b << "  " << std::setw(13) << best.prefill_tokens_per_second() << "  "
                << std::setw(12) << decode_tps << "  " << best_total << "  " << best_cpu << "\n";
      results.push_back({{"batch", b},
                         {"prefill_tokens_per_second", best.prefill_tokens_per_second()},
                         {"decode_tokens_per_second", decode_tps},
                         {"total_seconds", best_total},
                         {"cpu_seconds", best_cpu},
                         {"generated_tokens", best.decode_tokens}});
    }
    if (!json_out.empty()) {
      std::ofstream(json_out) << aha::Json({{"impl", "aha"},
                                            {"prompt_len", prompt_len},
                                            {"new_tokens", new_tokens},
                                            {"threads", threads},
                                            {"results", results}})
                                     .dump(2)
                              << "\n";
    }
  } catch (const std::exception& e) {
    std::cerr << "bench_sampler: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
