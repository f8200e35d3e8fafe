// Linear: y = x W^T (+ b), the one place where the large matrix products of the model happen.
//
// Every projection of the attention and the dense MLPs goes through this module, so the precision policy
// (fp32, bf16 today; FP8 block-scaled GEMMs with the FP8 issue) is decided here and nowhere else. Parameter
// names are `weight` [out, in] and `bias` [out], as in HF checkpoints.
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

namespace aha::model {

class LinearImpl : public torch::nn::Module {
 public:
  LinearImpl(int64_t in_features, int64_t out_features, bool bias);

  at::Tensor forward(const at::Tensor& x);  // [..., in] -> [..., out]

  int64_t in_features() const { return in_features_; }
  int64_t out_features() const { return out_features_; }

  at::Tensor weight;  // [out, in]
  at::Tensor bias;    // [out] or undefined

 private:
  int64_t in_features_, out_features_;
};
TORCH_MODULE(Linear);

}  // namespace aha::model
