// FP8 (E4M3) block-scaled quantisation and GEMM, as DeepSeek-V3 trains with it
// (../shared/spec/deepseek-v3-model.md, "FP8 formats").
//
// What must hold, on the CPU reference and on the device alike:
// - A group (1x128 along the contiguous dimension for activations, 128x128 for weights) has the scale
//   s = max(amax, 1e-4) / 448 in fp32, or with ue8m0 the power of two 2^ceil(log2 s) (computed exactly on the
//   float's bits); the stored value is e4m3(x / s), rounded to nearest even and saturated at +-448 (CUDA's
//   __NV_SATFINITE). Dequantisation is q * s. Partial groups at the edges are groups of what is there.
// - The GEMM is "NT": C[m, n] = sum_k A[m, k] B[n, k], both operands K-contiguous. For every 128-wide K block
//   kb the products of the E4M3 values are summed in fp32, then promoted: acc += partial * sa[m, kb] *
//   sb[n / b_block_rows, kb]; C is cast once at the end. b_block_rows is 128 for weights (128x128 blocks) and
//   1 for activations (the weight-gradient GEMM, where both operands are 1x128-scaled).
// Plain declarations only: included by host C++ too. Scale tensors are row-major fp32.
#pragma once

#include <cstdint>

namespace aha::kernels {

inline constexpr int kFp8Group = 128;      // elements per scale group along K (and rows per weight block)
inline constexpr float kE4m3Max = 448.0f;  // largest finite E4M3 value
inline constexpr float kFp8MinAmax = 1e-4f;

// ---- CPU reference (kernels/fp8_ref.cpp)
// --------------------------------------------------------------------- fp32 -> E4M3 bits: round to nearest
// even, saturate at +-448, NaN -> 0x7f (sign kept).
uint8_t e4m3_from_float(float x);
float e4m3_to_float(uint8_t bits);
// The scale of a group whose largest magnitude is amax.
float fp8_group_scale(float amax, bool ue8m0);

// x [rows, cols] -> q [rows, cols] (E4M3 bits), s [rows, ceil(cols / 128)].
void fp8_quantize_rows_ref(const float* x, int64_t rows, int64_t cols, bool ue8m0, uint8_t* q, float* s);
// x [rows, cols] -> q [cols, rows] = the 1x128 quantisation of x^T, s [cols, ceil(rows / 128)].
void fp8_quantize_rows_transposed_ref(const float* x, int64_t rows, int64_t cols, bool ue8m0, uint8_t* q,
                                      float* s);
// w [rows, cols] -> q [rows, cols], s [ceil(rows / 128), ceil(cols / 128)].
void fp8_quantize_blocks_ref(const float* w, int64_t rows, int64_t cols, bool ue8m0, uint8_t* q, float* s);

// C [m, n] fp32 = block-scaled A [m, k] (sa [m, ceil(k/128)]) x B [n, k]^T (sb [ceil(n/b_block_rows),
// ceil(k/128)]), promoted to fp32 per 128-wide K block, in the order the device kernels use.
void fp8_gemm_nt_ref(const uint8_t* a, const float* sa, const uint8_t* b, const float* sb, int64_t m,
                     int64_t n, int64_t k, int b_block_rows, float* c);

#ifdef AHA_WITH_CUDA
// ---- sm_90a device code (kernels/fp8.cu, kernels/fp8_cublaslt.cu)
// ------------------------------------------- Pointers are device pointers; `stream` is a cudaStream_t; each
// returns a cudaError_t (0 on success) unless said otherwise.

// Same layouts as the references above; in is fp32 (in_bf16 = 0) or bf16 (in_bf16 = 1) and contiguous.
int sm90_fp8_quantize_rows(const void* x, int in_bf16, int64_t rows, int64_t cols, int ue8m0, uint8_t* q,
                           float* s, void* stream);
int sm90_fp8_quantize_rows_transposed(const void* x, int in_bf16, int64_t rows, int64_t cols, int ue8m0,
                                      uint8_t* q, float* s, void* stream);
int sm90_fp8_quantize_blocks(const void* w, int in_bf16, int64_t rows, int64_t cols, int ue8m0, uint8_t* q,
                             float* s, void* stream);

struct Fp8GemmParams {
  const uint8_t* a;        // [m, k] E4M3, row-major
  const float* sa;         // [m, ceil(k / 128)]
  const uint8_t* b;        // [groups, n, k] E4M3 (groups = 1 for a plain GEMM)
  const float* sb;         // [groups, ceil(n / b_block_rows), ceil(k / 128)]
  void* c;                 // [m, n], fp32 or bf16 (c_bf16)
  const int32_t* m_group;  // grouped GEMM: [m] group (expert) of each row, -1 for padding rows; else null
  int64_t m, n, k;
  int b_block_rows;  // 128 (weights) or 1 (activations)
  int c_bf16;
  int64_t b_groups = 1;  // leading dimension of b (experts of a grouped GEMM)
};
// The mma.sync (m16n8k32 e4m3) kernel: 128x128 output tiles, one 128-wide K block per main-loop step.
// Needs k % 16 == 0 (16-byte rows; the boundary pads K with zeros); m and n arbitrary. Grouped: rows of a
// group are contiguous and every group starts at a multiple of 128.
int sm90_fp8_gemm_nt(const Fp8GemmParams& p, void* stream);
// The wgmma + TMA kernel (kernels/fp8_wgmma.cu): 128x128 tiles, a producer warpgroup issuing TMA loads
// into a 4-stage mbarrier pipeline, two consumer warpgroups on wgmma m64n128k32 e4m3. Needs b_block_rows
// 128 and k % 16 == 0; m and n arbitrary; grouped as above. cudaErrorSymbolNotFound: the driver has no
// cuTensorMapEncodeTiled.
int sm90_fp8_gemm_nt_wgmma(const Fp8GemmParams& p, void* stream);
// 0 when the wgmma kernel can run in this process (the driver has cuTensorMapEncodeTiled and the sm_90a image
// of the kernel is the one loaded), else the cudaError_t that says why not. Needs a current sm_90 device.
int sm90_fp8_wgmma_status();

// cuBLASLt block-scaled FP8 (VEC128_32F on the activations, BLK128x128_32F on the weights): the baseline
// and fallback. sa_t: the activation scales transposed and padded, [ceil(k/128), lda_s] with lda_s =
// roundup(m, 4); sb_p: weight scales [ceil(n/128), ldb_s], ldb_s = roundup(ceil(k/128), 4). handle: a
// cublasLtHandle_t; workspace: device memory of workspace_bytes. Returns a cublasStatus_t (0 on success);
// `error` gets the name of the step that failed.
int cublaslt_fp8_gemm_nt(void* handle, const uint8_t* a, const float* sa_t, const uint8_t* b,
                         const float* sb_p, void* c, int c_bf16, int64_t m, int64_t n, int64_t k,
                         void* workspace, int64_t workspace_bytes, void* stream, const char** error);
#endif

}  // namespace aha::kernels
