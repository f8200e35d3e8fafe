#include "aha/rl/parallel_policy.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>
#include <torch/nn/utils/clip_grad.h>
#include <torch/optim/adamw.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <limits>
#include <map>

#include "aha/core/error.h"
#include "aha/core/log.h"
#include "aha/dist/grad_reducer.h"
#include "aha/dist/process_group.h"
#include "aha/io/file.h"
#include "aha/model/balance.h"
#include "aha/model/checkpoint.h"
#include "aha/rl/optimizer.h"

namespace aha::rl {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

}  // namespace

ParallelOptions parallel_options(const Config& c) {
  ParallelOptions o;
  o.shard = dist::parse_shard_mode(c.dist.shard);
  o.expert_parallel = c.dist.expert_parallel;
  o.activation_checkpointing = c.train.activation_checkpointing;
  o.bucket_bytes = std::max<int64_t>(1, static_cast<int64_t>(c.dist.bucket_mb * (1 << 20)));
  o.overlap = c.dist.overlap;
  o.optim = c.optim;
  return o;
}

ParallelPolicy::ParallelPolicy(std::shared_ptr<dist::World> world, Policy policy, model::Transformer ref,
                               const ParallelOptions& options)
    : opts_(options), policy_(std::move(policy)), ref_(std::move(ref)) {
  layout_ =
      make_parallel_layout(std::move(world), opts_.expert_parallel, policy_.model->config().n_routed_experts);
  split_experts(*policy_.model, layout_);
  if (ref_) split_experts(*ref_, layout_);
  const bool checkpointing = opts_.activation_checkpointing;
  if (sharded() || checkpointing) {
    // Sharded: fp32 masters, the module's weights in the compute dtype (model.precision bf16: bf16).
    const at::ScalarType compute = sharded() ? policy_.dtype : at::kFloat;
    sharding_ = std::make_shared<dist::Sharding>(
        layout_.world, shard_units(*policy_.model, layout_),
        dist::ShardingOptions{opts_.shard, checkpointing, compute, policy_.device});
    policy_.model->set_layer_runner(sharding_);
  }
  // The frozen reference is sharded like the policy's weights when those are (it has no gradients or
  // moments).
  if (ref_ && frees_weights()) {
    ref_sharding_ = std::make_shared<dist::Sharding>(
        layout_.world, shard_units(*ref_, layout_),
        dist::ShardingOptions{dist::ShardMode::full, false, policy_.dtype, policy_.device});
    ref_->set_layer_runner(ref_sharding_);
  }
  // A model left on the host (full sharding on a GPU): its buffers follow the weights to the device.
  for (model::TransformerImpl* m : {policy_.model.get(), ref_ ? ref_.get() : nullptr}) {
    if (!m) continue;
    c10::NoGradGuard no_grad;
    for (auto& b : m->buffers())
      if (b.device() != policy_.device) b.set_data(b.to(policy_.device));
  }
  if (sharded()) {
    optim_ = make_adamw(sharding_->masters(true), sharding_->masters(false), opts_.optim);
  } else {
    optim_ = make_adamw(*policy_.model, opts_.optim, &trainable_);
  }
  if (opts_.shard == dist::ShardMode::none || opts_.shard == dist::ShardMode::optimizer) {
    // Whole gradients summed over the ranks: the routed experts' over their replicas only (expert
    // parallelism).
    std::vector<at::Tensor> shared, experts;
    for (const auto& p : policy_.model->named_parameters()) {
      if (!p.value().requires_grad()) continue;
      (layout_.expert_parallel > 1 && is_routed_expert(p.key()) ? experts : shared).push_back(p.value());
    }
    if (trainable_.empty()) {
      trainable_ = shared;
      trainable_.insert(trainable_.end(), experts.begin(), experts.end());
    }
    grads_ = std::make_unique<dist::GradReducer>(layout_.world, shared, opts_.bucket_bytes);
    if (!experts.empty())
      expert_grads_ = std::make_unique<dist::GradReducer>(layout_.replicas, experts, opts_.bucket_bytes);
  }
  lockstep_ = layout_.world->size() > 1 &&
              (opts_.shard == dist::ShardMode::grads || frees_weights() || layout_.expert_parallel > 1);
}

ParallelPolicy::~ParallelPolicy() = default;

std::function<bool(bool)> ParallelPolicy::rollout_lockstep() {
  if (layout_.expert_parallel == 1) return nullptr;
  return [group = layout_.experts](bool mine) {
    return group->all_reduce({mine ? 1.0 : 0.0}, dist::ReduceOp::max)[0] > 0;
  };
}

void ParallelPolicy::gather_weights() {
  if (!frees_weights()) return;
  const auto t0 = Clock::now();
  sharding_->gather_all();
  weight_sync_seconds_ += seconds_since(t0);
}

void ParallelPolicy::release_weights() {
  if (frees_weights()) sharding_->release_all();
}

void ParallelPolicy::reset_timing() {
  weight_sync_seconds_ = 0;
  grad_sync_ = {};
  if (layout_.exchange) layout_.exchange->reset_timing();
}

