// The kernels pipeline's smallest member: y += a * x in fp32. It exists to prove, on every GPU check, that a
// kernel compiled for sm_90a by this build loads, launches on torch's stream and matches its CPU reference
// exactly (one fused multiply-add per element on both sides). Plain declarations only: included by host C++
// too.
#pragma once

#include <cstdint>

namespace aha::kernels {

// CPU reference: y[i] = fmaf(a, x[i], y[i]).
void axpy_f32_ref(float a, const float* x, float* y, int64_t n);

#ifdef AHA_WITH_CUDA
// x, y: device pointers to n floats; stream: a cudaStream_t. Returns the cudaError_t of the launch (0 on
// success).
int sm90_axpy_f32(float a, const float* x, float* y, int64_t n, void* stream);
#endif

}  // namespace aha::kernels
