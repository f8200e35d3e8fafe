// cuBLASLt's block-scaled FP8 GEMM (cuBLAS 12.9+ on Hopper): 1x128 scales (VEC128_32F) on the activations,
// 128x128 block scales (BLK128x128_32F) on the weights, fp32 accumulation. The baseline aha's own kernel is
// measured against (tests/bench/bench_fp8_gemm.cpp), and the fallback.
//
// cuBLAS is column-major, so the row-major C [m, n] = A [m, k] B [n, k]^T is computed as C^T = B A^T:
// cuBLAS's "A" is our B (k x n, transposed), its "B" is our A (k x m, not transposed), its D is n x m with ld
// n. The scale layouts are cuBLASLt's: the 1x128 scales with the row index contiguous and the row count
// padded to a multiple of 4; the block scales with the K-block index contiguous and that count padded to a
// multiple of 4.
#define AHA_WITH_CUDA 1
#include <cublasLt.h>
#include <cuda_runtime.h>

#include "fp8.cuh"

namespace aha::kernels {
namespace {

// Destroys the descriptors however the call ends.
struct Descriptors {
  cublasLtMatmulDesc_t op = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, d = nullptr;
  cublasLtMatmulPreference_t pref = nullptr;
  ~Descriptors() {
    if (pref) cublasLtMatmulPreferenceDestroy(pref);
    if (d) cublasLtMatrixLayoutDestroy(d);
    if (b) cublasLtMatrixLayoutDestroy(b);
    if (a) cublasLtMatrixLayoutDestroy(a);
    if (op) cublasLtMatmulDescDestroy(op);
  }
};

}  // namespace

int cublaslt_fp8_gemm_nt(void* handle, const uint8_t* a, const float* sa_t, const uint8_t* b,
                         const float* sb_p, void* c, int c_bf16, int64_t m, int64_t n, int64_t k,
                         void* workspace, int64_t workspace_bytes, void* stream, const char** error) {
  Descriptors desc;
  cublasStatus_t st;
  auto fail = [&](const char* step) {
    if (error) *error = step;
    return static_cast<int>(st);
  };
  if ((st = cublasLtMatmulDescCreate(&desc.op, CUBLAS_COMPUTE_32F, CUDA_R_32F)) != CUBLAS_STATUS_SUCCESS)
    return fail("cublasLtMatmulDescCreate");
  const cublasOperation_t trans_a = CUBLAS_OP_T, trans_b = CUBLAS_OP_N;
  const int32_t mode_a = CUBLASLT_MATMUL_MATRIX_SCALE_BLK128x128_32F,
                mode_b = CUBLASLT_MATMUL_MATRIX_SCALE_VEC128_32F;
  struct Attr {
    cublasLtMatmulDescAttributes_t name;
    const void* value;
    size_t size;
  };
  const Attr attrs[] = {
      {CUBLASLT_MATMUL_DESC_TRANSA, &trans_a, sizeof(trans_a)},
      {CUBLASLT_MATMUL_DESC_TRANSB, &trans_b, sizeof(trans_b)},
      {CUBLASLT_MATMUL_DESC_A_SCALE_MODE, &mode_a, sizeof(mode_a)},
      {CUBLASLT_MATMUL_DESC_B_SCALE_MODE, &mode_b, sizeof(mode_b)},
      {CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, &sb_p, sizeof(sb_p)},
      {CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, &sa_t, sizeof(sa_t)},
  };
  for (const Attr& attr : attrs)
    if ((st = cublasLtMatmulDescSetAttribute(desc.op, attr.name, attr.value, attr.size)) !=
        CUBLAS_STATUS_SUCCESS)
      return fail("cublasLtMatmulDescSetAttribute");
  const cudaDataType_t out_type = c_bf16 ? CUDA_R_16BF : CUDA_R_32F;
  if ((st = cublasLtMatrixLayoutCreate(&desc.a, CUDA_R_8F_E4M3, k, n, k)) != CUBLAS_STATUS_SUCCESS ||
      (st = cublasLtMatrixLayoutCreate(&desc.b, CUDA_R_8F_E4M3, k, m, k)) != CUBLAS_STATUS_SUCCESS ||
      (st = cublasLtMatrixLayoutCreate(&desc.d, out_type, n, m, n)) != CUBLAS_STATUS_SUCCESS)
    return fail("cublasLtMatrixLayoutCreate");
  if ((st = cublasLtMatmulPreferenceCreate(&desc.pref)) != CUBLAS_STATUS_SUCCESS)
    return fail("cublasLtMatmulPreferenceCreate");
  const uint64_t ws = static_cast<uint64_t>(workspace_bytes);
  if ((st = cublasLtMatmulPreferenceSetAttribute(desc.pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws,
                                                 sizeof(ws))) != CUBLAS_STATUS_SUCCESS)
    return fail("cublasLtMatmulPreferenceSetAttribute");
  cublasLtMatmulHeuristicResult_t heuristic{};
  int found = 0;
  auto lt = static_cast<cublasLtHandle_t>(handle);
  if ((st = cublasLtMatmulAlgoGetHeuristic(lt, desc.op, desc.a, desc.b, desc.d, desc.d, desc.pref, 1,
                                           &heuristic, &found)) != CUBLAS_STATUS_SUCCESS)
    return fail("cublasLtMatmulAlgoGetHeuristic");
  if (found == 0) {
    st = CUBLAS_STATUS_NOT_SUPPORTED;
    return fail("cublasLtMatmulAlgoGetHeuristic found no algorithm");
  }
  const float alpha = 1.0f, beta = 0.0f;
  if ((st = cublasLtMatmul(lt, desc.op, &alpha, b, desc.a, a, desc.b, &beta, c, desc.d, c, desc.d,
                           &heuristic.algo, workspace, static_cast<size_t>(workspace_bytes),
                           static_cast<cudaStream_t>(stream))) != CUBLAS_STATUS_SUCCESS)
    return fail("cublasLtMatmul");
  return 0;
}

}  // namespace aha::kernels