void ParallelPolicy::begin_update() {
  if (!frees_weights()) return;
  const auto t0 = Clock::now();
  sharding_->gather_root();
  if (ref_sharding_) ref_sharding_->gather_root();
  weight_sync_seconds_ += seconds_since(t0);
}

void ParallelPolicy::begin_pass(int64_t pass) {
  // The root's weights after the previous pass's optimizer step (the layers refresh theirs as they gather).
  if (pass > 0 && frees_weights()) sharding_->gather_root();
  optim_->zero_grad();
}

size_t ParallelPolicy::micro_batches(size_t mine) {
  if (!lockstep_) return mine;
  return static_cast<size_t>(layout_.world->all_reduce({static_cast<double>(mine)}, dist::ReduceOp::max)[0]);
}

void ParallelPolicy::arm(const at::Tensor& loss) {
  if (!opts_.overlap) return;
  if (grads_) grads_->arm(loss);
  if (expert_grads_) expert_grads_->arm(loss);
}

void ParallelPolicy::after_backward() {
  if (sharding_) sharding_->after_backward();
}

void ParallelPolicy::end_pass(int64_t pass) {
  if (grads_) {
    grads_->finish();  // every rank, also one without micro-batches: collectives stay in step
    if (expert_grads_) expert_grads_->finish();
    grad_sync_.seconds += grads_->last().finish_seconds;
    ++grad_sync_.passes;
    grad_sync_.buckets = grads_->last().buckets;
    grad_sync_.during_backward = grads_->last().during_backward;
  }
  if (opts_.shard == dist::ShardMode::optimizer) {
    sharding_->take_grads();                                 // this rank's slices of the summed gradients
    if (pass == 0) grad_bytes_ = sharding_->memory().grads;  // the peak: whole gradients and the slices
    policy_.model->zero_grad();
  }
}

ParallelPolicy::GradSync ParallelPolicy::grad_sync() const {
  return grads_ && grads_->active() ? grad_sync_ : GradSync{};
}

double ParallelPolicy::clip(double max_norm) {
  if (sharded()) return sharding_->clip_grad_norm(max_norm);
  if (layout_.expert_parallel > 1) return clip_expert_parallel(max_norm);
  return max_norm > 0
             ? torch::nn::utils::clip_grad_norm_(trainable_, max_norm)
             : torch::nn::utils::clip_grad_norm_(trainable_, std::numeric_limits<double>::infinity());
}

// clip_grad_norm_ of an expert-parallel run without sharding: each rank holds its own block of the experts,
// so their squares are summed over the expert-parallel group; the rest is the same on every rank.
double ParallelPolicy::clip_expert_parallel(double max_norm) {
  c10::NoGradGuard no_grad;
  double shared = 0, experts = 0;
  std::vector<at::Tensor> all;
  for (const auto& p : policy_.model->named_parameters()) {
    const at::Tensor& g = p.value().grad();
    if (!g.defined()) continue;
    all.push_back(g);
    (is_routed_expert(p.key()) ? experts : shared) += g.to(at::kDouble).pow(2).sum().item<double>();
  }
  experts = layout_.experts->all_reduce(std::vector<double>{experts})[0];
  const double norm = std::sqrt(shared + experts);
  if (max_norm > 0 && std::isfinite(norm)) {
    const double coef = std::min(1.0, max_norm / (norm + 1e-6));
    for (auto& g : all)
      g.mul_(coef);
  }
  return norm;
}

void ParallelPolicy::step(int64_t pass) {
  if (pass == 0 && opts_.shard != dist::ShardMode::optimizer) {
    std::vector<at::Tensor> g;
    for (const auto& p : trainable_)
      g.push_back(p.grad());
    grad_bytes_ = sharded() ? sharding_->memory().grads : dist::storage_bytes(g);
  }
  optim_->step();
  if (sharded()) sharding_->after_step();
}

void ParallelPolicy::end_update() {
  optim_->zero_grad();
  if (sharded()) policy_.model->zero_grad();
  if (frees_weights()) {
    sharding_->release_root();
    if (ref_sharding_) ref_sharding_->release_root();
  }
}

void ParallelPolicy::set_lr(double lr) {
  rl::set_lr(*optim_, lr);
}

void ParallelPolicy::update_routing_bias(const at::Tensor& expert_load, double speed) {
  model::update_routing_bias(*policy_.model, expert_load.to(policy_.device), speed);
}

void ParallelPolicy::reset_reference() {
  if (ref_sharding_) {
    ref_sharding_->copy_masters_from(*sharding_);
  } else {
    copy_weights(*ref_, *policy_.model);
  }
}

int64_t ParallelPolicy::param_bytes() const {
  return sharded() ? sharding_->memory().params : dist::storage_bytes(policy_.model->parameters());
}

int64_t ParallelPolicy::optimizer_bytes() const {
  return optimizer_state_bytes(*optim_);
}

