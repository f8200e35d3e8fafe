// fp32 CPU kernels for the decode step (a handful of tokens per call): the routed experts of a MoE layer.
//
// Why: decoding 16 rows, a MoE layer of the 20M bench model runs ~28 experts on ~2 tokens each. Through ATen
// that is ~170 operator calls per layer (sort, gather, two GEMMs, silu, mul, cat, index_add per expert) whose
// overhead, not arithmetic, dominated the step. The work itself is streaming each active expert's weights
// once (the tokens are few), so this kernel reads every active expert's gate_up and down rows once, for all
// of its tokens at a time, with the experts spread over the intra-op threads (each streams its own experts,
// no per-GEMM thread sync), and writes the weighted sum per token without temporaries beyond three small
// buffers. An expert with 8 tokens or more runs token-major (the tokens on the vector lanes, 8 to 24 at a
// time, each weight broadcast once, the next weight rows prefetched): decoding 128 rows (~16 tokens per
// expert) the per-expert BLAS calls of the ATen path ran at ~35 GFLOP/s per core, this at ~84 GFLOP/s on 2
// threads with the gathers included (1.8 ms per layer; tests/bench/bench_sampler: 3392 -> 4373 decode tok/s
// at batch 128), then with broadcast loads, prefetching and largest-expert-first scheduling 1.1-1.5 ms per
// layer (0.63-0.67x the time, same results to the bit). Memory bound: at ~16 tokens an expert's weights are
// used 16 times per read.
//
// Must hold: equal to ExpertsImpl's ATen path up to fp32 rounding (tests/model/test_cpu_decode.cpp); the same
// result whatever the thread count (each expert on one thread, the sum over a token's slots in slot order);
// no autograd (the caller uses it under InferenceMode only, never for training).
#pragma once

#include <ATen/core/Tensor.h>

namespace aha::model {

// Whether cpu_routed_experts can run on these tensors: all on the CPU in float32, x [N, D], gate_up
// [E, 2 * Im, D], down [E, D, Im].
bool cpu_routed_experts_supported(const at::Tensor& x, const at::Tensor& gate_up, const at::Tensor& down);

// out [N, D] = sum_k weights[n, k] * down[e] (silu(gate[e] x_n) * up[e] x_n), e = experts[n, k] (gate rows
// first in gate_up, as moe.h stores them). experts [N, K] int64, weights [N, K] float32. Adds the number of
// (token, slot) pairs per expert into `load` ([E] int64) when non-null.
at::Tensor cpu_routed_experts(const at::Tensor& x, const at::Tensor& experts, const at::Tensor& weights,
                              const at::Tensor& gate_up, const at::Tensor& down, at::Tensor* load = nullptr);

// One decode step of absorbed multi-head latent attention over the cached latents, per row b and head h:
// o[b, h] = sum_l p_l cache[b, l, :r] with p = softmax_l(scale q[b, h] . cache[b, l] + mask[b, l]), l < L.
// q [B, H, R] (R = r + rope dims: [q~ | q_pe], as MlaImpl::forward_absorbed builds it), cache [B, C, R] (C >=
// L, rows contiguous), mask [B, L] additive; returns [B, H, r]. What the three batched products, the softmax
// and the mask add of the ATen path do, as one pass per row over its cache (each latent read once for all
// heads): at 128 decode rows that path's [8 x R] x [R x L] products per row ran at ~36 GFLOP/s.
bool cpu_latent_attention_supported(const at::Tensor& q, const at::Tensor& cache, const at::Tensor& mask);
at::Tensor cpu_latent_attention(const at::Tensor& q, const at::Tensor& cache, int64_t length,
                                const at::Tensor& mask, double scale, int64_t r);

}  // namespace aha::model
