// The expert-parallel group's collectives for the MoE layers (model/expert_parallel.h), on a c10d sub-group:
// token rows by all-to-all with per-rank counts, differentiable (the backward pass sends the gradients the
// reverse way), and the small all-to-all of per-expert counts.
//
// What must hold: under autograd every rank records the exchange, whether or not its rows need a gradient,
// so that every rank's backward pass runs the reverse all-to-all (a rank that sends or receives nothing still
// takes part with empty tensors).
#pragma once

#include <memory>
#include <vector>

#include "aha/model/expert_parallel.h"

namespace aha::dist {

class World;

class GroupExpertComm : public model::ExpertComm {
 public:
  explicit GroupExpertComm(std::shared_ptr<World> group);
  int64_t size() const override;
  int64_t rank() const override;
  at::Tensor exchange(const at::Tensor& x, const std::vector<int64_t>& send,
                      const std::vector<int64_t>& recv) override;
  std::vector<int64_t> exchange_counts(const std::vector<int64_t>& counts) override;

  // Seconds spent in exchanges (forward and backward, counts included) and their number, since the last
  // reset (bench_dist reports the dispatch/combine time from them).
  double seconds() const { return *seconds_; }
  int64_t exchanges() const { return *exchanges_; }
  void reset_timing() {
    *seconds_ = 0;
    *exchanges_ = 0;
  }

 private:
  std::shared_ptr<World> group_;
  std::shared_ptr<double> seconds_ = std::make_shared<double>(0.0);
  std::shared_ptr<int64_t> exchanges_ = std::make_shared<int64_t>(0);
};

}  // namespace aha::dist
