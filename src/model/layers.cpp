// Linear, RMSNorm, Rope, MLA: the attention side of a decoder layer.
#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <cmath>
#include <numbers>
#include <utility>
#include <vector>

#include "aha/core/error.h"
#include "aha/kernels/fp8_linear.h"
#include "aha/model/cpu_decode.h"
#include "aha/model/linear.h"
#include "aha/model/mla.h"
#include "aha/model/norm.h"
#include "aha/model/rope.h"

namespace aha::model {

LinearImpl::LinearImpl(int64_t in_features, int64_t out_features, bool with_bias)
    : in_features_(in_features), out_features_(out_features) {
  weight = register_parameter("weight", at::empty({out_features, in_features}));
  if (with_bias) bias = register_parameter("bias", at::zeros({out_features}));
}

at::Tensor LinearImpl::forward(const at::Tensor& x) {
  if (!fp8_) return at::linear(x, weight, bias);
  return kernels::fp8_linear(x, weight, bias, fp8_weight(), {ue8m0_, kernels::Fp8Backend::kAuto});
}

void LinearImpl::set_fp8_weight(kernels::Fp8Tensor weight_q) {
  AHA_CHECK(weight_q.data.defined() && weight_q.data.sizes() == weight.sizes() &&
                weight_q.data.scalar_type() == at::kFloat8_e4m3fn &&
                weight_q.block_rows == kernels::kFp8BlockSize,
            "set_fp8_weight: expects E4M3 data of the weight's shape ", weight.sizes(),
            " with 128x128 block scales");
  weight_q_ = std::move(weight_q);
  weight_q_version_ = static_cast<int64_t>(weight._version());
}

kernels::Fp8Tensor LinearImpl::fp8_weight() {
  if (!weight_q_.data.defined() || weight_q_version_ != static_cast<int64_t>(weight._version())) {
    // The cache outlives the call: a normal tensor even when made under the sampler's InferenceMode, so that
    // the training pass that follows may use it in any way autograd allows.
    c10::InferenceMode normal_tensors(false);
    weight_q_ = kernels::quantize_fp8_blocks(weight.detach(), ue8m0_);
    weight_q_version_ = static_cast<int64_t>(weight._version());
  } else if (weight_q_.data.device() != weight.device()) {
    weight_q_.data = weight_q_.data.to(weight.device());
    weight_q_.scale = weight_q_.scale.to(weight.device());
  }
  return weight_q_;
}

int64_t enable_fp8_linears(torch::nn::Module& model, bool ue8m0) {
  int64_t switched = 0;
  for (const auto& item : model.named_modules()) {
    auto* linear = dynamic_cast<LinearImpl*>(item.value().get());
    if (!linear) continue;
    const std::string& name = item.key();
    if (name.find("self_attn.") == std::string::npos && name.find("mlp.") == std::string::npos) continue;
    linear->set_fp8(true, ue8m0);
    ++switched;
  }
  return switched;
}

namespace {

// y = w * x * rsqrt(mean(x^2) + eps) per row, the statistics accumulated in double.
at::Tensor rms_norm_cpu(const at::Tensor& x_in, const at::Tensor& weight_in, double eps) {
  const at::Tensor x = x_in.contiguous(), weight = weight_in.contiguous();
  at::Tensor y = at::empty_like(x);
  const int64_t d = x.size(-1), rows = d > 0 ? x.numel() / d : 0;
  const float* xp = x.data_ptr<float>();
  const float* wp = weight.data_ptr<float>();
  float* yp = y.data_ptr<float>();
  for (int64_t r = 0; r < rows; ++r) {
    const float* row = xp + r * d;
    double squares = 0;
    for (int64_t i = 0; i < d; ++i)
      squares += static_cast<double>(row[i]) * row[i];
    const float scale = static_cast<float>(1.0 / std::sqrt(squares / static_cast<double>(d) + eps));
    for (int64_t i = 0; i < d; ++i)
      yp[r * d + i] = wp[i] * (row[i] * scale);
  }
  return y;
}

}  // namespace

RMSNormImpl::RMSNormImpl(int64_t dim, double eps_) : eps(eps_) {
  weight = register_parameter("weight", at::ones({dim}));
}

at::Tensor RMSNormImpl::forward(const at::Tensor& x) {
  // Decoding on the CPU in fp32: one pass per row instead of seven operators (17 norms per decode step).
  if (c10::InferenceMode::is_enabled() && x.device().is_cpu() && x.scalar_type() == at::kFloat &&
      weight.scalar_type() == at::kFloat && x.size(-1) == weight.size(0))
    return rms_norm_cpu(x, weight, eps);
  const at::Tensor x32 = x.to(at::kFloat);
  const at::Tensor normed = x32 * at::rsqrt(x32.pow(2).mean(-1, /*keepdim=*/true) + eps);
  return weight * normed.to(x.scalar_type());
}

namespace {

double yarn_mscale(double scale, double mscale) {
  return scale <= 1 ? 1.0 : 0.1 * mscale * std::log(scale) + 1.0;
}

}  // namespace

Rope::Rope(const ModelConfig& c) : interleave_(c.rope_interleave) {
  const int64_t dim = c.qk_rope_head_dim;
  const double base = c.rope_theta;
  at::Tensor pos_freqs = at::pow(base, at::arange(0, dim, 2, at::kFloat) / static_cast<double>(dim));
  softmax_scale_ = 1.0 / std::sqrt(static_cast<double>(c.qk_head_dim()));
  if (!c.rope_scaling) {
    inv_freq_ = 1.0 / pos_freqs;
    return;
  }
  const RopeScaling& y = *c.rope_scaling;
  const double factor = y.factor;
  if (y.attention_factor) {
    attention_factor_ = *y.attention_factor;
  } else if (y.mscale && y.mscale_all_dim && *y.mscale != 0 && *y.mscale_all_dim != 0) {
    attention_factor_ = yarn_mscale(factor, *y.mscale) / yarn_mscale(factor, *y.mscale_all_dim);
  } else {
    attention_factor_ = yarn_mscale(factor, 1.0);
  }
  auto correction_dim = [&](double rotations) {
    return dim *
           std::log(static_cast<double>(y.original_max_position_embeddings) /
                    (rotations * 2 * std::numbers::pi)) /
           (2 * std::log(base));
  };
  double low = correction_dim(y.beta_fast), high = correction_dim(y.beta_slow);
  if (y.truncate) {
    low = std::floor(low);
    high = std::ceil(high);
  }
  low = std::max(low, 0.0);
  high = std::min(high, static_cast<double>(dim - 1));
  if (low == high) high += 0.001;
  const at::Tensor ramp = at::clamp((at::arange(dim / 2, at::kFloat) - low) / (high - low), 0, 1);
  const at::Tensor extrapolation = 1.0 / pos_freqs, interpolation = 1.0 / (factor * pos_freqs);
  // HF's formula, term for term: interpolation * (1 - extrapolation_factor) + extrapolation *
  // extrapolation_factor.
  const at::Tensor extrapolation_factor = 1 - ramp;
  inv_freq_ = interpolation * (1 - extrapolation_factor) + extrapolation * extrapolation_factor;
  if (y.mscale_all_dim && *y.mscale_all_dim != 0) {
    const double m = yarn_mscale(factor, *y.mscale_all_dim);
    softmax_scale_ *= m * m;
  }
}

std::pair<at::Tensor, at::Tensor> Rope::cos_sin(const at::Tensor& position_ids) const {
  const at::Tensor freqs =
      position_ids.to(at::kFloat).unsqueeze(-1) * inv_freq_.to(position_ids.device()).view({1, 1, -1});
  return {freqs.cos() * attention_factor_, freqs.sin() * attention_factor_};
}

at::Tensor Rope::apply(const at::Tensor& x, const at::Tensor& cos32, const at::Tensor& sin32) const {
  // cos/sin [B, T, d/2] broadcast over heads when x is [B, H, T, d]; HF casts them to x's dtype first.
  at::Tensor cos = cos32.to(x.scalar_type()), sin = sin32.to(x.scalar_type());
  if (x.dim() == 4) {
    cos = cos.unsqueeze(1);
    sin = sin.unsqueeze(1);
  }
  const int64_t half = x.size(-1) / 2;
  // unbind/split, not two slices: their backward writes the incoming gradients into one tensor (a stack or a
  // cat), where each slice's backward zero-fills a full-size gradient, copies its part in, and the two are
  // added.
  const std::vector<at::Tensor> parts =
      interleave_ ? x.unflatten(-1, {half, 2}).unbind(-1) : x.split_with_sizes({half, half}, -1);
  const at::Tensor &x1 = parts[0], &x2 = parts[1];
  return at::cat({x1 * cos - x2 * sin, x2 * cos + x1 * sin}, -1);
}

MlaImpl::MlaImpl(const ModelConfig& c)
    : heads_(c.num_attention_heads),
      dn_(c.qk_nope_head_dim),
      dr_(c.qk_rope_head_dim),
      dv_(c.v_head_dim),
      r_(c.kv_lora_rank),
      scale_(Rope(c).softmax_scale()) {
  const int64_t d = c.hidden_size, dq = heads_ * (dn_ + dr_);
  if (c.q_lora_rank) {
    q_a_proj = register_module("q_a_proj", Linear(d, *c.q_lora_rank, c.attention_bias));
    q_a_layernorm = register_module("q_a_layernorm", RMSNorm(*c.q_lora_rank, 1e-6));
    q_b_proj = register_module("q_b_proj", Linear(*c.q_lora_rank, dq, false));
  } else {
    q_proj = register_module("q_proj", Linear(d, dq, false));
  }
  kv_a_proj_with_mqa = register_module("kv_a_proj_with_mqa", Linear(d, r_ + dr_, c.attention_bias));
  kv_a_layernorm = register_module("kv_a_layernorm", RMSNorm(r_, 1e-6));
  kv_b_proj = register_module("kv_b_proj", Linear(r_, heads_ * (dn_ + dv_), false));
  o_proj = register_module("o_proj", Linear(heads_ * dv_, d, c.attention_bias));
}

at::Tensor MlaImpl::queries(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin,
                            const Rope& rope) {
  const int64_t b = x.size(0), t = x.size(1);
  const at::Tensor q = (q_proj ? q_proj(x) : q_b_proj(q_a_layernorm(q_a_proj(x))))
                           .view({b, t, heads_, dn_ + dr_})
                           .transpose(1, 2);
  const std::vector<at::Tensor> nope_pe = q.split_with_sizes({dn_, dr_}, -1);
  return at::cat({nope_pe[0], rope.apply(nope_pe[1], cos, sin)}, -1);  // [B, H, T, dn + dr]
}

std::pair<at::Tensor, at::Tensor> MlaImpl::latent(const at::Tensor& x, const at::Tensor& cos,
                                                  const at::Tensor& sin, const Rope& rope) {
  const std::vector<at::Tensor> a = kv_a_proj_with_mqa(x).split_with_sizes({r_, dr_}, -1);  // [B, T, r | dr]
  return {kv_a_layernorm(a[0]), rope.apply(a[1], cos, sin)};
}

std::pair<at::Tensor, at::Tensor> MlaImpl::keys_values(const at::Tensor& x, const at::Tensor& cos,
                                                       const at::Tensor& sin, const Rope& rope) {
  const int64_t b = x.size(0), t = x.size(1);
  auto [c_kv, k_pe] = latent(x, cos, sin, rope);
  const std::vector<at::Tensor> kv = kv_b_proj(c_kv)
                                         .view({b, t, heads_, dn_ + dv_})
                                         .transpose(1, 2)
                                         .split_with_sizes({dn_, dv_}, -1);  // [B, H, T, dn | dv]
  const at::Tensor k = at::cat({kv[0], k_pe.unsqueeze(1).expand({b, heads_, t, dr_})}, -1);
  return {k, kv[1]};
}

at::Tensor MlaImpl::attend(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                           const at::Tensor& mask) {
  at::Tensor scores = at::matmul(q, k.transpose(-2, -1)) * scale_;
  if (mask.defined()) scores = scores + mask;
  const at::Tensor p = at::softmax(scores, -1, at::kFloat).to(q.scalar_type());
  return at::matmul(p, v).transpose(1, 2).reshape({q.size(0), q.size(2), heads_ * dv_});
}

at::Tensor MlaImpl::forward(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin,
                            const at::Tensor& mask, const Rope& rope) {
  const at::Tensor q = queries(x, cos, sin, rope);
  auto [k, v] = keys_values(x, cos, sin, rope);
  return o_proj(attend(q, k, v, mask));
}

at::Tensor MlaImpl::forward_prefix(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin,
                                   const PrefixLayout& l, const Rope& rope) {
  const int64_t split = l.prefixes * l.prefix_len;
  AHA_CHECK(x.dim() == 3 && x.size(0) == 1 && x.size(1) == split + l.rows * l.suffix_len,
            "forward_prefix: x must be [1, ", split + l.rows * l.suffix_len, ", D], got ", x.sizes());
  // The prefix rows and the suffix rows of a [1, total, .] tensor (a split: one gradient write back).
  const int64_t total = x.size(1);
  const auto parts = [&](const at::Tensor& t) {
    const std::vector<at::Tensor> p = t.split_with_sizes({split, total - split}, 1);
    return std::pair{p[0].reshape({l.prefixes, l.prefix_len, t.size(-1)}),
                     p[1].reshape({l.rows, l.suffix_len, t.size(-1)})};
  };
  const auto [xp, xs] = parts(x);
  const auto [cp, cs] = parts(cos);
  const auto [sp, ss] = parts(sin);
  auto [kp, vp] = keys_values(xp, cp, sp, rope);  // [P, H, Lp, .]
  auto [ks, vs] = keys_values(xs, cs, ss, rope);  // [N, H, Ls, .]
  const at::Tensor out_p = attend(queries(xp, cp, sp, rope), kp, vp, l.prefix_mask);
  // Each row reads its prefix's keys and values, then its own.
  const at::Tensor index = l.prefix_of.to(x.device());
  const at::Tensor k = at::cat({kp.index_select(0, index), ks}, 2),
                   v = at::cat({vp.index_select(0, index), vs}, 2);
  const at::Tensor out_s = attend(queries(xs, cs, ss, rope), k, v, l.suffix_mask);
  return o_proj(at::cat({out_p.reshape({1, split, -1}), out_s.reshape({1, total - split, -1})}, 1));
}

at::Tensor MlaImpl::forward_absorbed(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin,
                                     const at::Tensor& mask, const Rope& rope, at::Tensor& cache,
                                     int64_t start) {
  const int64_t b = x.size(0), tn = x.size(1), end = start + tn;
  AHA_CHECK(end <= cache.size(1), "the KV cache holds ", cache.size(1), " positions, decoding needs ", end);
  const at::Tensor q = queries(x, cos, sin, rope);  // [B, H, Tn, dn + dr]
  auto [c_kv, k_pe] = latent(x, cos, sin, rope);
  cache.slice(1, start, end).copy_(at::cat({c_kv, k_pe}, -1));
  // All heads read the same latent, so each head-query is one row of a [B, H*Tn, .] batch against [B, L, .]:
  // batched matrix products over views, with no per-head copy of the cache.
  const at::Tensor seen = cache.slice(1, 0, end);  // [B, L, r + dr]
  const at::Tensor c_all = seen.slice(-1, 0, r_);  // [B, L, r]
  const at::Tensor w = kv_b_proj->weight.view({heads_, dn_ + dv_, r_});
  const at::Tensor w_uk = w.slice(1, 0, dn_), w_uv = w.slice(1, dn_);  // [H, dn, r], [H, dv, r]
  // q~ = W_UK[h]^T q_nope, per head: [H, B*Tn, dn] x [H, dn, r].
  const at::Tensor q_nope = q.slice(-1, 0, dn_).permute({1, 0, 2, 3}).reshape({heads_, b * tn, dn_});
  const at::Tensor q_latent = at::bmm(q_nope, w_uk).view({heads_, b, tn, r_}).permute({1, 0, 2, 3});
  // [q~, q_pe] against the cached [c_kv, k_pe] rows: both score terms in one product.
  const at::Tensor q_all = at::cat({q_latent, q.slice(-1, dn_)}, -1).view({b, heads_ * tn, r_ + dr_});
  at::Tensor o_latent;  // [B, H*Tn, r]
  if (tn == 1 && mask.defined() && mask.numel() == b * end && c10::InferenceMode::is_enabled() &&
      cpu_latent_attention_supported(q_all, cache, mask.reshape({b, end}))) {
    // A decode step on the CPU: scores, softmax and the weighted latents in one pass per row (cpu_decode.h).
    o_latent = cpu_latent_attention(q_all, cache, end, mask.reshape({b, end}), scale_, r_);
  } else {
    at::Tensor scores = at::bmm(q_all, seen.transpose(1, 2)).mul_(scale_).view({b, heads_, tn, end});
    if (mask.defined()) scores = scores + mask;
    const at::Tensor p = at::softmax(scores, -1, at::kFloat).to(q.scalar_type()).view({b, heads_ * tn, end});
    o_latent = at::bmm(p, c_all);
  }
  // o_h = W_UV[h] o_latent_h: [H, B*Tn, r] x [H, r, dv].
  const at::Tensor o =
      at::bmm(o_latent.view({b, heads_, tn, r_}).permute({1, 0, 2, 3}).reshape({heads_, b * tn, r_}),
              w_uv.transpose(1, 2));  // [H, B*Tn, dv]
  return o_proj(o.view({heads_, b, tn, dv_}).permute({1, 2, 0, 3}).reshape({b, tn, heads_ * dv_}));
}

}  // namespace aha::model
