#include "aha/rollout/sampling.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>

#include "aha/core/error.h"

namespace aha::rollout {

void validate(const SamplingParams& p) {
  AHA_CHECK(p.temperature >= 0, "temperature must be >= 0, got ", p.temperature);
  AHA_CHECK(p.top_k >= 0, "top_k must be >= 0, got ", p.top_k);
  AHA_CHECK(p.top_p > 0 && p.top_p <= 1, "top_p must be in (0, 1], got ", p.top_p);
  AHA_CHECK(p.min_p >= 0 && p.min_p < 1, "min_p must be in [0, 1), got ", p.min_p);
  AHA_CHECK(p.max_new_tokens >= 1, "max_new_tokens must be >= 1, got ", p.max_new_tokens);
  AHA_CHECK(p.n >= 1, "n (completions per prompt) must be >= 1, got ", p.n);
}

std::mt19937_64 completion_rng(uint64_t prompt_seed, int64_t sample) {
  // splitmix64 of (seed, sample): neighbouring seeds and samples get unrelated streams.
  uint64_t z = prompt_seed * 0x9E3779B97F4A7C15ull + static_cast<uint64_t>(sample) + 0x632BE59BD9B4E019ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return std::mt19937_64(z ^ (z >> 31));
}

namespace {

// No filter on the CPU: the same inverse-CDF draw as below (double cumulative sum, first index whose mass
// exceeds u * total) as one pass per row over `probs`, without the [B, V] double copy, scan and search
// tensors (a tenth of a decode step at batch 16 of the bench model).
Sampled sample_unfiltered_cpu(const at::Tensor& logp_in, const at::Tensor& probs_in,
                              const std::vector<double>& uniforms) {
  const at::Tensor logp = logp_in.contiguous(), probs = probs_in.contiguous();
  const int64_t b = probs.size(0), v = probs.size(1);
  at::Tensor tokens = at::empty({b}, at::kLong), logprobs = at::empty({b}, at::kFloat);
  const float* pp = probs.data_ptr<float>();
  const float* lp = logp.data_ptr<float>();
  int64_t* tok = tokens.data_ptr<int64_t>();
  float* out = logprobs.data_ptr<float>();
  const auto sample_row = [&](int64_t r) {
    const float* row = pp + r * v;
    double total = 0;
    for (int64_t i = 0; i < v; ++i)
      total += row[i];
    const double u = uniforms[r] * total;
    double cdf = 0;
    int64_t chosen = v - 1;
    for (int64_t i = 0; i < v; ++i) {
      cdf += row[i];
      if (cdf > u) {
        chosen = i;
        break;
      }
    }
    if (row[chosen] <= 0) chosen = std::max_element(row, row + v) - row;
    tok[r] = chosen;
    out[r] = lp[r * v + chosen];
  };
  // Rows in parallel: each row's draw is one sequential pass, the same on any thread count.
  at::parallel_for(0, b, 8, [&](int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; ++r)
      sample_row(r);
  });
  return {tokens, logprobs};
}

}  // namespace

Sampled sample(const at::Tensor& logits_in, const SamplingParams& p, const std::vector<double>& uniforms) {
  const at::Tensor logits = logits_in.to(at::kFloat);
  const int64_t b = logits.size(0), v = logits.size(1);
  Sampled out;
  if (p.temperature == 0) {
    out.tokens = logits.argmax(-1);
    out.logprobs = at::log_softmax(logits, -1).gather(1, out.tokens.unsqueeze(1)).squeeze(1);
    return out;
  }
  AHA_CHECK(static_cast<int64_t>(uniforms.size()) == b, "one uniform draw per row needed: ", b, " rows, ",
            uniforms.size(), " draws");
  const at::Tensor logp = at::log_softmax(p.temperature == 1 ? logits : logits / p.temperature, -1);
  at::Tensor probs = logp.exp();
  if (logits.device().is_cpu() && (p.top_k == 0 || p.top_k >= v) && p.min_p == 0 && p.top_p == 1)
    return sample_unfiltered_cpu(logp, probs, uniforms);
  if (p.top_k > 0 && p.top_k < v) {
    const at::Tensor kth = std::get<0>(probs.topk(p.top_k, -1)).select(1, p.top_k - 1).unsqueeze(1);
    probs = probs.masked_fill(probs < kth, 0.0);
  }
  if (p.min_p > 0) {
    const at::Tensor floor = std::get<0>(probs.max(-1, true)) * p.min_p;
    probs = probs.masked_fill(probs < floor, 0.0);
  }
  if (p.top_p < 1) {
    auto [sorted, order] = probs.sort(-1, /*descending=*/true);
    // Drop a token when the mass before it already reaches top_p; the most likely token always stays.
    const at::Tensor before = sorted.cumsum(-1) - sorted;
    const at::Tensor drop_sorted = before >= p.top_p * sorted.sum(-1, true);
    probs = probs.masked_fill(at::zeros_like(drop_sorted).scatter(1, order, drop_sorted), 0.0);
  }
  const at::Tensor cdf = probs.to(at::kDouble).cumsum(-1);  // [B, V]
  const at::Tensor u =
      at::tensor(uniforms, at::kDouble).to(cdf.device()).unsqueeze(1) * cdf.select(1, v - 1).unsqueeze(1);
  // The first index whose cumulative mass exceeds u (u < total, so one exists among the kept tokens).
  out.tokens = at::searchsorted(cdf, u, /*out_int32=*/false, /*right=*/true).squeeze(1).clamp_max(v - 1);
  // A draw landing exactly on a dropped token's flat stretch moves to the next kept token.
  const at::Tensor chosen_p = probs.gather(1, out.tokens.unsqueeze(1)).squeeze(1);
  if ((chosen_p <= 0).any().item<bool>()) {
    const at::Tensor fallback = probs.argmax(-1);
    out.tokens = at::where(chosen_p > 0, out.tokens, fallback);
  }
  out.logprobs = logp.gather(1, out.tokens.unsqueeze(1)).squeeze(1);
  return out;
}

}  // namespace aha::rollout
