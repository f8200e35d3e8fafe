// RMSNorm as HF computes it: y = w * cast_to_input_dtype(x32 * rsqrt(mean(x32^2) + eps)).
// The statistics are taken in fp32 whatever the input dtype; the weight multiplies after the cast back.
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

namespace aha::model {

class RMSNormImpl : public torch::nn::Module {
 public:
  RMSNormImpl(int64_t dim, double eps);
  at::Tensor forward(const at::Tensor& x);  // [..., dim] -> [..., dim]

  at::Tensor weight;  // [dim]
  double eps;
};
TORCH_MODULE(RMSNorm);

}  // namespace aha::model
