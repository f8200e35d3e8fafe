// The torch-facing boundary of the FP8 kernels (kernels/fp8.cuh): block-scaled E4M3 quantisation and the
// block-scaled GEMMs DeepSeek-V3 trains with (1x128 activation groups, 128x128 weight blocks, fp32 promotion
// every 128 of K; ../shared/spec/deepseek-v3-model.md).
//
// Every call checks dtype, device, shape, alignment and contiguity first, with messages that name the
// argument and what is wrong, then runs on the tensors' device: on CPU the reference rules
// (kernels/fp8_ref.cpp; the GEMM as one fp32 matmul per 128-wide K block, promoted with the scales), on CUDA
// the sm_90a kernels or cuBLASLt.
#pragma once

#include <ATen/core/Tensor.h>

#include <string>

namespace aha::kernels {

inline constexpr int64_t kFp8BlockSize = 128;  // 1x128 groups, 128x128 blocks

// A quantised operand: data * scale (broadcast over its groups) is the value it stands for.
struct Fp8Tensor {
  at::Tensor data;   // [rows, cols] float8_e4m3fn ([groups, rows, cols] for grouped weights)
  at::Tensor scale;  // float32 [ceil(rows / block_rows), ceil(cols / 128)] (a leading [groups] likewise)
  int64_t block_rows = 1;  // 1: 1x128 groups (activations); 128: 128x128 blocks (weights)
};

// x [rows, cols] (fp32 or bf16) -> 1x128 groups along cols. ue8m0: power-of-two scales.
Fp8Tensor quantize_fp8_rows(const at::Tensor& x, bool ue8m0 = false);
// x [rows, cols] -> the 1x128 quantisation of x^T: data [cols, rows], scale [cols, ceil(rows / 128)]. The
// weight-gradient GEMM contracts over tokens, so its operands are grouped along the token dimension.
Fp8Tensor quantize_fp8_rows_transposed(const at::Tensor& x, bool ue8m0 = false);
// w [rows, cols] -> 128x128 blocks.
Fp8Tensor quantize_fp8_blocks(const at::Tensor& w, bool ue8m0 = false);
// The 128x128-block quantisation of w^T without quantising again: the blocks of w^T are the transposed blocks
// of w, with the same scales.
Fp8Tensor transpose_fp8_blocks(const Fp8Tensor& w);
// data * scale in fp32.
at::Tensor dequantize_fp8(const Fp8Tensor& t);

enum class Fp8Backend {
  kAuto,      // CPU: the reference path; CUDA: the wgmma kernel where it applies (sm_90, b in 128x128
              // blocks), else the mma.sync one
  kAha,       // aha's mma.sync kernel (CUDA only, any operands)
  kWgmma,     // aha's wgmma + TMA kernel (CUDA sm_90 only; b in 128x128 blocks)
  kCublasLt,  // cuBLASLt block scaling (CUDA only; 1x128 x 128x128 operands, k % 128 == 0)
};
Fp8Backend parse_fp8_backend(const std::string& name);  // "auto", "aha", "wgmma", "cublaslt"

// C [m, n] = A [m, k] x B [n, k]^T, block-scaled: a.block_rows == 1; b.block_rows 1 or 128. out_dtype:
// float32 or bfloat16.
at::Tensor fp8_gemm_nt(const Fp8Tensor& a, const Fp8Tensor& b, at::ScalarType out_dtype,
                       Fp8Backend backend = Fp8Backend::kAuto);

// MoE experts in the contiguous layout: rows of A are grouped by expert, m_group [m] int32 names each row's
// expert (-1: a padding row, its output row is zero), every expert's rows start at a multiple of 128.
// b: data [E, n, k], scale [E, ceil(n / 128), ceil(k / 128)], block_rows 128. Same as one fp8_gemm_nt per
// expert on its rows. backend: kCublasLt is not grouped (the aha kernels serve it).
at::Tensor fp8_grouped_gemm_nt(const Fp8Tensor& a, const Fp8Tensor& b, const at::Tensor& m_group,
                               at::ScalarType out_dtype, Fp8Backend backend = Fp8Backend::kAuto);

// The reference GEMM as plain loops (kernels/fp8_ref.cpp), CPU tensors only, fp32 out: what the tests hold
// the other paths to.
at::Tensor fp8_gemm_nt_loops(const Fp8Tensor& a, const Fp8Tensor& b);

}  // namespace aha::kernels
