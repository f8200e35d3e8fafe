// The update of a GRPO step: grpo.mu passes over the batch in micro-batches (each a teacher-forced forward of
// the policy, of the reference when beta > 0, the clipped loss of grpo.h against the whole batch's
// normalisers, a backward pass), then per pass the gradients summed over the ranks, clipped by their global
// norm and an AdamW step (ParallelPolicy does the collectives); finally the MoE routing-bias update from the
// expert loads summed over the ranks.
#pragma once

#include <ATen/core/Tensor.h>

#include "aha/rl/grpo.h"
#include "aha/rl/parallel_policy.h"
#include "aha/rl/rollouts.h"

namespace aha::rl {

struct UpdateOptions {
  LossOptions loss;
  int64_t mu = 1;                // policy updates per batch
  int64_t micro_batch = 32;      // completions per forward/backward pass
  double temperature = 1.0;      // the sampling temperature (log-probabilities are taken at it)
  double balance_alpha = 0;      // sequence-wise balance loss weight
  double grad_clip = 1.0;        // max global gradient norm (<= 0: no clipping)
  double bias_update_speed = 0;  // MoE routing-bias step per update (0: off)
};

struct UpdateStats {
  bool finite = true;      // the loss and the gradient norm of every pass were finite (else no step)
  double loss = 0;         // the last pass's loss, summed over ranks
  double grad_norm = 0;    // before clipping, the last pass's
  LossStats first_pass;    // clip counts, KL, ratio, tokens of the first pass (this rank)
  double entropy_sum = 0;  // token entropy summed over the first pass's tokens in the loss (this rank)
  int64_t tokens = 0;      // completion tokens trained on, all passes (this rank)
  int64_t positions = 0;   // [B, L] positions of the first pass's forwards (this rank)
  int64_t padding = 0;     // of which padding
  at::Tensor expert_load;  // [MoE layers, E] int64: routed tokens of the first pass, summed over ranks
  // The first pass's log-probabilities against the sampling-time ones, over the tokens in the loss (this
  // rank): the largest |difference|, and the sums of |difference| and of the k3 KL estimate
  // exp(d) - 1 - d, d = new - old (both 0 when sampler and update compute the same numbers).
  double logprob_max_abs = 0, logprob_abs_sum = 0, logprob_kl_sum = 0;
  double seconds = 0;
  // Where this rank's time went (wall clock; on a GPU only as far as the host waits): the policy's forward
  // passes with the loss, the reference's, the backward passes (with the collectives inside them: sharded
  // gathers, overlapped gradient sums), the gradient sums left after them, clipping and the optimizer step.
  double forward_seconds = 0, ref_seconds = 0, backward_seconds = 0, sync_seconds = 0, optimizer_seconds = 0;
};

UpdateStats policy_update(ParallelPolicy& policy, const Rollouts& batch, const Advantages& advantages,
                          const UpdateOptions& options, double lr);

}  // namespace aha::rl
