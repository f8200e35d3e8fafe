// Sharded training state over c10d (ZeRO / FSDP): each rank keeps 1/W of the fp32 master weights, of their
// gradients and of the optimizer's moments, and the whole weights exist only where and while they are needed.
//
// The parameters come in units: the root (embeddings, final norm, output head) and one unit per decoder layer
// (MTP modules included). Within a unit, the parameters of one dtype, weight-decay class and group of ranks
// are concatenated into one flat fp32 vector, padded to a multiple of the group's size; rank r keeps elements
// [r * n / W, (r + 1) * n / W) of it as its master (FlatShard below). Modes (dist.shard):
//   optimizer (ZeRO-1)  the module keeps whole weights and gradients (summed by the GradReducer); each rank
//                       steps AdamW on its slices, then the slices are all-gathered into the weights;
//   grads (ZeRO-2)      as optimizer, but each layer's gradients are reduce-scattered as soon as its backward
//                       pass has produced them, and freed: only the rank's slice of the gradients stays;
//   full (ZeRO-3/FSDP)  as grads, and the weights are freed too: a layer's are all-gathered just before its
//                       forward, freed after it, gathered again for its backward; the root's stay gathered
//                       for a training step (gather_root / release_root).
// The module's parameter tensors stay the same objects throughout (the optimizer of the unsharded run, saved
// autograd tensors and views keep pointing at them): freeing resizes their storage to 0 bytes, gathering
// allocates it again and fills it, without moving their version counters (so that autograd's saved copies
// stay valid); the first gather after an optimizer step moves them once, for the FP8 caches.
//
// Sharding is also the model's LayerRunner (model/layer_runner.h): with mode grads or full, or with
// activation checkpointing, each decoder layer runs as one autograd node whose backward pass gathers the
// layer, (re)computes it, differentiates it and reduce-scatters its gradients.
//
// What must hold: every rank of a group builds the same units in the same order and calls the collective
// methods (gather*, release*, reduce*, take_grads, write_back, clip_grad_norm, save/load, full_tensors) in
// the same order; every rank runs the same number of forward and backward passes through the runner (the
// trainer pads with empty micro-batches). Masters are fp32 whatever the compute dtype of the module's
// weights.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "aha/model/layer_runner.h"

namespace aha::dist {

class World;

enum class ShardMode { none, optimizer, grads, full };
ShardMode parse_shard_mode(const std::string& name);  // none, optimizer, grads, full; throws naming the value
const char* shard_mode_name(ShardMode mode);

struct ShardParam {
  std::string name;   // the parameter's checkpoint key ("model.layers.3.self_attn.kv_b_proj.weight")
  at::Tensor tensor;  // the module's parameter (a leaf)
  bool decay = true;  // AdamW's weight decay applies to it
  // The ranks its values are sharded over; null: the whole world.
  std::shared_ptr<World> group;
  // Expert parallelism: the tensor is this rank's block of rows of a larger one, dim 0 split evenly over
  // `split_over` in rank order (null: the tensor is whole). full_tensors() and checkpoints use the whole.
  std::shared_ptr<World> split_over;
  bool keep_fp32 = false;  // computes in fp32 whatever ShardingOptions::compute_dtype says (the router)
};

struct ShardUnit {
  std::string name;    // "root", "layer 3", ...
  int64_t layer = -1;  // the model layer it runs as (LayerRunner index); -1: not a layer (the root)
  std::vector<ShardParam> params;
};

struct ShardingOptions {
  ShardMode mode = ShardMode::full;
  bool checkpoint_layers = false;  // recompute each layer in the backward pass instead of keeping activations
  // The dtype the module's weights are gathered in and compute in (bf16: mixed precision); the masters, the
  // gradient reduction and the optimizer stay fp32. The module's weights are cast to it at construction.
  at::ScalarType compute_dtype = at::kFloat;
  // Where the masters and the gathered weights live (a GPU); unset: where the module's weights are. With full
  // sharding the module may be built on the host: each unit's weights go to the device only as slices.
  std::optional<at::Device> device;
};

// Bytes of live tensors, each storage counted once.
struct MemoryBytes {
  int64_t params = 0, grads = 0;
};

class Sharding : public model::LayerRunner {
 public:
  // `world`: the ranks of the data-parallel run (the default group of the params).
  Sharding(std::shared_ptr<World> world, std::vector<ShardUnit> units, ShardingOptions options);
  ~Sharding() override;
  Sharding(const Sharding&) = delete;
  Sharding& operator=(const Sharding&) = delete;

  ShardMode mode() const;
  const ShardingOptions& options() const;

  // ---- model::LayerRunner
  model::LayerOutput run(int64_t index, const at::Tensor& h, const model::LayerBody& body) override;

  // ---- whole weights (collective)
  void gather_root();  // the root unit's weights, for a training step (full mode; otherwise nothing to do)
  void release_root();
  void gather_all();   // every unit's (the sampler, an evaluation, an export)
  void release_all();  // back to the resting state of the mode (full: everything freed)

  // ---- gradients (collective)
  // After each backward pass: reduce-scatters what the layer nodes did not (the root's gradients, left in the
  // module's .grad), grads/full modes. Units the pass did not reach (an unused MTP module) have no gradient.
  void after_backward();
  // optimizer mode, after the GradReducer: this rank's slices of the summed module gradients into the
  // masters'.
  void take_grads();
  // The L2 norm of all master gradients over the world; scales them by max_norm / (norm + 1e-6) when that is
  // below 1 (torch's clip_grad_norm_). max_norm <= 0 or inf: the norm only.
  double clip_grad_norm(double max_norm);
  // After the optimizer stepped the masters: optimizer/grads modes all-gather them into the module's weights;
  // full mode marks them stale (the next gather refreshes them).
  void after_step();

  // ---- the optimizer's view: the fp32 master slices (their .grad set by reduce/take_grads)
  std::vector<at::Tensor> masters(bool decay) const;
  std::vector<at::Tensor> masters() const;

  // ---- state
  // Every parameter whole, in fp32, from the masters, on rank 0 of the world (others get an empty list).
  // Collective over the world.
  std::vector<std::pair<std::string, at::Tensor>> full_tensors();
  // Copies `source`'s masters into this one's (the same units and layout: a reference model).
  void copy_masters_from(const Sharding& source);
  // Each rank's masters and optimizer moments into `dir` (rank-R.safetensors + rank-R.json, its manifest of
  // which elements of which parameter each slice holds). `moments(master)` gives the optimizer's state of a
  // master: {exp_avg, exp_avg_sq} (undefined before the first step) and the step count.
  struct Moments {
    at::Tensor exp_avg, exp_avg_sq;
    int64_t step = 0;
  };
  using MomentsOf = std::function<Moments(const at::Tensor& master)>;
  void save(const std::string& dir, const MomentsOf& moments) const;
  // Reads what save() wrote at any world size and expert-parallel layout: each rank reads the pieces of the
  // saved slices that overlap its own. `set_moments(master, m)` installs the optimizer's state.
  void load(const std::string& dir,
            const std::function<void(const at::Tensor&, const Moments&)>& set_moments);

  // Live bytes of the module's weights plus the masters, and of the module's plus the masters' gradients.
  MemoryBytes memory() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

// Bytes held by the storages of `tensors` (and of their .grad when `grads`), each storage once.
int64_t storage_bytes(const std::vector<at::Tensor>& tensors);

}  // namespace aha::dist
