// The element-wise error bound of a block-scaled E4M3 GEMM against the exact product, shared by the FP8
// kernel and FP8 linear tests.
//
// An operand value a in a group of scale s is stored as s * q, q = rn(a / s) in E4M3 (3 mantissa bits):
//   normal |a / s| >= 2^-6:  |q - a/s| <= 2^-4 |a/s|   (half an ulp; an ulp is 2^-3 of the leading bit)
//   subnormal:               |q - a/s| <= 2^-10        (half the subnormal spacing 2^-9)
// so |a^ - a| <= e_a = u |a| + 2^-10 s with u = 2^-4 + 2^-23 (the fp32 division a / s rounds too). Then
//   |a^ b^ - a b| <= e_a |b| + |a^| e_b <= e_a |b| + (|a| + e_a) e_b, and summed over k:
//   |C^ - C| <= E_A |B|^T + (|A| + E_A) E_B^T + gamma (|A| + E_A)(|B| + E_B)^T,
// where the last term covers fp32 accumulation on both sides and the two scale multiplications per K block:
// gamma = (k + 4) 2^-23.
#pragma once

#include <ATen/ATen.h>

#include <cmath>

#include "aha/kernels/fp8.h"

namespace aha::test {

// a [m, k] and b [n, k] as given to the GEMM, qa and qb their quantisations: the bound on |C^ - a b^T|.
inline at::Tensor fp8_gemm_bound(const at::Tensor& a, const kernels::Fp8Tensor& qa, const at::Tensor& b,
                                 const kernels::Fp8Tensor& qb) {
  auto element_error = [](const at::Tensor& x, const kernels::Fp8Tensor& q) {
    const at::Tensor s = q.scale
                             .repeat_interleave(q.block_rows, 0)  // the scale of each element
                             .repeat_interleave(128, 1)
                             .narrow(0, 0, x.size(0))
                             .narrow(1, 0, x.size(1));
    return (std::exp2(-4.0) + std::exp2(-23.0)) * x.abs() + std::exp2(-10.0) * s;
  };
  const at::Tensor a32 = a.to(at::kFloat), b32 = b.to(at::kFloat);
  const at::Tensor ea = element_error(a32, qa), eb = element_error(b32, qb);
  const double gamma = static_cast<double>(a.size(1) + 4) * std::exp2(-23.0);
  return at::mm(ea, b32.abs().t()) + at::mm(a32.abs() + ea, eb.t()) +
         gamma * at::mm(a32.abs() + ea, (b32.abs() + eb).t());
}

}  // namespace aha::test
