// bench_model: forward and forward+backward tokens/s of aha's DeepSeek-V3 Transformer on CPU, fp32.
//
// Builds the model from an HF config.json (default configs/model/bench_20m.json, ~20M parameters),
// initialises it with init_weights(0), and times, on a batch of random token ids (fixed seed):
//   forward           model.forward under at::InferenceMode (eval mode), logits included;
//   forward_backward  model.forward, then logits.logsumexp(-1).mean().backward() (grads reset each step).
// scripts/bench_model_peer.py measures the same two things for transformers' DeepseekV3ForCausalLM, and
// scripts/bench_model.sh runs both and prints the ratio.
//
//   bench_model [--config PATH] [--batch 8] [--seq 256] [--iters 5] [--warmup 2] [--threads 2] [--json OUT]
//               [--profile TRACE.json]
//
// tokens/s = batch * seq / (median seconds per iteration); the mean- and best-iteration-based figures and
// every iteration's time are in the JSON as well.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>
#include <torch/csrc/autograd/profiler_legacy.h>
#include <torch/version.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <exception>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <numeric>
#include <string>
#include <vector>

#include "aha/core/config_json.h"
#include "aha/model/config.h"
#include "aha/model/transformer.h"

#ifndef AHA_SOURCE_DIR
#define AHA_SOURCE_DIR "."
#endif

namespace {

struct Options {
  std::string config = std::string(AHA_SOURCE_DIR) + "/configs/model/bench_20m.json";
  int64_t batch = 8;
  int64_t seq = 256;
  int64_t iters = 5;
  int64_t warmup = 2;
  int64_t threads = 2;
  uint64_t seed = 1234;  // token ids
  std::string json;
  std::string profile;  // a Chrome trace of one more forward+backward (autograd profiler)
};

[[noreturn]] void usage(const std::string& error) {
  if (!error.empty()) std::cerr << "bench_model: " << error << "\n";
  std::cerr << "usage: bench_model [--config PATH] [--batch B] [--seq T] [--iters N] [--warmup N] "
               "[--threads N] [--seed S] [--json OUT]\n";
  std::exit(error.empty() ? 0 : 2);
}

int64_t parse_int(const std::string& flag, const std::string& text, int64_t min) {
  size_t used = 0;
  int64_t v = 0;
  try {
    v = std::stoll(text, &used);
  } catch (const std::exception&) {
    usage(flag + " wants an integer, got '" + text + "'");
  }
  if (used != text.size()) usage(flag + " wants an integer, got '" + text + "'");
  if (v < min) usage(flag + " must be >= " + std::to_string(min));
  return v;
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "-h" || a == "--help") usage("");
    if (i + 1 >= argc) usage("missing value after " + a);
    const std::string v = argv[++i];
    if (a == "--config") {
      o.config = v;
    } else if (a == "--batch") {
      o.batch = parse_int(a, v, 1);
    } else if (a == "--seq") {
      o.seq = parse_int(a, v, 1);
    } else if (a == "--iters") {
      o.iters = parse_int(a, v, 1);
    } else if (a == "--warmup") {
      o.warmup = parse_int(a, v, 0);
    } else if (a == "--threads") {
      o.threads = parse_int(a, v, 1);
    } else if (a == "--seed") {
      o.seed = static_cast<uint64_t>(parse_int(a, v, 0));
    } else if (a == "--json") {
      o.json = v;
    } else if (a == "--profile") {
      o.profile = v;
    } else {
      usage("unknown flag " + a);
    }
  }
  return o;
}

struct Timing {
  std::vector<double> seconds;  // one per timed iteration
  double median() const {
    std::vector<double> s = seconds;
    std::sort(s.begin(), s.end());
    const size_t n = s.size();
    return n % 2 ? s[n / 2] : 0.5 * (s[n / 2 - 1] + s[n / 2]);
  }
  double mean() const { return std::accumulate(seconds.begin(), seconds.end(), 0.0) / seconds.size(); }
  double best() const { return *std::min_element(seconds.begin(), seconds.end()); }
};

template <class F>
Timing time_it(int64_t warmup, int64_t iters, F&& step) {
  using Clock = std::chrono::steady_clock;
  for (int64_t i = 0; i < warmup; ++i)
    step();
  Timing t;
  for (int64_t i = 0; i < iters; ++i) {
    const auto t0 = Clock::now();
    step();
    t.seconds.push_back(std::chrono::duration<double>(Clock::now() - t0).count());
  }
  return t;
}