void ParallelPolicy::check_replicas(int64_t step) {
  // Sharded ranks hold different slices by design; expert-parallel ones different experts.
  if (layout_.world->size() == 1 || sharded()) return;
  double sum = 0;
  {
    c10::NoGradGuard no_grad;
    for (const auto& p : policy_.model->named_parameters())
      if (layout_.expert_parallel == 1 || !is_routed_expert(p.key()))
        sum += p.value().to(at::kDouble).sum().item<double>();
  }
  const std::vector<double> v = layout_.world->all_reduce({sum, -sum}, dist::ReduceOp::max);
  AHA_CHECK(
      v[0] == -v[1], "at step ", step, " the ranks' parameters differ (checksums from ", -v[1], " to ", v[0],
      "): data-parallel replicas must stay identical, so the run stops rather than train diverged copies");
}

void ParallelPolicy::export_model(model::TransformerImpl& m, dist::Sharding* s, const std::string& dir) {
  // Whole fp32 weights: the module's own, or gathered from the shards (rank 0 receives them).
  std::vector<io::NamedTensor> gathered;
  if (s) {
    gathered = s->full_tensors();
  } else {
    gathered = gather_experts(m, layout_);  // expert parallelism: each rank holds a block of the experts
  }
  if (!layout_.world->is_main()) return;
  std::map<std::string, at::Tensor> by_name(gathered.begin(), gathered.end());
  std::vector<io::NamedTensor> tensors;
  for (const auto& p : m.named_parameters()) {
    const auto it = by_name.find(p.key());
    tensors.emplace_back(p.key(), it != by_name.end() ? it->second : p.value());
  }
  for (const auto& b : m.named_buffers())
    tensors.emplace_back(b.key(), b.value());
  model::save_pretrained(m.config(), tensors, dir, {.dtype = at::kFloat});
}

void ParallelPolicy::save(const std::string& staging, const std::string& exported) {
  if (!per_rank_state()) return;
  dist::World& w = *layout_.world;
  if (w.is_main()) {
    fs::remove_all(staging);
    fs::remove_all(exported);
  }
  w.barrier();
  export_model(*policy_.model, sharded() ? sharding_.get() : nullptr,
               (fs::path(exported) / "model").string());
  if (ref_) export_model(*ref_, ref_sharding_.get(), (fs::path(exported) / "ref").string());
  if (sharded()) {
    sharding_->save(staging, [&](const at::Tensor& master) {
      const AdamMoments mo = adam_moments(*optim_, master);
      return dist::Sharding::Moments{mo.exp_avg, mo.exp_avg_sq, mo.step};
    });
  } else {
    io::make_dirs(staging);
    save_optimizer(*optim_,
                   (fs::path(staging) / ("optimizer-rank-" + std::to_string(w.rank()) + ".pt")).string());
  }
  w.barrier();
}

void ParallelPolicy::commit(const std::string& tmp, const std::string& staging, const std::string& exported) {
  if (per_rank_state()) {
    fs::rename(fs::path(exported) / "model", fs::path(tmp) / "model");
    if (!policy_.tokenizer_json.empty())
      io::write_file_atomic((fs::path(tmp) / "model" / "tokenizer.json").string(), policy_.tokenizer_json);
    if (ref_) fs::rename(fs::path(exported) / "ref", fs::path(tmp) / "ref");
    fs::remove_all(exported);
    fs::rename(staging, fs::path(tmp) / "shards");
  } else {
    save_policy(policy_, (fs::path(tmp) / "model").string());
    if (ref_) model::save_pretrained(*ref_, (fs::path(tmp) / "ref").string(), {.dtype = at::kFloat});
    save_optimizer(*optim_, (fs::path(tmp) / "optimizer.pt").string());
  }
}

void ParallelPolicy::load(const std::string& dir, const Json& st, const std::string& shard_name) {
  const std::string saved = st.value("shard", std::string("none"));
  AHA_CHECK(
      (saved == "none") == !sharded(), "checkpoint ", dir, " was written with dist.shard=", saved,
      ", this run has dist.shard=", shard_name,
      ": a sharded checkpoint resumes with any sharded mode (optimizer, grads, full) at any world size, "
      "an unsharded one without sharding; resume with --set dist.shard=",
      saved == "none" ? "none" : saved);
  if (sharded()) {
    sharding_->load((fs::path(dir) / "shards").string(),
                    [&](const at::Tensor& master, const dist::Sharding::Moments& m) {
                      set_adam_moments(*optim_, master, {m.exp_avg, m.exp_avg_sq, m.step});
                    });
  } else if (layout_.expert_parallel > 1) {
    // Each rank's AdamW moments of its own experts: only the same layout can take them.
    const int64_t w = st.value("world_size", int64_t{1}), n = st.value("expert_parallel", int64_t{1});
    AHA_CHECK(w == layout_.world->size() && n == layout_.expert_parallel, "checkpoint ", dir,
              " was written by ", w, " rank(s) with dist.expert_parallel ", n,
              "; without sharding it resumes only with the same layout (dist.shard optimizer, grads or full "
              "checkpoints reshard to any)");
    load_optimizer(*optim_, (fs::path(dir) / "shards" /
                             ("optimizer-rank-" + std::to_string(layout_.world->rank()) + ".pt"))
                                .string());
  } else {
    load_optimizer(*optim_, (fs::path(dir) / "optimizer.pt").string());
  }
}

}  // namespace aha::rl
