// The torch-facing boundary of the smoke kernel (kernels/axpy.cuh): y += a * x in fp32.
// On a CUDA tensor it launches the sm_90a kernel on torch's current stream; on a CPU tensor it runs the
// reference. Checks dtype, device, shape and contiguity first, with messages that name what is wrong.
#pragma once

#include <ATen/core/Tensor.h>

namespace aha::kernels {

// Whether this build compiled the CUDA kernels (AHA_CUDA with nvcc present).
bool cuda_kernels_built();

// y += a * x, in place. x and y: float32, same device, same shape, contiguous.
void axpy_(at::Tensor& y, float a, const at::Tensor& x);

}  // namespace aha::kernels