aha::Json figures(const Timing& t, int64_t tokens) {
  aha::Json j = aha::Json::object();
  j["tokens_per_s"] = tokens / t.median();
  j["tokens_per_s_mean"] = tokens / t.mean();
  j["tokens_per_s_best"] = tokens / t.best();
  j["median_s"] = t.median();
  j["mean_s"] = t.mean();
  j["iter_s"] = t.seconds;
  return j;
}

int run(const Options& o) {
  at::set_num_threads(static_cast<int>(o.threads));
  const aha::model::ModelConfig config = aha::model::from_hf_json(aha::read_json_file(o.config), o.config);
  if (o.seq > config.max_position_embeddings)
    usage("--seq exceeds max_position_embeddings (" + std::to_string(config.max_position_embeddings) + ")");

  aha::model::Transformer model(config);
  model->init_weights(0);

  int64_t total = 0, experts = 0, embedding = 0;
  for (const auto& p : model->named_parameters()) {
    total += p.value().numel();
    if (p.key().find(".experts.") != std::string::npos) experts += p.value().numel();
    if (p.key() == "model.embed_tokens.weight") embedding += p.value().numel();
  }
  // Active per token: everything but the routed experts, plus K of the E experts of each MoE layer.
  const int64_t active = total - experts + experts * config.num_experts_per_tok / config.n_routed_experts;

  at::manual_seed(o.seed);
  aha::model::ForwardInput in;
  in.input_ids = at::randint(config.vocab_size, {o.batch, o.seq}, at::TensorOptions().dtype(at::kLong));
  const int64_t tokens = o.batch * o.seq;

  std::cout << "aha bench_model: " << o.config << "\n"
            << "  torch " << TORCH_VERSION << ", threads " << at::get_num_threads() << ", fp32 CPU, batch "
            << o.batch << " x seq " << o.seq << ", warmup " << o.warmup << ", iters " << o.iters << "\n"
            << "  parameters: total " << total << " (" << std::fixed << std::setprecision(2) << total / 1e6
            << "M), active per token " << active << " (" << active / 1e6 << "M), embedding " << embedding
            << "\n";

  model->eval();
  const Timing fwd = time_it(o.warmup, o.iters, [&] {
    c10::InferenceMode guard;
    const auto out = model->forward(in);
    (void)out.logits.data_ptr<float>();
  });
  std::cout << "  forward:          " << std::setprecision(1) << std::setw(10) << tokens / fwd.median()
            << " tok/s  (median " << std::setprecision(3) << fwd.median() << " s/iter)\n";

  model->train();
  double last_loss = 0;
  const Timing fb = time_it(o.warmup, o.iters, [&] {
    model->zero_grad(/*set_to_none=*/true);
    const auto out = model->forward(in);
    at::Tensor loss = out.logits.logsumexp(-1).mean();
    loss.backward();
    last_loss = loss.item<double>();
  });
  std::cout << "  forward_backward: " << std::setprecision(1) << std::setw(10) << tokens / fb.median()
            << " tok/s  (median " << std::setprecision(3) << fb.median() << " s/iter, loss "
            << std::setprecision(4) << last_loss << ")\n";

  if (!o.profile.empty()) {
    // One more forward+backward under the autograd profiler: a Chrome trace of every operator.
    torch::autograd::profiler::RecordProfile guard(o.profile);
    model->zero_grad(/*set_to_none=*/true);
    const auto out = model->forward(in);
    out.logits.logsumexp(-1).mean().backward();
  }
  if (!o.json.empty()) {
    aha::Json j = aha::Json::object();
    j["impl"] = "aha";
    j["config"] = o.config;
    j["torch"] = TORCH_VERSION;
    j["threads"] = at::get_num_threads();
    j["batch"] = o.batch;
    j["seq"] = o.seq;
    j["warmup"] = o.warmup;
    j["iters"] = o.iters;
    j["params_total"] = total;
    j["params_active"] = active;
    j["params_embedding"] = embedding;
    j["loss"] = last_loss;
    j["forward"] = figures(fwd, tokens);
    j["forward_backward"] = figures(fb, tokens);
    std::ofstream f(o.json);
    f << j.dump(2) << "\n";
    if (!f) {
      std::cerr << "bench_model: cannot write " << o.json << "\n";
      return 1;
    }
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(parse(argc, argv));
  } catch (const std::exception& e) {
    std::cerr << "bench_model: " << e.what() << "\n";
    return 1;
  }
}
