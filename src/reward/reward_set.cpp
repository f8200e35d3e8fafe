#include "aha/reward/reward_set.h"

#include <algorithm>
#include <exception>
#include <map>
#include <thread>

#include "aha/core/error.h"
#include "aha/reward/plugin.h"

namespace aha::reward {
RewardSet::RewardSet(const std::vector<RewardSpec>& specs, const Registry& registry)
    : RewardSet(RewardSetOptions{specs, 0.0, 0}, registry) {}

RewardSet::RewardSet(const RewardSetOptions& options, const Registry& registry)
    : fallback_score_(options.fallback_score), threads_(options.threads) {
  const auto& specs = options.functions;
  AHA_CHECK(!specs.empty(), "reward.functions: at least one reward is needed");
  std::map<std::string, Registry> plugins;  // path -> what that plugin registers
  for (size_t i = 0; i < specs.size(); ++i) {
    const std::string where = "reward.functions[" + std::to_string(i) + "]";
    const Registry* from = &registry;
    if (!specs[i].plugin.empty()) {
      auto it = plugins.find(specs[i].plugin);
      if (it == plugins.end()) {
        it = plugins.emplace(specs[i].plugin, Registry{}).first;
        try {
          load_plugin(specs[i].plugin, it->second);
        } catch (const Error& e) {
          plugins.erase(it);
          throw Error(e.what(), where + ".plugin");
        }
      }
      from = &it->second;
      if (!from->contains(specs[i].name)) {
        std::string known;
        for (const auto& [n, _] : from->list())
          known += (known.empty() ? "" : ", ") + n;
        throw Error("plugin " + specs[i].plugin + " registers no reward named \"" + specs[i].name +
                        "\" (it registers: " + (known.empty() ? std::string("none") : known) + ")",
                    where);
      }
    }
    try {
      rewards_.push_back(from->create(specs[i].name, specs[i].params));
    } catch (const Error& e) {
      throw Error(e.what(), where);
    }
    names_.push_back(specs[i].name);
    weights_.push_back(specs[i].weight);
  }
}

BatchScores RewardSet::score(const std::vector<Sample>& samples, int64_t threads) const {
  const size_t n = samples.size(), r = rewards_.size();
  std::vector<std::vector<Score>> scores(r, std::vector<Score>(n));  // [R][N]
  std::vector<size_t> batched, single;
  for (size_t k = 0; k < r; ++k)
    (rewards_[k]->batched() ? batched : single).push_back(k);
  auto run_batched = [&](size_t k) {
    scores[k] = rewards_[k]->score_batch(samples);
    AHA_CHECK(scores[k].size() == n, "reward \"", names_[k], "\" returned ", scores[k].size(), " scores for ",
              n, " samples");
  };
  auto run_single = [&](size_t i) {
    for (size_t k : single)
      scores[k][i] = rewards_[k]->score(samples[i]);
  };

  if (threads <= 0) threads = threads_;
  size_t workers =
      threads > 0 ? static_cast<size_t>(threads) : std::max(1u, std::thread::hardware_concurrency());
  workers = single.empty() ? 0 : std::min(workers, n);
  if (workers <= 1 && batched.size() <= 1) {
    for (size_t k : batched)
      run_batched(k);
    for (size_t i = 0; i < n && !single.empty(); ++i)
      run_single(i);
  } else {
    // Batched rewards each on a thread, per-sample rewards on `workers` threads taking every workers-th
    // sample. All slots are disjoint, so no locking. An exception in any thread is rethrown here after all
    // have stopped.
    std::vector<std::thread> pool;
    std::vector<std::exception_ptr> errors(batched.size() + workers);
    for (size_t b = 0; b < batched.size(); ++b) {
      pool.emplace_back([&, b] {
        try {
          run_batched(batched[b]);
        } catch (...) {
          errors[b] = std::current_exception();
        }
      });
    }
    for (size_t w = 0; w < workers; ++w) {
      pool.emplace_back([&, w] {
        try {
          for (size_t i = w; i < n; i += workers)
            run_single(i);
        } catch (...) {
          errors[batched.size() + w] = std::current_exception();
        }
      });
    }
    for (auto& t : pool)
      t.join();
    for (auto& e : errors)
      if (e) std::rethrow_exception(e);
  }

  BatchScores out;
  out.names = names_;
  out.per_reward.assign(r, std::vector<std::optional<double>>(n));
  out.total.assign(n, std::nullopt);
  out.extras.assign(n, {});
  out.failed.assign(r, 0);
  for (size_t i = 0; i < n; ++i) {
    double total = 0;
    bool skipped = false;
    for (size_t k = 0; k < r; ++k) {
      Score& s = scores[k][i];
      if (s.failed) {
        ++out.failed[k];
        if (!s.value) s.value = fallback_score_;
      }
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
  }
  return out;
}

}  // namespace aha::reward
