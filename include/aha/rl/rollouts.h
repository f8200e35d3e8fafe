// The data of a GRPO step as it flows between the stages (trainer.h):
//   generate_and_score  prompts -> Rollouts (completions, sampling-time log-probabilities, rewards)
//   filter_groups       Rollouts of a round -> the groups kept in the step's batch (dynamic sampling)
//   compute_advantages  Rollouts -> Advantages (per completion, the loss mask and the batch's normalisers)
//   policy_update       Rollouts + Advantages -> UpdateStats (policy_update.h)
// Each rank holds its share of the global batch; the stages that need the whole batch (which groups to keep,
// batch-level advantages, normalisers) reduce over the ranks, so a step is the same at any world size.
//
// A reward that skips a sample is nullopt in scores.per_reward, and the sample's total is nullopt: that is
// the only encoding of "no score" (tensors take a valid mask where they meet the GRPO math).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "aha/reward/reward_set.h"
#include "aha/rl/grpo.h"
#include "aha/rl/prompts.h"
#include "aha/rl/rollout_engine.h"
#include "aha/text/tokenizer.h"

namespace aha::dist {
class World;
}

namespace aha::rl {

struct Rollouts {
  int64_t group = 1;                             // G: completions per prompt
  std::vector<Prompt> prompts;                   // [P] this rank's prompts
  std::vector<std::vector<int64_t>> prompt_ids;  // [P] their token ids
  std::vector<rollout::Completion> completions;  // [P*G] prompt-major: tokens, log-probabilities, finish
  std::vector<std::string> texts;                // [P*G] the completions decoded
  reward::BatchScores scores;                    // [R][P*G] per reward, [P*G] weighted total
  int64_t decode_tokens = 0;                     // tokens generated (this rank)
  double seconds = 0;                            // spent generating
  double reward_seconds = 0;                     // spent scoring

  size_t size() const { return completions.size(); }
  // Adds prompt `g` of `other` with its G completions and their scores.
  void append_group(const Rollouts& other, size_t g);
};

// How to generate a round (or an evaluation chunk).
struct GenerationSpec {
  rollout::SamplingParams params;  // temperature, filters, length, stop strings, n = G, seed
  size_t first_index = 0;          // global index of the first prompt (its seed is one process's)
  int64_t pad_id = 0;
  std::function<bool(bool)> lockstep;  // expert parallelism: model calls in step with the group
  bool progress = false;               // a progress line on stderr (on a terminal, after a second)
  int64_t reward_threads = 0;          // reward.threads
};

// Encodes the prompts, asks the engine for G completions of each, decodes and scores them.
Rollouts generate_and_score(RolloutEngine& engine, const text::Tokenizer& tokenizer,
                            const reward::RewardSet& rewards, std::vector<Prompt> prompts,
                            const GenerationSpec& spec);

// One round of the dynamic-sampling loop: `round` holds groups [first, first + its prompts) of the `drawn`
// groups every rank drew. Appends to `batch` the groups to keep, decided from every rank's groups so that the
// choice is the same on every rank and equal to one process's: with `dynamic`, only those whose rewards
// differ, and never more than `target` over the step (`kept` counts the groups kept so far, all ranks).
// Returns how many of the drawn groups had rewards that all agree.
int64_t filter_groups(const Rollouts& round, size_t first, size_t drawn, bool dynamic, int64_t target,
                      int64_t& kept, Rollouts& batch, dist::World& world);

struct AdvantageOptions {
  Advantage kind = Advantage::grpo;
  double std_eps = 1e-6;
  bool mask_truncated = false;   // completions cut at max_new_tokens leave the loss
  double max_length = 0;         // L_max of the Dr. GRPO normaliser (rollout.max_new_tokens)
  bool group_by_length = false;  // order the loss rows by length (micro-batches with little padding)
};

struct Advantages {
  at::Tensor values;              // [P*G] float64, this rank's rows (computed over the whole batch)
  std::vector<size_t> loss_rows;  // rows in the loss, in micro-batch order
  LossDenominators denominators;  // of the whole batch (summed over ranks)
  double global_loss_rows = 0;    // rows in the loss, all ranks
};

// Advantages over the whole batch (batch_std needs every rank's rewards), this rank's rows of them, the loss
// rows (scored, not empty, not truncated when masked) and the batch's normalisers.
Advantages compute_advantages(const Rollouts& batch, const AdvantageOptions& options, dist::World& world);

}  // namespace aha::rl
