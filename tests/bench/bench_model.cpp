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
//
// GFLOP/s: the model's matrix-multiply FLOPs per iteration (2 per multiply-add: projections, the routed
// experts a token actually visits, the router, the LM head, and causal attention scores and values, (T+1)/2
// keys per query on average; backward counted as twice the forward) over the median time, and as a share of
// the machine's fp32 peak, measured by an FMA loop (`--threads` threads, 16 independent 16-float
// accumulators each, AVX-512/AVX2/baseline picked at load time) before the model runs.
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
#include <thread>
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

// The fp32 FMA peak of this machine in GFLOP/s on `threads` threads: each thread runs a chain of
// independent fused multiply-adds on 16-float vectors for about `seconds`; the best of three rounds.
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define AHA_BENCH_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define AHA_BENCH_CLONES
#endif
typedef float Vec16 __attribute__((vector_size(16 * sizeof(float))));

AHA_BENCH_CLONES float fma_loop(int64_t iters, float seed) {
  constexpr int kChains = 16;
  Vec16 acc[kChains];
  const Vec16 mul = Vec16{} + 0.999999f, add = Vec16{} + seed * 1e-7f;
  for (int c = 0; c < kChains; ++c)
    acc[c] = Vec16{} + (seed + static_cast<float>(c));
  for (int64_t i = 0; i < iters; ++i)
    for (int c = 0; c < kChains; ++c)
      acc[c] = acc[c] * mul + add;
  float sum = 0;
  for (int c = 0; c < kChains; ++c)
    for (int l = 0; l < 16; ++l)
      sum += acc[c][l];
  return sum;
}

double fma_peak_gflops(int64_t threads, double seconds = 0.3) {
  using Clock = std::chrono::steady_clock;
  constexpr double kFlopsPerIter = 16 * 16 * 2;  // chains x lanes x (multiply + add)
  int64_t iters = 1 << 16;
  for (;;) {  // size the loop to about `seconds` on one thread
    const auto t0 = Clock::now();
    volatile float sink = fma_loop(iters, 1.0f);
    (void)sink;
    const double t = std::chrono::duration<double>(Clock::now() - t0).count();
    if (t > 0.05) {
      iters = static_cast<int64_t>(iters * seconds / t);
      break;
    }
    iters *= 4;
  }
  double best = 0;
  for (int round = 0; round < 3; ++round) {
    std::vector<std::thread> pool;
    std::vector<float> sinks(static_cast<size_t>(threads));
    const auto t0 = Clock::now();
    for (int64_t t = 0; t < threads; ++t)
      pool.emplace_back([&, t] { sinks[t] = fma_loop(iters, 1.0f + static_cast<float>(t)); });
    for (auto& th : pool)
      th.join();
    const double s = std::chrono::duration<double>(Clock::now() - t0).count();
    best = std::max(best, kFlopsPerIter * static_cast<double>(iters) * threads / s / 1e9);
  }
  return best;
}

// Matrix-multiply FLOPs of one forward pass over `batch` sequences of `seq` tokens (2 per multiply-add).
double forward_flops(const aha::model::ModelConfig& c, int64_t batch, int64_t seq) {
  const double d = static_cast<double>(c.hidden_size), h = static_cast<double>(c.num_attention_heads);
  const double qk = static_cast<double>(c.qk_head_dim()), v = static_cast<double>(c.v_head_dim);
  double attention = 0;  // per token per layer
  attention += c.q_lora_rank ? d * *c.q_lora_rank + *c.q_lora_rank * h * qk : d * h * qk;
  attention += d * (c.kv_lora_rank + c.qk_rope_head_dim) + c.kv_lora_rank * h * (c.qk_nope_head_dim + v);
  attention += h * v * d;
  attention += h * (qk + v) * (seq + 1) / 2.0;  // scores and values over the causal prefix
  const double dense = 3 * d * c.intermediate_size;
  const double moe =
      d * c.n_routed_experts + 3 * d * c.moe_intermediate_size * (c.num_experts_per_tok + c.n_shared_experts);
  double per_token = d * c.vocab_size;
  for (int64_t l = 0; l < c.num_hidden_layers; ++l)
    per_token += attention + (c.is_moe_layer(l) ? moe : dense);
  return 2 * per_token * static_cast<double>(batch * seq);
}

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
  const double peak = fma_peak_gflops(o.threads), flops = forward_flops(config, o.batch, o.seq);

  std::cout << "aha bench_model: " << o.config << "\n"
            << "  torch " << TORCH_VERSION << ", threads " << at::get_num_threads() << ", fp32 CPU, batch "
            << o.batch << " x seq " << o.seq << ", warmup " << o.warmup << ", iters " << o.iters << "\n"
            << "  parameters: total " << total << " (" << std::fixed << std::setprecision(2) << total / 1e6
            << "M), active per token " << active << " (" << active / 1e6 << "M), embedding " << embedding
            << "\n"
            << std::setprecision(1) << "  fp32 FMA peak (" << o.threads << " threads): " << peak
            << " GFLOP/s; forward " << flops / 1e9 << " GFLOP per iteration\n";

  model->eval();
  const Timing fwd = time_it(o.warmup, o.iters, [&] {
    c10::InferenceMode guard;
    const auto out = model->forward(in);
    (void)out.logits.data_ptr<float>();
  });
  std::cout << "  forward:          " << std::setprecision(1) << std::setw(10) << tokens / fwd.median()
            << " tok/s  (median " << std::setprecision(3) << fwd.median() << " s/iter, "
            << std::setprecision(1) << flops / fwd.median() / 1e9 << " GFLOP/s, "
            << 100 * flops / fwd.median() / 1e9 / peak << "% of peak)\n";

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
            << std::setprecision(4) << last_loss << ", " << std::setprecision(1)
            << 3 * flops / fb.median() / 1e9 << " GFLOP/s, " << 100 * 3 * flops / fb.median() / 1e9 / peak
            << "% of peak)\n";

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
    j["fma_peak_gflops"] = peak;
    j["forward_gflop"] = flops / 1e9;
    j["forward"] = figures(fwd, tokens);
    j["forward"]["gflops"] = flops / fwd.median() / 1e9;
    j["forward"]["peak_frac"] = flops / fwd.median() / 1e9 / peak;
    j["forward_backward"] = figures(fb, tokens);
    j["forward_backward"]["gflops"] = 3 * flops / fb.median() / 1e9;
    j["forward_backward"]["peak_frac"] = 3 * flops / fb.median() / 1e9 / peak;
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
