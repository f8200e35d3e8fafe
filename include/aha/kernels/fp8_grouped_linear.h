// The MoE routed experts' GEMMs in FP8: y_e = x_e W_e^T for every expert e, on tokens sorted by expert, with
// the three GEMMs of each projection block-scaled as fp8_linear does (kernels/fp8_linear.h):
//   forward   y  = [x]_1x128 . [W_e]_128x128^T          grouped (fp8_grouped_gemm_nt, contiguous layout)
//   backward  dx = [dy]_1x128 . [W_e^T]_128x128^T       grouped, the same blocks of W_e transposed
//             dW_e = [dy_e^T]_1x128 . [x_e^T]_1x128^T   one GEMM per expert with tokens, fp32
// The rows of x come sorted by expert (counts[e] rows for expert e, in order); the grouped GEMM wants every
// expert to start at a multiple of 128 rows, so the quantised rows are scattered into a padded buffer
// (padding rows: expert -1) and the outputs gathered back. Master weights and their gradients keep their
// dtype; y and dx take x's dtype.
#pragma once

#include <ATen/core/Tensor.h>

#include <vector>

#include "aha/kernels/fp8.h"
#include "aha/kernels/fp8_linear.h"

namespace aha::kernels {

// w [E, rows, cols] -> data [E, rows, cols] E4M3, scale [E, ceil(rows / 128), ceil(cols / 128)]: each
// expert's 128x128 blocks.
Fp8Tensor quantize_fp8_blocks_grouped(const at::Tensor& w, bool ue8m0 = false);

// x [P, in] (rows sorted by expert), weight [E, out, in], counts: rows of each expert (sum P) -> [P, out].
// weight_q: the grouped quantisation of `weight` when the caller holds one; undefined data: quantised here.
at::Tensor fp8_grouped_linear(const at::Tensor& x, const at::Tensor& weight,
                              const std::vector<int64_t>& counts, const Fp8Tensor& weight_q = {},
                              const Fp8LinearOptions& options = {});

}  // namespace aha::kernels
