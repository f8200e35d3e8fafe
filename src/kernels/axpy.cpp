#include "aha/kernels/axpy.h"

#include <ATen/ATen.h>

#include "aha/core/error.h"
#include "axpy.cuh"

#ifdef AHA_WITH_CUDA
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime_api.h>
#endif

namespace aha::kernels {

bool cuda_kernels_built() {
#ifdef AHA_WITH_CUDA
  return true;
#else
  return false;
#endif
}

void axpy_(at::Tensor& y, float a, const at::Tensor& x) {
  AHA_CHECK(x.defined() && y.defined(), "axpy_: x and y must be defined tensors");
  AHA_CHECK(x.scalar_type() == at::kFloat && y.scalar_type() == at::kFloat,
            "axpy_: x and y must be float32, got x ", x.scalar_type(), " and y ", y.scalar_type());
  AHA_CHECK(x.device() == y.device(), "axpy_: x is on ", x.device(), " but y is on ", y.device());
  AHA_CHECK(x.sizes() == y.sizes(), "axpy_: x has shape ", x.sizes(), " but y has shape ", y.sizes());
  AHA_CHECK(x.is_contiguous() && y.is_contiguous(), "axpy_: x and y must be contiguous");
  if (y.device().is_cpu()) {
    axpy_f32_ref(a, x.data_ptr<float>(), y.data_ptr<float>(), y.numel());
    return;
  }
#ifdef AHA_WITH_CUDA
  AHA_CHECK(y.device().is_cuda(), "axpy_: unsupported device ", y.device());
  c10::cuda::CUDAGuard guard(y.device());
  const int err = sm90_axpy_f32(a, x.data_ptr<float>(), y.data_ptr<float>(), y.numel(),
                                c10::cuda::getCurrentCUDAStream().stream());
  AHA_CHECK(err == 0, "axpy_: kernel launch failed: ", cudaGetErrorString(static_cast<cudaError_t>(err)));
#else
  AHA_FAIL("axpy_: tensor on ", y.device(),
           " but this build of aha has no CUDA kernels (AHA_CUDA=OFF or no nvcc)");
#endif
}

}  // namespace aha::kernels
