// The entropy of distributions given by their log-probabilities, -sum_v p_v log p_v over the last axis, as
// one pass per row on the CPU (fp32): the ATen expression -(exp(lp) * lp).sum(-1) makes two [..., V]
// temporaries and three passes, a tenth of a GRPO micro-batch's forward at the bench shape when the entropy
// is logged.
#pragma once

#include <ATen/core/Tensor.h>

namespace aha::kernels {

// Whether cpu_entropy takes `log_probs`: a CPU float32 tensor with at least one axis, no gradient needed.
bool cpu_entropy_supported(const at::Tensor& log_probs);

// [...] = -sum over the last axis of exp(lp) lp, for log_probs [..., V]. A log-probability below -87 (a
// probability under 1.6e-38, -inf included) adds nothing, where the ATen expression gives NaN for -inf. The
// same result on any thread count; within 1e-6 of the expression (relative to its largest term).
at::Tensor cpu_entropy(const at::Tensor& log_probs);

}  // namespace aha::kernels
