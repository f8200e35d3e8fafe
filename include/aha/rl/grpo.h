// GRPO: group-relative advantages and the clipped policy loss, with the variants users ask for by name.
//
// Every function here works on small dense tensors and is a pure function of its inputs; the trainer
// (trainer.h) feeds it. Facts and formulas: ../shared/spec/grpo.md (DeepSeekMath, DAPO, Dr. GRPO, GSPO, verl,
// TRL).
//
// Advantages are computed per group of G completions of one prompt, from the summed rewards:
//   grpo       A_i = (r_i - mean_g) / (std_g + eps)    std with Bessel's correction, as TRL
//   dr_grpo    A_i = r_i - mean_g                      (Dr. GRPO: no std)
//   batch_std  A_i = (r_i - mean_g) / (std_batch + eps)  (TRL scale_rewards = "batch")
//   rloo       A_i = r_i - mean of the other G-1 rewards
// Completions whose reward was skipped (`valid` false) take no part in the statistics and get A = 0.
//
// The per-token loss, with r = pi_theta / pi_old (ratio = token) or GSPO's sequence ratio
// s_i = exp(mean_t log r_it) broadcast to the sequence's tokens (ratio = sequence):
//   l_it = max(-A r, -A clip(r, 1 - eps_low, 1 + eps_high))     (the PPO clip, DAPO's clip-higher)
//   with dual clip c > 1: for A < 0, l_it = min(l_it, -A c)      (verl's clip_ratio_c)
//   + beta * KL_it (k1 = -d, k2 = d^2 / 2, k3 = exp(d) - d - 1 with d = log pi_ref - log pi_theta, d clamped
//     to +-20 and k3 to 10 as verl does)
// Aggregation over the batch (see LossDenominators: the denominators are those of the WHOLE batch, so the
// losses of micro-batches add up to the loss of the full batch and accumulated gradients equal the full
// batch's gradient):
//   token-mean               sum_it l_it m_it / sum_it m_it
//   seq-mean-token-mean      (1/N) sum_i (sum_t l_it m_it / |o_i|)
//   seq-mean-token-sum-norm  sum_it l_it m_it / (N * L_max)        (Dr. GRPO: a constant normaliser)
//   seq-mean-token-sum       (1/N) sum_it l_it m_it
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>

namespace aha::rl {

enum class Advantage { grpo, dr_grpo, batch_std, rloo };
enum class Aggregation { token_mean, seq_mean_token_mean, seq_mean_token_sum_norm, seq_mean_token_sum };
enum class RatioLevel { token, sequence };
enum class KlEstimator { k1, k2, k3 };

// From the config's spellings ("grpo", "token-mean", ...); throws aha::Error naming the value and the
// choices.
Advantage parse_advantage(const std::string& name);
Aggregation parse_aggregation(const std::string& name);
RatioLevel parse_ratio_level(const std::string& name);
KlEstimator parse_kl_estimator(const std::string& name);

// `rewards` [N * G] float64 or float32, prompt-major (completion j of prompt i at i * G + j); `valid` [N * G]
// bool or undefined (all valid). Returns [N * G] float32.
at::Tensor compute_advantages(const at::Tensor& rewards, const at::Tensor& valid, int64_t group_size,
                              Advantage kind, double eps);

// Per-group statistics: [N] bool, true where the valid rewards of the group all agree (or fewer than two are
// valid): such a group carries no signal (DAPO's dynamic sampling drops it).
at::Tensor zero_variance_groups(const at::Tensor& rewards, const at::Tensor& valid, int64_t group_size);

// The KL estimate per token from d = logp_ref - logp (any shape).
at::Tensor kl_penalty(const at::Tensor& logp, const at::Tensor& ref_logp, KlEstimator kind);

struct LossOptions {
  Aggregation aggregation = Aggregation::token_mean;
  RatioLevel ratio = RatioLevel::token;
  double epsilon_low = 0.2;
  double epsilon_high = 0.28;
  double dual_clip = 0;  // c > 1 turns it on
  double beta = 0;       // KL coefficient; 0: ref_logp is not used
  KlEstimator kl = KlEstimator::k3;
  double entropy_coef = 0;  // > 0: subtract entropy_coef * entropy, aggregated as the policy loss
};

// The normalisers of the whole batch (every micro-batch, every rank).
struct LossDenominators {
  double tokens = 0;      // sum of the loss mask over the batch (token-mean)
  double sequences = 0;   // completions with at least one token in the loss (the seq-mean variants)
  double max_length = 0;  // L_max of seq-mean-token-sum-norm (Dr. GRPO uses max_new_tokens)
};

struct LossInput {
  at::Tensor logp;        // [B, T] log pi_theta of the completion tokens (with grad)
  at::Tensor old_logp;    // [B, T] log pi_old (the sampling-time values; no grad)
  at::Tensor ref_logp;    // [B, T] log pi_ref, or undefined when beta = 0
  at::Tensor advantages;  // [B]
  at::Tensor mask;        // [B, T] float: 1 for tokens in the loss
  at::Tensor entropy;  // [B, T] entropy of pi_theta per token (with grad), or undefined when entropy_coef = 0
};

// Sums over the micro-batch, for metrics; divide by the batch's tokens (or sequences) after adding up.
struct LossStats {
  double clipped_low = 0;   // tokens whose ratio sits below 1 - eps_low with A < 0 (the clip binds)
  double clipped_high = 0;  // tokens whose ratio sits above 1 + eps_high with A > 0 (the clip binds)
  double dual_clipped = 0;  // tokens capped by the dual clip
  double kl = 0;            // sum of the per-token KL estimate (0 when beta = 0)
  double ratio = 0;         // sum of the per-token ratio
  double tokens = 0;        // tokens in the loss in this micro-batch
};

struct LossOutput {
  at::Tensor loss;  // scalar: this micro-batch's share of the batch loss
  LossStats stats;
};

LossOutput policy_loss(const LossInput& in, const LossOptions& options, const LossDenominators& denominators);

// log softmax(logits / T) over the last dimension, in float32 (T = 0 is treated as 1, as the sampler records
// it): the one computation token_logprobs and token_entropy share, for callers that need both.
at::Tensor tempered_log_softmax(const at::Tensor& logits, double temperature);

// Entropy per position of the distribution whose log-probabilities are `log_probs` [..., V].
at::Tensor entropy_of_log_probs(const at::Tensor& log_probs);

// Log-probabilities of `tokens` [B, T] under `logits` [B, T, V] at sampling temperature `temperature`
// (log softmax(logits / T)[token], computed in float32; T = 0 is treated as 1, as the sampler records it).
at::Tensor token_logprobs(const at::Tensor& logits, const at::Tensor& tokens, double temperature);

// token_logprobs (differentiable) with the entropy of each position (without gradient) from the same logits:
// on the CPU in fp32 one pass over each row of logits (kernels/cpu_token_logprobs.h), without a [B, T, V]
// log-probability tensor.
struct TokenLogprobs {
  at::Tensor logp;     // [B, T]
  at::Tensor entropy;  // [B, T], detached
};
TokenLogprobs token_logprobs_and_entropy(const at::Tensor& logits, const at::Tensor& tokens,
                                         double temperature);

// Entropy of softmax(logits / T) per position [B, T] (float32); differentiable when `with_grad`, otherwise
// computed without autograd.
at::Tensor token_entropy(const at::Tensor& logits, double temperature, bool with_grad = false);

}  // namespace aha::rl
