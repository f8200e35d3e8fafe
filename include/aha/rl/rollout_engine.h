// Where a GRPO step's completions come from. The trainer asks an engine for G completions of each of its
// prompts with their sampling-time log-probabilities, and scores them itself; the engine decides how to
// generate them. The first engine is aha's sampler on the policy module (rollout/sampler.h): the same model
// code and weights as the update, so the recorded log-probabilities are the update's first-pass ones. Others
// can be plugged in through TrainerParts (trainer.h): a GPU inference engine, or an asynchronous producer
// that generates the next batch while this one trains (with weights one step old: the ratio then corrects
// for it, as in off-policy GRPO).
//
// What must hold: completions come prompt-major (prompt i's sample j at i * n + j), each with one
// log-probability per token, computed at the temperature asked for; a completion depends only on its prompt,
// its prompt's seed and its sample index (GenerateOptions::prompt_seeds), so results do not depend on how
// prompts are split over ranks. An engine on the policy module runs on whatever weights the module holds when
// called: the trainer gathers them first when they are sharded.
#pragma once

#include <vector>

#include "aha/model/transformer.h"
#include "aha/rollout/sampler.h"

namespace aha::rl {

class RolloutEngine {
 public:
  virtual ~RolloutEngine() = default;
  // prompts: token ids (may be empty with options.lockstep: a rank whose share is empty still takes part).
  virtual rollout::GenerateResult generate(const std::vector<std::vector<int64_t>>& prompts,
                                           const rollout::SamplingParams& params,
                                           const rollout::GenerateOptions& options) = 0;
};

// aha's sampler on a model module (the policy's), under inference mode.
class SamplerEngine : public RolloutEngine {
 public:
  explicit SamplerEngine(model::Transformer model) : model_(std::move(model)) {}
  rollout::GenerateResult generate(const std::vector<std::vector<int64_t>>& prompts,
                                   const rollout::SamplingParams& params,
                                   const rollout::GenerateOptions& options) override;

 private:
  model::Transformer model_;
  rollout::Sampler sampler_;
};

}  // namespace aha::rl
