// Multi-head latent attention (DeepSeek-V2/V3), training/prefill form.
//
//   c_q = RMSNorm(W_qa x), q = W_qb c_q (or q = W_q x without q low rank)   -> [B, H, T, dn + dr]
//   [c_kv | k_pe] = W_kva x; c_kv = RMSNorm(c_kv); k_pe = RoPE(k_pe)          -> the latent: r + dr values
//   per token k_h = [W_UK[h] c_kv ; k_pe], v_h = W_UV[h] c_kv (W_kvb viewed [H, dn + dv, r]) out = W_o
//   concat_h softmax_fp32(q_h k_h^T * scale + mask) v_h
// The latent (c_kv, k_pe) is what the decode-time cache stores; `latent()` exposes it.
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include <utility>

#include "aha/model/config.h"
#include "aha/model/linear.h"
#include "aha/model/norm.h"
#include "aha/model/rope.h"

namespace aha::model {

// Rows that share a prefix as one flat run of tokens (TransformerImpl::forward_prefix_batch): the first
// prefixes x prefix_len tokens are the prefixes [P, Lp], the rest the suffixes [N, Ls]; suffix row n attends
// to the keys of prefix prefix_of[n], then causally to its own.
struct PrefixLayout {
  int64_t prefixes = 0, prefix_len = 0, rows = 0, suffix_len = 0;
  at::Tensor prefix_of;    // [N] int64 in [0, P)
  at::Tensor prefix_mask;  // additive [P, 1, Lp, Lp]: causal over each prefix's tokens
  at::Tensor suffix_mask;  // additive [N, 1, Ls, Lp + Ls]: the prefix's tokens, then causal over the suffix's
};

class MlaImpl : public torch::nn::Module {
 public:
  explicit MlaImpl(const ModelConfig& c);

  // x [B, T, D]; cos/sin [B, T, dr/2]; mask additive [B, 1, T, T] in x's dtype (0 allowed, lowest() masked).
  at::Tensor forward(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin,
                     const at::Tensor& mask, const Rope& rope);

  // The same attention over a prefix batch: x [1, P Lp + N Ls, D], cos/sin [1, P Lp + N Ls, dr/2] (each
  // token's own position). Each prefix's keys and values are computed once and read by all its rows.
  at::Tensor forward_prefix(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin,
                            const PrefixLayout& layout, const Rope& rope);

  // Absorbed form (decode): x [B, Tn, D] are the tokens at cache positions [start, start + Tn). Their latents
  // are written into `cache` [B, capacity, r + dr] (this layer's slice), then queries attend to positions [0,
  // start + Tn) through the latent directly: q~_h = W_UK[h]^T q_nope_h, score = q~.c_kv + q_pe.k_pe, o_h =
  // W_UV[h] sum_j p_j c_kv_j. `mask` additive [B, 1, Tn, start + Tn]. Equal to `forward` up to rounding.
  at::Tensor forward_absorbed(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin,
                              const at::Tensor& mask, const Rope& rope, at::Tensor& cache, int64_t start);

  // The compressed KV of x: c_kv [B, T, r] (normalised) and k_pe [B, T, dr] (rotated).
  std::pair<at::Tensor, at::Tensor> latent(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin,
                                           const Rope& rope);

  Linear q_proj{nullptr};  // when q_lora_rank is null
  Linear q_a_proj{nullptr};
  RMSNorm q_a_layernorm{nullptr};
  Linear q_b_proj{nullptr};
  Linear kv_a_proj_with_mqa{nullptr};
  RMSNorm kv_a_layernorm{nullptr};
  Linear kv_b_proj{nullptr};
  Linear o_proj{nullptr};

 private:
  at::Tensor queries(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin, const Rope& rope);
  // Keys [B, H, T, dn + dr] and values [B, H, T, dv] of x [B, T, D].
  std::pair<at::Tensor, at::Tensor> keys_values(const at::Tensor& x, const at::Tensor& cos,
                                                const at::Tensor& sin, const Rope& rope);
  // softmax_fp32(q k^T * scale + mask) v for q [B, H, Tq, .], k [B, H, Tk, .], v [B, H, Tk, dv]: [B, Tq, H
  // dv].
  at::Tensor attend(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& mask);
  int64_t heads_, dn_, dr_, dv_, r_;
  double scale_;
};
TORCH_MODULE(Mla);

}  // namespace aha::model
