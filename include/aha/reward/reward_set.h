// The rewards of a run, from the config's `reward` section (functions: [{name, weight, params, plugin}]):
// each sample's scores per reward (kept for metrics) and their weighted total. Per-sample rewards are spread
// over threads; batched ones (Reward::batched) get the whole batch at once, on threads of their own, at the
// same time. A reward named with a `plugin` comes from that shared library (plugin.h).
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "aha/core/config.h"
#include "aha/reward/reward.h"

namespace aha::reward {

struct BatchScores {
  std::vector<std::string> names;  // [R] reward names, in config order
  std::vector<std::vector<std::optional<double>>>
      per_reward;                            // [R][N]; nullopt: that reward skipped the sample
  std::vector<std::optional<double>> total;  // [N] weighted sum; nullopt if any reward skipped
  std::vector<std::vector<std::pair<std::string, double>>> extras;  // [N] "reward.key" -> value
  std::vector<int64_t> failed;  // [R] samples the reward failed on (scored with the fallback)
};

struct RewardSetOptions {
  std::vector<RewardSpec> functions;  // name, weight, params, plugin path of each reward
  double fallback_score = 0.0;  // score of a sample a reward failed on (an external worker crashed, ...)
  int64_t threads = 0;          // scoring threads; 0: one per hardware thread
};

class RewardSet {
 public:
  // Creates every reward (loading plugins); an unknown name, a bad parameter or a plugin that cannot be
  // loaded is an error naming reward.functions[i]. Failed scores get `options.fallback_score`.
  RewardSet(const RewardSetOptions& options, const Registry& registry);
  // The same with the other options at their defaults.
  RewardSet(const std::vector<RewardSpec>& specs, const Registry& registry);

  // threads <= 0: reward.threads, or when that is 0 too, one per hardware thread (at most the batch size).
  BatchScores score(const std::vector<Sample>& samples, int64_t threads = 0) const;
  size_t size() const { return rewards_.size(); }
  const std::vector<std::string>& names() const { return names_; }
  const std::vector<double>& weights() const { return weights_; }

 private:
  std::vector<std::string> names_;
  std::vector<double> weights_;
  std::vector<std::unique_ptr<Reward>> rewards_;
  double fallback_score_ = 0;
  int64_t threads_ = 0;
};

}  // namespace aha::reward
