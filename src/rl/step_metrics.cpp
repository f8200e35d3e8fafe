#include "aha/rl/step_metrics.h"

#include <algorithm>

#include "aha/core/error.h"
#include "aha/dist/process_group.h"

namespace aha::rl {

void StepMetrics::sum(const std::string& name, double value) {
  sums_[name] += value;
}

void StepMetrics::max(const std::string& name, double value) {
  auto [it, fresh] = maxima_.emplace(name, value);
  if (!fresh) it->second = std::max(it->second, value);
}

void StepMetrics::gather(const std::string& name, const std::vector<double>& values) {
  auto& list = lists_[name];
  list.insert(list.end(), values.begin(), values.end());
}

void StepMetrics::reduce(dist::World& world) {
  const auto w = static_cast<size_t>(world.size()), me = static_cast<size_t>(world.rank());
  // First the name counts of each kind, and their negations: the same on every rank iff max(n) == -max(-n).
  // (Different sets would make the collectives below differ in size: a hang, not an error.)
  std::vector<double> counts;
  for (const double c : {static_cast<double>(sums_.size()), static_cast<double>(maxima_.size()),
                         static_cast<double>(lists_.size())}) {
    counts.push_back(c);
    counts.push_back(-c);
  }
  counts = world.all_reduce(std::move(counts), dist::ReduceOp::max);
  for (size_t k = 0; k < 3; ++k)
    AHA_CHECK(counts[2 * k] == -counts[2 * k + 1],
              "step metrics: the ranks recorded different sets of figures (", -counts[2 * k + 1], " to ",
              counts[2 * k], " of one kind): every rank must record the same names");
  if (!sums_.empty()) {
    std::vector<double> v;
    for (const auto& [name, x] : sums_)
      v.push_back(x);
    v = world.all_reduce(std::move(v));
    size_t i = 0;
    for (auto& [name, x] : sums_)
      x = v[i++];
  }
  if (!maxima_.empty()) {
    std::vector<double> v;
    for (const auto& [name, x] : maxima_)
      v.push_back(x);
    v = world.all_reduce(std::move(v), dist::ReduceOp::max);
    size_t i = 0;
    for (auto& [name, x] : maxima_)
      x = v[i++];
  }
  if (lists_.empty()) return;
  // Lists: every rank's lengths (one sum of a [W, K] table with this rank's row filled), then every rank's
  // values at their place, rank-major (one sum of zeros elsewhere: x + 0 == x exactly, NaN included).
  const size_t k = lists_.size();
  std::vector<double> lengths(w * k, 0.0);
  size_t j = 0;
  for (const auto& [name, list] : lists_)
    lengths[me * k + j++] = static_cast<double>(list.size());
  lengths = world.all_reduce(std::move(lengths));
  size_t total = 0, mine = 0;
  for (size_t r = 0; r < w; ++r)
    for (size_t q = 0; q < k; ++q) {
      if (r == me && q == 0) mine = total;
      total += static_cast<size_t>(lengths[r * k + q]);
    }
  if (total == 0) return;
  std::vector<double> values(total, 0.0);
  for (const auto& [name, list] : lists_) {
    std::copy(list.begin(), list.end(), values.begin() + static_cast<std::ptrdiff_t>(mine));
    mine += list.size();
  }
  values = world.all_reduce(std::move(values));
  size_t at = 0;
  std::vector<std::vector<double>> gathered(k);
  for (size_t r = 0; r < w; ++r)
    for (size_t q = 0; q < k; ++q) {
      const auto n = static_cast<size_t>(lengths[r * k + q]);
      gathered[q].insert(gathered[q].end(), values.begin() + static_cast<std::ptrdiff_t>(at),
                         values.begin() + static_cast<std::ptrdiff_t>(at + n));
      at += n;
    }
  j = 0;
  for (auto& [name, list] : lists_)
    list = std::move(gathered[j++]);
}

double StepMetrics::total(const std::string& name) const {
  const auto it = sums_.find(name);
  AHA_CHECK(it != sums_.end(), "step metrics: no sum named ", name);
  return it->second;
}

double StepMetrics::largest(const std::string& name) const {
  const auto it = maxima_.find(name);
  AHA_CHECK(it != maxima_.end(), "step metrics: no maximum named ", name);
  return it->second;
}

const std::vector<double>& StepMetrics::all(const std::string& name) const {
  const auto it = lists_.find(name);
  AHA_CHECK(it != lists_.end(), "step metrics: no list named ", name);
  return it->second;
}

}  // namespace aha::rl
