// y = x W^T (+ b) with all three GEMMs of a linear layer in FP8, as DeepSeek-V3 trains (Fprop, Dgrad, Wgrad
// in E4M3 with fine-grained scales; ../shared/spec/deepseek-v3-model.md):
//   forward   y  = [x]_1x128 . [W]_128x128^T                     (tokens x out)
//   backward  dx = [dy]_1x128 . [W^T]_128x128^T                  (the same blocks of W, transposed)
//             dW = [dy^T]_1x128(tokens) . [x^T]_1x128(tokens)^T  (fp32: the master gradient)
// where [.] is a block-scaled E4M3 quantisation (kernels/fp8.h). The master weight and its gradient keep
// their dtype (fp32); y and dx take x's dtype. On CPU the GEMMs run the reference path, so the numerics are
// the device's up to fp32 summation order.
#pragma once

#include <ATen/core/Tensor.h>

#include "aha/kernels/fp8.h"

namespace aha::kernels {

struct Fp8LinearOptions {
  bool ue8m0 = false;                      // power-of-two scales everywhere
  Fp8Backend backend = Fp8Backend::kAuto;  // GEMM backend on CUDA
};

// x [..., in], weight [out, in], bias [out] or undefined. weight_q: the 128x128 quantisation of `weight` when
// the caller holds one (an FP8 checkpoint's, or a cached one); undefined data: quantised here.
at::Tensor fp8_linear(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias,
                      const Fp8Tensor& weight_q = {}, const Fp8LinearOptions& options = {});

}  // namespace aha::kernels
