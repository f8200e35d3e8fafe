// The policy (and its frozen reference) as the ranks of a run hold it, with the optimizer that steps it and
// the collectives that keep the ranks in step: whole replicas whose gradients a GradReducer sums during the
// backward pass, or sharded state (dist.shard, dist/sharding.h), with the routed experts split or not
// (dist.expert_parallel, rl/parallel.h), with activation checkpointing or not. What the rollouts, the GRPO
// update and the checkpoints ask of the layout, and nothing of GRPO itself.
//
// The update drives it pass by pass: begin_update(); per pass begin_pass(), then per micro-batch the
// backward pass between arm() (last micro-batch) and after_backward(); end_pass(), clip(), step(); finally
// end_update(). All of these are collective: every rank calls them in the same order, and with lockstep()
// the same number of micro-batches (micro_batches() tells how many).
#pragma once

#include <ATen/core/Tensor.h>

#include <functional>
#include <memory>
#include <string>

#include "aha/dist/sharding.h"
#include "aha/rl/parallel.h"
#include "aha/rl/policy.h"

namespace torch::optim {
class AdamW;
}
namespace aha::dist {
class GradReducer;
class World;
}  // namespace aha::dist

namespace aha::rl {

struct ParallelOptions {
  dist::ShardMode shard = dist::ShardMode::none;
  int64_t expert_parallel = 1;
  bool activation_checkpointing = false;
  int64_t bucket_bytes = int64_t{25} << 20;  // gradient all-reduce buckets (unsharded)
  bool overlap = true;                       // buckets start during the last backward pass
  OptimSection optim;                        // AdamW's settings
};
ParallelOptions parallel_options(const Config& config);

class ParallelPolicy {
 public:
  // Splits the experts (expert parallelism), shards the state, builds the optimizer. `ref` may be null.
  ParallelPolicy(std::shared_ptr<dist::World> world, Policy policy, model::Transformer ref,
                 const ParallelOptions& options);
  ~ParallelPolicy();
  ParallelPolicy(const ParallelPolicy&) = delete;
  ParallelPolicy& operator=(const ParallelPolicy&) = delete;

  Policy& policy() { return policy_; }
  model::Transformer& reference() { return ref_; }
  dist::World& world() { return *layout_.world; }
  const ParallelLayout& layout() const { return layout_; }
  bool sharded() const { return opts_.shard != dist::ShardMode::none; }
  bool frees_weights() const { return opts_.shard == dist::ShardMode::full; }
  bool lockstep() const { return lockstep_; }
  torch::optim::AdamW& optimizer() { return *optim_; }
  // Expert parallelism: the model calls of a rollout, in step over the group (rollout::GenerateOptions);
  // null otherwise.
  std::function<bool(bool)> rollout_lockstep();

  // ---- the weights for rollouts and evaluations: whole (gathered from the shards, timed)
  void gather_weights();
  void release_weights();
  // Zeroes the step's timings: weight gathers, expert all-to-alls.
  void reset_timing();
  double weight_sync_seconds() const { return weight_sync_seconds_; }

  // ---- the update
  void begin_update();
  void begin_pass(int64_t pass);
  size_t micro_batches(size_t mine);  // the number every rank runs (lockstep: the most over ranks)
  void arm(const at::Tensor& loss);   // before the last micro-batch's backward pass
  void after_backward();
  void end_pass(int64_t pass);   // gradients summed (or reduce-scattered) over the ranks
  double clip(double max_norm);  // the global gradient norm; scales the gradients to max_norm
  void step(int64_t pass);
  void end_update();
  void set_lr(double lr);
  // What summing whole gradients cost this step (unsharded, several ranks): seconds waited after the backward
  // passes (all passes), passes, and the last pass's buckets and buckets started during its backward pass.
  struct GradSync {
    double seconds = 0;
    int64_t passes = 0, buckets = 0, during_backward = 0;
  };
  GradSync grad_sync() const;

  void update_routing_bias(const at::Tensor& expert_load, double speed);
  void reset_reference();  // the reference takes the policy's weights

  // ---- memory (this rank's live bytes) and state
  int64_t param_bytes() const;
  int64_t grad_bytes() const { return grad_bytes_; }  // measured at the first pass of the last update
  int64_t optimizer_bytes() const;
  void check_replicas(int64_t step);
  // Writes what a checkpoint holds of the model (collective): with state that differs between ranks
  // (sharded, or experts split) each rank writes its own into `staging` and the whole model is gathered into
  // `exported` (rank 0); then commit() (rank 0) completes checkpoint directory `tmp`.
  void save(const std::string& staging, const std::string& exported);
  void commit(const std::string& tmp, const std::string& staging, const std::string& exported);
  // Restores the optimizer's state (and the sharded masters) of checkpoint `dir`, whose trainer_state.json
  // is `state`; throws naming the layouts when they cannot resume each other.
  void load(const std::string& dir, const Json& state, const std::string& shard_name);

 private:
  bool per_rank_state() const { return sharded() || layout_.expert_parallel > 1; }
  void export_model(model::TransformerImpl& m, dist::Sharding* s, const std::string& dir);
  double clip_expert_parallel(double max_norm);

  ParallelOptions opts_;
  ParallelLayout layout_;
  Policy policy_;
  model::Transformer ref_{nullptr};
  std::shared_ptr<dist::Sharding> sharding_, ref_sharding_;
  std::unique_ptr<torch::optim::AdamW> optim_;
  std::vector<at::Tensor> trainable_;
  std::unique_ptr<dist::GradReducer> grads_, expert_grads_;
  bool lockstep_ = false;
  double weight_sync_seconds_ = 0;
  GradSync grad_sync_;
  int64_t grad_bytes_ = 0;
};

}  // namespace aha::rl
