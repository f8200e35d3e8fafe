// Linear: y = x W^T (+ b), the one place where the large matrix products of the model happen.
//
// Every projection of the attention and the dense MLPs goes through this module, so the precision policy is
// decided here and nowhere else: the weight's dtype (fp32, bf16), or with set_fp8(true) the FP8 block-scaled
// GEMMs of kernels/fp8_linear.h (master weight and gradient stay in the weight's dtype). Parameter names are
// `weight` [out, in] and `bias` [out], as in HF checkpoints.
//
// In FP8 the 128x128 quantisation of the weight is kept between calls and redone only when the weight changes
// (its version counter moves: an optimizer step, a load). An FP8 checkpoint's own E4M3 weight and scales are
// installed with set_fp8_weight and used as they are until the weight changes.
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include "aha/kernels/fp8.h"

namespace aha::model {

class LinearImpl : public torch::nn::Module {
 public:
  LinearImpl(int64_t in_features, int64_t out_features, bool bias);

  at::Tensor forward(const at::Tensor& x);  // [..., in] -> [..., out]

  int64_t in_features() const { return in_features_; }
  int64_t out_features() const { return out_features_; }

  // FP8 compute for forward() (and its backward); ue8m0: power-of-two scales.
  void set_fp8(bool on, bool ue8m0 = false) {
    fp8_ = on;
    ue8m0_ = ue8m0;
  }
  bool fp8() const { return fp8_; }
  // Installs the quantised form of the current `weight` (data [out, in] E4M3, 128x128 block scales).
  void set_fp8_weight(kernels::Fp8Tensor weight_q);
  // The quantised weight forward() uses in FP8, on the weight's device (quantised now if stale).
  kernels::Fp8Tensor fp8_weight();

  at::Tensor weight;  // [out, in]
  at::Tensor bias;    // [out] or undefined

 private:
  int64_t in_features_, out_features_;
  bool fp8_ = false, ue8m0_ = false;
  kernels::Fp8Tensor weight_q_;  // quantised `weight` at version weight_q_version_
  int64_t weight_q_version_ = -1;
};
TORCH_MODULE(Linear);

// Switches the Linear layers of the attention and of the MLPs (dense layers and shared experts: every Linear
// under a `self_attn.` or `mlp.` module) to FP8; embeddings, norms, the router, eh_proj and the output heads
// keep their precision. Returns how many layers were switched.
int64_t enable_fp8_linears(torch::nn::Module& model, bool ue8m0 = false);

}  // namespace aha::model
