// Rotary position embedding with optional YaRN, exactly as HF's DeepseekV3 computes it.
//
// inv_freq_i = ramp_i / (factor * theta^(2i/d)) + (1 - ramp_i) / theta^(2i/d) under YaRN (ramp over the
// correction range of beta_fast..beta_slow rotations), theta^(-2i/d) without. cos/sin are multiplied by the
// attention factor (mscale(factor, mscale) / mscale(factor, mscale_all_dim), 1 for V3). With interleaving
// (DeepSeek's layout) the pair (x_2i, x_2i+1) rotates by angle_i and the result is written de-interleaved,
// [all first | all second], for queries and keys alike, so q.k is the same as rotating interleaved pairs in
// place.
#pragma once

#include <ATen/core/Tensor.h>

#include <utility>

#include "aha/model/config.h"

namespace aha::model {

class Rope {
 public:
  explicit Rope(const ModelConfig& c);

  // cos, sin of shape [B, T, d/2] (fp32) for positions [B, T].
  std::pair<at::Tensor, at::Tensor> cos_sin(const at::Tensor& position_ids) const;
  // Rotates x [B, H, T, d] (or [B, T, d] with H absent) with cos/sin [B, T, d/2]; returns the same shape and
  // dtype.
  at::Tensor apply(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin) const;

  const at::Tensor& inv_freq() const { return inv_freq_; }  // [d/2] fp32
  double attention_factor() const { return attention_factor_; }
  // The softmax scale of MLA: (dn + dr)^-0.5, times mscale(factor, mscale_all_dim)^2 under YaRN.
  double softmax_scale() const { return softmax_scale_; }

 private:
  at::Tensor inv_freq_;
  double attention_factor_ = 1.0;
  double softmax_scale_ = 1.0;
  bool interleave_ = true;
};

}  // namespace aha::model
