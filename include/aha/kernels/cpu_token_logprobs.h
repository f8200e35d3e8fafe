// Log-probabilities of chosen tokens and the entropy of each position's distribution, softmax(logits / T), on
// the CPU in fp32 without a [..., V] log-probability tensor: the forward reads each row of logits once (its
// max, then the normaliser and the entropy's sum from cache), the backward writes d logits in one pass. The
// ATen chain (log_softmax, gather, the entropy's exp, mul and sum, then gather's and log_softmax's backward)
// passes over [..., V] eight times.
#pragma once

#include <ATen/core/Tensor.h>

namespace aha::kernels {

// Whether cpu_token_logprobs takes these: CPU float32 logits [..., V] (V >= 1) and int64 tokens [...] of the
// same leading shape.
bool cpu_token_logprobs_supported(const at::Tensor& logits, const at::Tensor& tokens);

struct TokenLogprobs {
  at::Tensor logp;     // [...]: log softmax(logits / T)[token]; differentiable in logits
  at::Tensor entropy;  // [...]: -sum p log p of softmax(logits / T); no gradient
};

// temperature <= 0 is taken as 1 (as the sampler records greedy draws). Tokens outside [0, V) are an error
// naming the first. Within 2e-6 of the ATen chain (relative to log V); the same on any thread count.
TokenLogprobs cpu_token_logprobs(const at::Tensor& logits, const at::Tensor& tokens, double temperature);

}  // namespace aha::kernels
