// SwiGLU's elementwise part on the CPU, fp32, vectorised (exp_lanes): h = silu(g) u and its backward. Shared
// by the decode experts kernel (cpu_decode.cpp) and the trainable CPU experts (cpu_experts_grad.cpp). No
// torch headers.
#pragma once

#include <cstdint>

namespace aha::kernels {

// h[j] = silu(g[j]) u[j] = g[j] u[j] / (1 + e^-g[j]) for j < n.
void silu_mul(const float* g, const float* u, float* h, int64_t n);

// The gradients of h = silu(g) u given dh: du = dh silu(g), dg = dh u s (1 + g (1 - s)) with s = sigmoid(g),
// for j < n.
void silu_mul_backward(const float* g, const float* u, const float* dh, float* dg, float* du, int64_t n);

}  // namespace aha::kernels
