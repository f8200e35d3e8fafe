#include "aha/kernels/cpu_token_logprobs.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/csrc/autograd/custom_function.h>

#include <cmath>
#include <limits>

#include "aha/core/error.h"
#include "cpu_lanes.h"

namespace aha::kernels {
namespace {

// The lanes' maximum; the tail's empty lanes hold -inf.
AHA_CPU_CLONES float row_max(const float* z, int64_t v) {
  Lanes m = Lanes{} - std::numeric_limits<float>::infinity();
  int64_t i = 0;
  for (; i + kLanes <= v; i += kLanes) {
    Lanes x;
    AHA_LOAD_LANES(x, z + i);
    m = x > m ? x : m;
  }
  float best = -std::numeric_limits<float>::infinity();
  for (int l = 0; l < kLanes; ++l)
    best = std::max(best, m[l]);
  for (; i < v; ++i)
    best = std::max(best, z[i]);
  return best;
}

// With y = s (z - max): sum e^y and sum e^y y (terms with y < -87, under 1.6e-38 of the largest, add nothing;
// -inf logits included).
[[gnu::always_inline]] inline void add_terms(const Lanes& y, Lanes& sum, Lanes& weighted) {
  Lanes e = y;
  exp_lanes(e);
  const auto drop = y < -87.0f;
  sum += drop ? Lanes{} : e;
  weighted += drop ? Lanes{} : e * y;
}

// One row: the shift c = s max + log sum e^y (log softmax = s z - c) and the entropy log S - W / S.
AHA_CPU_CLONES void row_forward(const float* z, int64_t v, float s, float* shift, float* entropy) {
  const float m = row_max(z, v);
  Lanes sum{}, weighted{};
  int64_t i = 0;
  for (; i + kLanes <= v; i += kLanes) {
    Lanes x;
    AHA_LOAD_LANES(x, z + i);
    add_terms((x - m) * s, sum, weighted);
  }
  if (i < v) {
    Lanes x = Lanes{} - std::numeric_limits<float>::infinity();
    std::memcpy(&x, z + i, static_cast<size_t>(v - i) * sizeof(float));
    add_terms((x - m) * s, sum, weighted);
  }
  const float total = sum_lanes(sum), log_total = std::log(total);
  *shift = s * m + log_total;
  *entropy = log_total - sum_lanes(weighted) / total;
}

// d z = g s (onehot(token) - softmax(s z)) for one row, softmax(s z) = e^(s z - c).
AHA_CPU_CLONES void row_backward(const float* z, int64_t v, float s, float c, float g, int64_t token,
                                 float* dz) {
  const float gs = g * s;
  int64_t i = 0;
  for (; i + kLanes <= v; i += kLanes) {
    Lanes x;
    AHA_LOAD_LANES(x, z + i);
    x = x * s - c;
    const auto drop = x < -87.0f;  // probabilities under 1.6e-38 as 0
    exp_lanes(x);
    const Lanes d = drop ? Lanes{} : x * -gs;
    std::memcpy(dz + i, &d, sizeof(Lanes));
  }
  for (; i < v; ++i)
    dz[i] = -gs * std::exp(z[i] * s - c);
  dz[token] += gs;
}

float scale_of(double temperature) {
  return temperature > 0 ? static_cast<float>(1.0 / temperature) : 1.0f;
}

class TokenLogprobsFunction : public torch::autograd::Function<TokenLogprobsFunction> {
 public:
  static torch::autograd::variable_list forward(torch::autograd::AutogradContext* ctx,
                                                const at::Tensor& logits, const at::Tensor& tokens,
                                                double temperature) {
    const at::Tensor z = logits.contiguous(), tok = tokens.contiguous();
    const int64_t v = z.size(-1), rows = tok.numel();
    at::Tensor shift = at::empty({rows}, z.options()), entropy = at::empty(tok.sizes(), z.options());
    at::Tensor logp = at::empty(tok.sizes(), z.options());
    const float s = scale_of(temperature);
    const float* zp = z.data_ptr<float>();
    const int64_t* tp = tok.data_ptr<int64_t>();
    float *cp = shift.data_ptr<float>(), *ep = entropy.data_ptr<float>(), *lp = logp.data_ptr<float>();
    at::parallel_for(0, rows, 8, [&](int64_t lo, int64_t hi) {
      for (int64_t r = lo; r < hi; ++r) {
        row_forward(zp + r * v, v, s, cp + r, ep + r);
        lp[r] = zp[r * v + tp[r]] * s - cp[r];
      }
    });
    ctx->save_for_backward({z, tok, shift});
    ctx->saved_data["temperature"] = temperature;
    ctx->mark_non_differentiable({entropy});
    return {logp, entropy};
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor &z = saved[0], &tok = saved[1], &shift = saved[2];
    const at::Tensor g = grads[0].defined() ? grads[0].to(at::kFloat).contiguous() : at::zeros_like(shift);
    const int64_t v = z.size(-1), rows = tok.numel();
    at::Tensor dz = at::empty(z.sizes(), z.options());
    const float s = scale_of(ctx->saved_data["temperature"].toDouble());
    const float *zp = z.data_ptr<float>(), *cp = shift.data_ptr<float>(), *gp = g.data_ptr<float>();
    const int64_t* tp = tok.data_ptr<int64_t>();
    float* dp = dz.data_ptr<float>();
    at::parallel_for(0, rows, 8, [&](int64_t lo, int64_t hi) {
      for (int64_t r = lo; r < hi; ++r) {
        if (gp[r] == 0) {
          std::memset(dp + r * v, 0, static_cast<size_t>(v) * sizeof(float));
          continue;
        }
        row_backward(zp + r * v, v, s, cp[r], gp[r], tp[r], dp + r * v);
      }
    });
    return {dz, at::Tensor(), at::Tensor()};
  }
};

}  // namespace

bool cpu_token_logprobs_supported(const at::Tensor& logits, const at::Tensor& tokens) {
  return logits.defined() && tokens.defined() && logits.device().is_cpu() && tokens.device().is_cpu() &&
         logits.scalar_type() == at::kFloat && tokens.scalar_type() == at::kLong && logits.dim() >= 1 &&
         logits.size(-1) >= 1 && tokens.dim() == logits.dim() - 1 &&
         tokens.sizes() == logits.sizes().slice(0, logits.dim() - 1);
}

TokenLogprobs cpu_token_logprobs(const at::Tensor& logits, const at::Tensor& tokens, double temperature) {
  AHA_CHECK(cpu_token_logprobs_supported(logits, tokens),
            "cpu_token_logprobs: needs CPU float32 logits [..., V] and int64 tokens [...], got logits ",
            logits.toString(), " ", logits.sizes(), " and tokens ", tokens.toString(), " ", tokens.sizes());
  if (tokens.numel() > 0) {
    const int64_t v = logits.size(-1), lo = tokens.min().item<int64_t>(), hi = tokens.max().item<int64_t>();
    AHA_CHECK(lo >= 0 && hi < v, "cpu_token_logprobs: token ", lo < 0 ? lo : hi,
              " outside the vocabulary [0, ", v, ")");
  }
  const auto out = TokenLogprobsFunction::apply(logits, tokens, temperature);
  return {out[0], out[1]};
}

}  // namespace aha::kernels
