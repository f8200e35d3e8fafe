// Held-out evaluation: greedy accuracy (and with k > 0, mean@k and pass@k of sampled completions) of the
// policy on the eval split, each rank generating its share of every chunk of prompts, seeded as one process
// would seed them, the counts summed over the ranks.
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "aha/rl/rollouts.h"

namespace aha::rl {

struct EvalResult {
  int64_t prompts = 0;
  double accuracy = 0;     // greedy: share of prompts answered correctly
  double format = 0;       // greedy: share whose format reward scored > 0 (when there is one)
  double mean_at_k = 0;    // sampled (k > 0): mean correctness over k samples per prompt
  double pass_at_k = 0;    // sampled: share of prompts with at least one correct sample
  double mean_length = 0;  // greedy completion length in tokens
  std::vector<std::pair<std::string, std::string>> examples;  // (prompt, greedy completion), a few
};

// Which rewards say "correct" and "well formatted".
struct RewardRoles {
  int accuracy = -1;               // index in reward.functions; -1: none (accuracy is then 0)
  int format = -1;                 // -1: none
  double correct_threshold = 1.0;  // a completion is correct when the accuracy reward scores at least this
  bool correct(const reward::BatchScores& scores, size_t i) const;
  bool formatted(const reward::BatchScores& scores, size_t i) const;
};
// train.accuracy_reward, else the first accuracy-like reward (math_accuracy, gsm8k, countdown, exact_match,
// regex_match); "format" is the format reward. Throws when train.accuracy_reward names no reward.
RewardRoles reward_roles(const std::vector<std::string>& names, const std::string& accuracy_reward,
                         double correct_threshold);

struct EvalOptions {
  GenerationSpec sampling;  // the sampled (eval_k) completions' settings; the greedy ones take temperature 0
  int64_t k = 0;            // train.eval_k
  uint64_t seed = 1;        // train.seed
};

// Collective: every rank calls it with the same prompts.
EvalResult evaluate(RolloutEngine& engine, const text::Tokenizer& tokenizer, const reward::RewardSet& rewards,
                    const std::vector<Prompt>& prompts, const RewardRoles& roles, const EvalOptions& options,
                    dist::World& world);

}  // namespace aha::rl
