// The rewards of a run, from the config's `reward.functions` ([{name, weight, params, plugin}]): each
// sample's scores per reward (kept for metrics) and their weighted total. Batches are scored on several
// threads.
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
};

class RewardSet {
 public:
  // Creates every reward; an unknown name or a bad parameter is an error naming reward.functions[i].
  RewardSet(const std::vector<RewardSpec>& specs, const Registry& registry);

  // threads <= 0: one per hardware thread (at most the batch size).
  BatchScores score(const std::vector<Sample>& samples, int64_t threads = 0) const;
  size_t size() const { return rewards_.size(); }

 private:
  std::vector<std::string> names_;
  std::vector<double> weights_;
  std::vector<std::unique_ptr<Reward>> rewards_;
};

}  // namespace aha::reward
