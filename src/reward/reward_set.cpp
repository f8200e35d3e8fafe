#include "aha/reward/reward_set.h"

#include <algorithm>
#include <exception>
#include <thread>

#include "aha/core/error.h"

namespace aha::reward {

RewardSet::RewardSet(const std::vector<RewardSpec>& specs, const Registry& registry) {
  AHA_CHECK(!specs.empty(), "reward.functions: at least one reward is needed");
  for (size_t i = 0; i < specs.size(); ++i) {
    const std::string where = "reward.functions[" + std::to_string(i) + "]";
    if (!specs[i].plugin.empty())
      throw Error("plugins are not available in this build yet (" + specs[i].plugin + ")", where + ".plugin");
    try {
      rewards_.push_back(registry.create(specs[i].name, specs[i].params));
    } catch (const Error& e) {
      throw Error(e.what(), where);
    }
    names_.push_back(specs[i].name);
    weights_.push_back(specs[i].weight);
  }
}

BatchScores RewardSet::score(const std::vector<Sample>& samples, int64_t threads) const {
  const size_t n = samples.size(), r = rewards_.size();
  BatchScores out;
  out.names = names_;
  out.per_reward.assign(r, std::vector<std::optional<double>>(n));
  out.total.assign(n, std::nullopt);
  out.extras.assign(n, {});
  auto score_one = [&](size_t i) {
    double total = 0;
    bool skipped = false;
    for (size_t k = 0; k < r; ++k) {
      Score s = rewards_[k]->score(samples[i]);
      out.per_reward[k][i] = s.value;
      if (s.value) {
        total += weights_[k] * *s.value;
      } else {
        skipped = true;
      }
      for (auto& [key, v] : s.extras)
        out.extras[i].emplace_back(names_[k] + "." + key, v);
    }
    if (!skipped) out.total[i] = total;
  };
  size_t workers =
      threads > 0 ? static_cast<size_t>(threads) : std::max(1u, std::thread::hardware_concurrency());
  workers = std::min(workers, n);
  if (workers <= 1) {
    for (size_t i = 0; i < n; ++i)
      score_one(i);
    return out;
  }
  // Each worker takes every workers-th sample; slots are disjoint, so no locking. An exception in any worker
  // is rethrown here after all have stopped.
  std::vector<std::thread> pool;
  std::vector<std::exception_ptr> errors(workers);
  for (size_t w = 0; w < workers; ++w) {
    pool.emplace_back([&, w] {
      try {
        for (size_t i = w; i < n; i += workers)
          score_one(i);
      } catch (...) {
        errors[w] = std::current_exception();
      }
    });
  }
  for (auto& t : pool)
    t.join();
  for (auto& e : errors)
    if (e) std::rethrow_exception(e);
  return out;
}

}  // namespace aha::reward
