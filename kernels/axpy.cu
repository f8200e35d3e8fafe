#define AHA_WITH_CUDA 1
#include <cuda_runtime.h>

#include "axpy.cuh"

namespace aha::kernels {
namespace {

__global__ void axpy_f32_kernel(float a, const float* __restrict__ x, float* __restrict__ y, int64_t n) {
  const int64_t stride = static_cast<int64_t>(blockDim.x) * gridDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    y[i] = __fmaf_rn(a, x[i], y[i]);
  }
}

}  // namespace

int sm90_axpy_f32(float a, const float* x, float* y, int64_t n, void* stream) {
  if (n == 0) return 0;
  constexpr int kThreads = 256;
  const int64_t blocks = (n + kThreads - 1) / kThreads;
  const int grid = static_cast<int>(blocks < 132 * 16 ? blocks : 132 * 16);  // 132 SMs on H100/H200
  axpy_f32_kernel<<<grid, kThreads, 0, static_cast<cudaStream_t>(stream)>>>(a, x, y, n);
  return static_cast<int>(cudaGetLastError());
}

}  // namespace aha::kernels
