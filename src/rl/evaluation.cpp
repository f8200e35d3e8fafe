#include "aha/rl/evaluation.h"

#include <algorithm>

#include "aha/core/error.h"
#include "aha/dist/process_group.h"
#include "aha/rl/tasks.h"

namespace aha::rl {

bool RewardRoles::correct(const reward::BatchScores& scores, size_t i) const {
  if (accuracy < 0) return false;
  const auto& v = scores.per_reward[static_cast<size_t>(accuracy)][i];
  return v && *v >= correct_threshold;
}

bool RewardRoles::formatted(const reward::BatchScores& scores, size_t i) const {
  if (format < 0) return false;
  const auto& v = scores.per_reward[static_cast<size_t>(format)][i];
  return v && *v > 0;
}

RewardRoles reward_roles(const std::vector<std::string>& names, const std::string& accuracy_reward,
                         double correct_threshold) {
  static const std::vector<std::string> kAccuracyLike = {"math_accuracy", "gsm8k", "countdown", "exact_match",
                                                         "regex_match"};
  RewardRoles r;
  r.correct_threshold = correct_threshold;
  if (!accuracy_reward.empty()) {
    const auto it = std::find(names.begin(), names.end(), accuracy_reward);
    AHA_CHECK(it != names.end(), "train.accuracy_reward \"", accuracy_reward,
              "\" is not among reward.functions");
    r.accuracy = static_cast<int>(it - names.begin());
  } else {
    for (size_t i = 0; i < names.size() && r.accuracy < 0; ++i)
      if (std::find(kAccuracyLike.begin(), kAccuracyLike.end(), names[i]) != kAccuracyLike.end())
        r.accuracy = static_cast<int>(i);
  }
  for (size_t i = 0; i < names.size(); ++i)
    if (names[i] == "format") r.format = static_cast<int>(i);
  return r;
}

EvalResult evaluate(RolloutEngine& engine, const text::Tokenizer& tokenizer, const reward::RewardSet& rewards,
                    const std::vector<Prompt>& eval, const RewardRoles& roles, const EvalOptions& o,
                    dist::World& world) {
  EvalResult r;
  r.prompts = static_cast<int64_t>(eval.size());
  if (eval.empty()) return r;
  const size_t chunk = 256;
  const auto W = static_cast<size_t>(world.size()), me = static_cast<size_t>(world.rank());
  int64_t right = 0, formatted = 0, length = 0, k_right = 0, pass = 0;
  for (size_t start = 0; start < eval.size(); start += chunk) {
    // Each rank evaluates its contiguous share of the chunk, seeded as one process would seed it.
    const size_t n = std::min(eval.size(), start + chunk) - start;
    const size_t lo = n * me / W, hi = n * (me + 1) / W;
    const std::vector<Prompt> part(eval.begin() + static_cast<std::ptrdiff_t>(start + lo),
                                   eval.begin() + static_cast<std::ptrdiff_t>(start + hi));
    GenerationSpec greedy = o.sampling;
    greedy.params.temperature = 0.0;
    greedy.params.n = 1;
    greedy.params.seed = item_seed(o.seed, start, 0xE1);
    greedy.first_index = lo;
    const Rollouts g = generate_and_score(engine, tokenizer, rewards, part, greedy);
    for (size_t i = 0; i < g.size(); ++i) {
      right += roles.correct(g.scores, i);
      formatted += roles.formatted(g.scores, i);
      length += static_cast<int64_t>(g.completions[i].tokens.size());
      if (r.examples.size() < 3) r.examples.push_back({g.prompts[i].text, g.texts[i]});
    }
    if (o.k > 0) {
      GenerationSpec sampled = o.sampling;
      sampled.params.n = o.k;
      sampled.params.seed = item_seed(o.seed, start, 0xE2);
      sampled.first_index = lo;
      const Rollouts s = generate_and_score(engine, tokenizer, rewards, part, sampled);
      for (size_t p = 0; p < s.prompts.size(); ++p) {
        int64_t c = 0;
        for (int64_t j = 0; j < o.k; ++j)
          c += roles.correct(s.scores, p * static_cast<size_t>(o.k) + static_cast<size_t>(j));
        k_right += c;
        pass += c > 0;
      }
    }
  }
  const std::vector<double> sums = world.all_reduce(
      {static_cast<double>(right), static_cast<double>(formatted), static_cast<double>(length),
       static_cast<double>(k_right), static_cast<double>(pass)});
  const double n = static_cast<double>(eval.size());
  r.accuracy = sums[0] / n;
  r.format = sums[1] / n;
  r.mean_length = sums[2] / n;
  if (o.k > 0) {
    r.mean_at_k = sums[3] / (n * static_cast<double>(o.k));
    r.pass_at_k = sums[4] / n;
  }
  return r;
}

}  // namespace aha::rl
