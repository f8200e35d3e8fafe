// One step's figures by name, kept per rank and reduced over the ranks once: sums, maxima and lists (every
// rank's values in rank order). A world of one reduces to itself, so one process and W ranks take the same
// path and a figure means the same whatever the layout.
//
// What must hold: every rank records the same names (the values may differ; a rank without rows adds 0 or
// an empty list), then calls reduce(); reduce() checks that the name sets agree first and throws naming the
// counts otherwise. Five collectives in all: the check, sums, maxima, list lengths, list values.
#pragma once

#include <map>
#include <string>
#include <vector>

namespace aha::dist {
class World;
}

namespace aha::rl {

class StepMetrics {
 public:
  void sum(const std::string& name, double value);  // added to this rank's total; reduced: summed over ranks
  void max(const std::string& name, double value);  // this rank's largest; reduced: largest over ranks
  void gather(const std::string& name, const std::vector<double>& values);  // appended; reduced: all ranks'

  void reduce(dist::World& world);  // collective

  // Reduced figures (this rank's before reduce()); an unknown name throws naming it.
  double total(const std::string& name) const;
  double largest(const std::string& name) const;
  const std::vector<double>& all(const std::string& name) const;

 private:
  std::map<std::string, double> sums_, maxima_;
  std::map<std::string, std::vector<double>> lists_;
};

}  // namespace aha::rl
