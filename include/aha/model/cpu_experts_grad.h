// The routed experts of a MoE layer on the CPU as one autograd function: the training pass's (and no-grad
// evaluation's) counterpart of cpu_decode.h's inference kernel.
//
// Why: through ATen the routed experts of one training micro-batch are a sort, a gather, two grouped GEMMs, a
// SwiGLU of four operators and a weighted index_add; in backward, slice gradients zero-filled at the size of
// the whole gate|up activation, a serial index_add for the gather's gradient, and the CPU grouped GEMM's
// backward reading each expert's offset with a host sync (.item()) per GEMM: ~1/10 of a GRPO step's update at
// the bench shape besides the GEMMs. Here: the host-side counting sort, one gather, per-expert GEMMs on the
// sorted rows (MKL), the SwiGLU and its backward as one vectorised pass each (kernels/cpu_swiglu.h), and the
// combine and its backward as gathers (each token sums its K rows in slot order, in parallel over tokens).
//
// Must hold: the value and every gradient (input, routing weights, both expert weights) equal to
// ExpertsImpl's ATen path up to fp32 rounding (tests/model/test_cpu_experts_grad.cpp).
#pragma once

#include <ATen/core/Tensor.h>

namespace aha::model {

// sum_k weights[t, k] expert_{experts[t, k]}(x[t]) for x [N, D]: expert e is down[e] (silu(g) u) with [g | u]
// = gate_up[e] x (gate_up [E, 2 Im, D], down [E, D, Im]), like cpu_routed_experts, but differentiable in x,
// weights [N, K], gate_up and down. Adds each expert's pair count into `load` ([E] int64) when non-null. CPU
// float32 only (cpu_routed_experts_supported).
at::Tensor cpu_routed_experts_grad(const at::Tensor& x, const at::Tensor& experts, const at::Tensor& weights,
                                   const at::Tensor& gate_up, const at::Tensor& down,
                                   at::Tensor* load = nullptr);

}  // namespace aha::model
