#include "aha/dist/sharding.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>
#include <c10/core/StorageImpl.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/variable.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>

#include "aha/core/error.h"
#include "aha/dist/process_group.h"
#include "aha/io/file.h"
#include "aha/io/safetensors.h"

namespace aha::dist {

namespace fs = std::filesystem;
using Json = nlohmann::json;

ShardMode parse_shard_mode(const std::string& name) {
  if (name == "none") return ShardMode::none;
  if (name == "optimizer") return ShardMode::optimizer;
  if (name == "grads") return ShardMode::grads;
  if (name == "full") return ShardMode::full;
  AHA_FAIL("dist.shard must be none, optimizer, grads or full, got \"", name, "\"");
}

const char* shard_mode_name(ShardMode mode) {
  switch (mode) {
    case ShardMode::none:
      return "none";
    case ShardMode::optimizer:
      return "optimizer";
    case ShardMode::grads:
      return "grads";
    case ShardMode::full:
      return "full";
  }
  return "?";
}

int64_t storage_bytes(const std::vector<at::Tensor>& tensors) {
  std::set<const c10::StorageImpl*> seen;
  int64_t bytes = 0;
  for (const auto& t : tensors) {
    if (!t.defined() || !t.has_storage()) continue;
    const c10::StorageImpl* s = t.storage().unsafeGetStorageImpl();
    if (seen.insert(s).second) bytes += static_cast<int64_t>(s->nbytes());
  }
  return bytes;
}

namespace {

// Frees a tensor's memory in place: the StorageImpl stays (views and autograd's saved tensors keep pointing
// at it), its bytes go.
void free_storage(const at::Tensor& t) {
  c10::StorageImpl* s = t.storage().unsafeGetStorageImpl();
  if (s->nbytes() == 0) return;
  s->set_data_ptr_noswap(at::DataPtr(nullptr, s->device()));
  s->set_nbytes(0);
}

// Gives a freed tensor its `bytes` back (uninitialised).
void allocate_storage(const at::Tensor& t, size_t bytes) {
  c10::StorageImpl* s = t.storage().unsafeGetStorageImpl();
  if (s->nbytes() >= bytes) return;
  AHA_CHECK(s->allocator() != nullptr,
            "sharding: a parameter's storage has no allocator to allocate it again");
  s->set_data_ptr_noswap(s->allocator()->allocate(bytes));
  s->set_nbytes(bytes);
}

// Writes `src` into `dst`'s memory without moving `dst`'s version counter (autograd's saved copies of it stay
// valid: the values are the same ones, gathered again).
void fill_quietly(const at::Tensor& dst, const at::Tensor& src) {
  c10::NoGradGuard no_grad;
  dst.variable_data().view(-1).copy_(src.view(-1));
}

// One flat fp32 vector: the parameters of one unit with the same dtype, decay class and groups, concatenated,
// padded to a multiple of the group's size; this rank keeps `master`, its slice.
struct Flat {
  std::shared_ptr<World> group, split_over;
  bool decay = true;
  at::ScalarType dtype = at::kFloat;  // of the module's parameters (what they compute in)
  std::vector<size_t> params;         // indices into the unit's params
  std::vector<int64_t> offsets;       // where each starts in the flat vector
  int64_t numel = 0, padded = 0, slice = 0;
  at::Tensor master;                                       // [slice] fp32, on the parameters' device
  int64_t begin() const { return group->rank() * slice; }  // this rank's first element
};

struct UnitState {
  ShardUnit unit;
  std::vector<Flat> flats;
  std::vector<size_t> bytes;  // each parameter's storage size when whole
  bool whole = true;          // the module's weights hold the values of epoch `epoch`
  int64_t epoch = 0;
};

}  // namespace

struct Sharding::Impl {
  std::shared_ptr<World> world;
  ShardingOptions opts;
  std::vector<UnitState> units;
  std::map<int64_t, size_t> unit_of_layer;
  int64_t epoch =
      0;  // moves with every optimizer step (and load): gathered weights of older epochs are stale

  bool frees() const { return opts.mode == ShardMode::full; }
  bool reduces_in_backward() const { return opts.mode == ShardMode::grads || opts.mode == ShardMode::full; }

  void gather(UnitState& u) {
    if (u.whole && u.epoch == epoch) return;
    const bool moved = u.epoch != epoch;
    for (Flat& f : u.flats) {
      at::Tensor full = at::empty({f.padded}, f.master.options().dtype(f.dtype));
      f.group->all_gather(f.master.to(f.dtype), full);
      for (size_t i = 0; i < f.params.size(); ++i) {
        const at::Tensor& p = u.unit.params[f.params[i]].tensor;
        allocate_storage(p, u.bytes[f.params[i]]);
        fill_quietly(p, full.narrow(0, f.offsets[i], p.numel()));
        // New values after an optimizer step: caches keyed by the version (FP8 weights) must see it.
        if (moved) torch::autograd::impl::bump_version(p);
      }
    }
    u.whole = true;
    u.epoch = epoch;
  }

  void release(UnitState& u) {
    if (!frees() || !u.whole) return;
    for (const auto& p : u.unit.params)
      free_storage(p.tensor);
    u.whole = false;
  }

  // Sums `grads` (one per parameter of the unit, undefined: zeros) over each flat's group and adds this
  // rank's slice to its master's gradient.
  void reduce(UnitState& u, const std::vector<at::Tensor>& grads) {
    c10::NoGradGuard no_grad;
    for (Flat& f : u.flats) {
      at::Tensor full = at::zeros({f.padded}, f.master.options());
      for (size_t i = 0; i < f.params.size(); ++i) {
        const at::Tensor& g = grads[f.params[i]];
        if (g.defined()) full.narrow(0, f.offsets[i], g.numel()).copy_(g.reshape(-1));
      }
      at::Tensor mine = at::empty({f.slice}, f.master.options());
      f.group->reduce_scatter(full, mine);
      at::Tensor& acc = f.master.mutable_grad();
      if (acc.defined()) {
        acc.add_(mine);
      } else {
        acc = mine;
      }
    }
  }

  // The unit's gradients left in the module's .grad (undefined: zeros), reduced and cleared.
  void reduce_module_grads(UnitState& u) {
    std::vector<at::Tensor> grads;
    for (const auto& p : u.unit.params)
      grads.push_back(p.tensor.grad());
    reduce(u, grads);
    for (const auto& p : u.unit.params)
      p.tensor.mutable_grad() = at::Tensor();
  }

  // The saved-slice pieces of flat `f`: (parameter, first and last global element, first element in the
  // slice). A parameter split over an expert-parallel group counts its elements in the whole tensor.
  struct Piece {
    std::string name;
    int64_t g0, g1, f0;
  };
  std::vector<Piece> pieces(const UnitState& u, const Flat& f) const {
    std::vector<Piece> out;
    const int64_t a = f.begin(), b = std::min(f.begin() + f.slice, f.numel);
    for (size_t i = 0; i < f.params.size(); ++i) {
      const ShardParam& p = u.unit.params[f.params[i]];
      const int64_t lo = std::max(a, f.offsets[i]), hi = std::min(b, f.offsets[i] + p.tensor.numel());
      if (lo >= hi) continue;
      const int64_t base = p.split_over ? p.split_over->rank() * p.tensor.numel() : 0;
      out.push_back({p.name, lo - f.offsets[i] + base, hi - f.offsets[i] + base, lo - a});
    }
    return out;
  }
};

// ---- the layer node
// -------------------------------------------------------------------------------------------------

namespace {

// The backward pass of one layer run through Sharding::run: gathers the layer's weights (full), recomputes it
// (activation checkpointing) or takes the graph its forward kept, differentiates it with respect to its input
// and its parameters, and reduce-scatters the parameters' gradients (grads/full) or lets them accumulate into
// .grad as usual (none/optimizer with checkpointing, where the GradReducer's hooks take them).
struct LayerBackward : torch::autograd::Node {
  Sharding::Impl* owner = nullptr;
  UnitState* unit = nullptr;
  model::LayerBody body;
  bool recompute = false;
  bool input_requires_grad = false;
  at::Tensor saved_input;    // recompute: the layer's input, detached
  model::LayerOutput inner;  // otherwise: the outputs of the graph the forward kept
  at::Tensor inner_input;    // and the leaf it starts from

  std::string name() const override { return "aha::dist::LayerBackward"; }

  void release_variables() override {
    saved_input = at::Tensor();
    inner = {};
    inner_input = at::Tensor();
  }

  torch::autograd::variable_list apply(torch::autograd::variable_list&& grads) override {
    owner->gather(*unit);
    at::Tensor x;
    model::LayerOutput out;
    {
      at::AutoGradMode enable(true);
      if (recompute) {
        x = saved_input.detach();
        x.requires_grad_(input_requires_grad);
        out = body(x, true);
      } else {
        x = inner_input;
        out = inner;
      }
    }
    std::vector<at::Tensor> outputs, gouts;
    const at::Tensor* results[2] = {&out.hidden, &out.aux};
    for (size_t i = 0; i < grads.size() && i < 2; ++i) {
      if (!grads[i].defined() || !results[i]->defined() || !results[i]->requires_grad()) continue;
      outputs.push_back(*results[i]);
      gouts.push_back(grads[i]);
    }
    at::Tensor input_grad;
    const auto& params = unit->unit.params;
    if (owner->reduces_in_backward()) {
      std::vector<at::Tensor> inputs;
      std::vector<size_t> which;  // parameter index of inputs[k] (SIZE_MAX: the layer's input)
      if (x.requires_grad()) {
        inputs.push_back(x);
        which.push_back(SIZE_MAX);
      }
      for (size_t i = 0; i < params.size(); ++i) {
        if (!params[i].tensor.requires_grad()) continue;
        inputs.push_back(params[i].tensor);
        which.push_back(i);
      }
      std::vector<at::Tensor> param_grads(params.size());
      if (!outputs.empty() && !inputs.empty()) {
        const auto g = torch::autograd::grad(outputs, inputs, gouts, /*retain_graph=*/false,
                                             /*create_graph=*/false, /*allow_unused=*/true);
        for (size_t k = 0; k < g.size(); ++k) {
          if (which[k] == SIZE_MAX) {
            input_grad = g[k];
          } else {
            param_grads[which[k]] = g[k];
          }
        }
      }
      owner->reduce(*unit, param_grads);
    } else if (!outputs.empty()) {
      torch::autograd::backward(outputs, gouts);
      if (x.requires_grad()) input_grad = x.grad();
    }
    owner->release(*unit);
    release_variables();
    return {input_grad};
  }
};

}  // namespace

// ---- Sharding
// -------------------------------------------------------------------------------------------------------

Sharding::Sharding(std::shared_ptr<World> world, std::vector<ShardUnit> units, ShardingOptions options)
    : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  m.world = std::move(world);
  m.opts = options;
  c10::NoGradGuard no_grad;
  // Where the masters and the gathered weights live: options.device, else where the weights are now.
  std::optional<at::Device> target = options.device;
  for (auto& unit : units) {
    if (!target && !unit.params.empty()) target = unit.params[0].tensor.device();
    const at::Device device = target.value_or(at::kCPU);
    UnitState u;
    u.unit = std::move(unit);
    for (size_t i = 0; i < u.unit.params.size(); ++i) {
      ShardParam& p = u.unit.params[i];
      if (!p.group) p.group = m.world;
      AHA_CHECK(p.tensor.defined() && p.tensor.is_leaf(), "sharding: ", p.name, " is not a leaf parameter");
      // Each parameter owns its memory (freeing it must not free a neighbour's).
      if (!p.tensor.is_contiguous() || p.tensor.storage_offset() != 0 ||
          p.tensor.storage().nbytes() != static_cast<size_t>(p.tensor.numel()) * p.tensor.element_size())
        p.tensor.set_data(p.tensor.clone(at::MemoryFormat::Contiguous));
      u.bytes.push_back(static_cast<size_t>(p.tensor.numel()) * p.tensor.element_size());
      if (m.opts.mode == ShardMode::none) continue;  // activation checkpointing alone: nothing sharded
      const at::ScalarType dtype = p.keep_fp32 ? at::kFloat : m.opts.compute_dtype;
      Flat* flat = nullptr;
      for (Flat& f : u.flats)
        if (f.group == p.group && f.split_over == p.split_over && f.decay == p.decay && f.dtype == dtype)
          flat = &f;
      if (!flat) {
        u.flats.emplace_back();
        flat = &u.flats.back();
        flat->group = p.group;
        flat->split_over = p.split_over;
        flat->decay = p.decay;
        flat->dtype = dtype;
      }
      flat->params.push_back(i);
      flat->offsets.push_back(flat->numel);
      flat->numel += p.tensor.numel();
    }
    for (Flat& f : u.flats) {
      const int64_t w = f.group->size();
      f.slice = (f.numel + w - 1) / w;
      f.padded = f.slice * w;
      at::Tensor full = at::zeros({f.padded}, u.unit.params[f.params[0]].tensor.options().dtype(at::kFloat));
      for (size_t i = 0; i < f.params.size(); ++i) {
        const at::Tensor& p = u.unit.params[f.params[i]].tensor;
        full.narrow(0, f.offsets[i], p.numel()).copy_(p.reshape(-1));
      }
      f.master = full.narrow(0, f.begin(), f.slice).to(device).clone();
    }
    // The module's weights from here on: in the compute dtype (mixed precision: the masters hold the fp32
    // values), on the masters' device. Full sharding frees them at once, so a model built on the host never
    // has all its weights on the device.
    for (size_t i = 0; i < u.unit.params.size(); ++i) {
      ShardParam& p = u.unit.params[i];
      const at::ScalarType dtype =
          p.keep_fp32 || m.opts.mode == ShardMode::none ? p.tensor.scalar_type() : m.opts.compute_dtype;
      if (p.tensor.scalar_type() == dtype && p.tensor.device() == device) continue;
      const at::TensorOptions to = p.tensor.options().dtype(dtype).device(device);
      if (m.frees()) {
        p.tensor.set_data(at::empty(p.tensor.sizes(), to));
        free_storage(p.tensor);
      } else {
        p.tensor.set_data(p.tensor.to(to));
      }
      u.bytes[i] = static_cast<size_t>(p.tensor.numel()) * p.tensor.element_size();
    }
    if (u.unit.layer >= 0) {
      AHA_CHECK(m.unit_of_layer.count(u.unit.layer) == 0, "sharding: two units run as layer ", u.unit.layer);
      m.unit_of_layer[u.unit.layer] = m.units.size();
    }
    m.units.push_back(std::move(u));
    m.release(m.units.back());
  }
}

Sharding::~Sharding() = default;

ShardMode Sharding::mode() const {
  return impl_->opts.mode;
}

const ShardingOptions& Sharding::options() const {
  return impl_->opts;
}

model::LayerOutput Sharding::run(int64_t index, const at::Tensor& h, const model::LayerBody& body) {
  Impl& m = *impl_;
  const auto it = m.unit_of_layer.find(index);
  AHA_CHECK(it != m.unit_of_layer.end(), "sharding: no unit runs as layer ", index);
  UnitState& u = m.units[it->second];
  const bool node = at::GradMode::is_enabled() && (m.reduces_in_backward() || m.opts.checkpoint_layers);
  if (!node) {
    // No backward pass through here (the sampler, the reference model, an evaluation): gather, run, free
    // again unless the weights were whole before (gather_all).
    const bool was_whole = u.whole && u.epoch == m.epoch;
    m.gather(u);
    model::LayerOutput out = body(h, false);
    if (!was_whole) m.release(u);
    return out;
  }
  auto backward = std::shared_ptr<LayerBackward>(new LayerBackward(), torch::autograd::deleteNode);
  backward->owner = &m;
  backward->unit = &u;
  backward->body = body;
  backward->recompute = m.opts.checkpoint_layers;
  backward->input_requires_grad = h.requires_grad();
  backward->set_next_edges(torch::autograd::collect_next_edges(h));
  m.gather(u);
  model::LayerOutput out;
  if (backward->recompute) {
    c10::NoGradGuard no_grad;
    backward->saved_input = h.detach();
    out = body(h.detach(), false);
  } else {
    at::Tensor x = h.detach();
    x.requires_grad_(h.requires_grad());
    out = body(x, false);
    backward->inner = out;
    backward->inner_input = x;
  }
  m.release(u);
  model::LayerOutput result;
  result.hidden = out.hidden.detach();
  torch::autograd::create_gradient_edge(result.hidden, backward);
  if (out.aux.defined()) {
    result.aux = out.aux.detach();
    torch::autograd::create_gradient_edge(result.aux, backward);
  }
  return result;
}

void Sharding::gather_root() {
  for (UnitState& u : impl_->units)
    if (u.unit.layer < 0) impl_->gather(u);
}

void Sharding::release_root() {
  for (UnitState& u : impl_->units)
    if (u.unit.layer < 0) impl_->release(u);
}

void Sharding::gather_all() {
  for (UnitState& u : impl_->units)
    impl_->gather(u);
}

void Sharding::release_all() {
  for (UnitState& u : impl_->units)
    impl_->release(u);
}

void Sharding::after_backward() {
  if (!impl_->reduces_in_backward()) return;
  for (UnitState& u : impl_->units)
    if (u.unit.layer < 0) impl_->reduce_module_grads(u);
}

void Sharding::take_grads() {
  c10::NoGradGuard no_grad;
  for (UnitState& u : impl_->units) {
    for (Flat& f : u.flats) {
      at::Tensor full = at::zeros({f.padded}, f.master.options());
      bool any = false;
      for (size_t i = 0; i < f.params.size(); ++i) {
        const at::Tensor& g = u.unit.params[f.params[i]].tensor.grad();
        if (!g.defined()) continue;
        full.narrow(0, f.offsets[i], g.numel()).copy_(g.reshape(-1));
        any = true;
      }
      // The GradReducer leaves a gradient no rank has undefined everywhere: the master's stays undefined too
      // (AdamW skips it, as one process would).
      if (any) f.master.mutable_grad() = full.narrow(0, f.begin(), f.slice).clone();
    }
  }
}

double Sharding::clip_grad_norm(double max_norm) {
  c10::NoGradGuard no_grad;
  double sq = 0;
  std::vector<at::Tensor> grads;
  for (const at::Tensor& mst : masters()) {
    if (!mst.grad().defined()) continue;
    grads.push_back(mst.grad());
    sq += mst.grad().to(at::kDouble).pow(2).sum().item<double>();
  }
  sq = impl_->world->all_reduce(std::vector<double>{sq})[0];
  const double norm = std::sqrt(sq);
  if (max_norm > 0 && std::isfinite(max_norm) && std::isfinite(norm)) {
    const double coef = std::min(1.0, max_norm / (norm + 1e-6));
    for (auto& g : grads)
      g.mul_(coef);
  }
  return norm;
}

void Sharding::after_step() {
  Impl& m = *impl_;
  ++m.epoch;
  if (m.frees()) return;
  for (UnitState& u : m.units)
    m.gather(u);
}

std::vector<at::Tensor> Sharding::masters(bool decay) const {
  std::vector<at::Tensor> out;
  for (const UnitState& u : impl_->units)
    for (const Flat& f : u.flats)
      if (f.decay == decay) out.push_back(f.master);
  return out;
}

std::vector<at::Tensor> Sharding::masters() const {
  std::vector<at::Tensor> out;
  for (const UnitState& u : impl_->units)
    for (const Flat& f : u.flats)
      out.push_back(f.master);
  return out;
}

std::vector<std::pair<std::string, at::Tensor>> Sharding::full_tensors() {
  c10::NoGradGuard no_grad;
  const bool keep = impl_->world->rank() == 0;
  std::vector<std::pair<std::string, at::Tensor>> out;
  for (UnitState& u : impl_->units) {
    for (Flat& f : u.flats) {
      at::Tensor full = at::empty({f.padded}, f.master.options());
      f.group->all_gather(f.master, full);
      for (size_t i = 0; i < f.params.size(); ++i) {
        const ShardParam& p = u.unit.params[f.params[i]];
        at::Tensor t = full.narrow(0, f.offsets[i], p.tensor.numel()).view(p.tensor.sizes());
        if (p.split_over && p.split_over->size() > 1) {
          std::vector<int64_t> shape = p.tensor.sizes().vec();
          shape[0] *= p.split_over->size();
          at::Tensor whole = at::empty(shape, t.options());
          p.split_over->all_gather(t.contiguous(), whole);
          t = whole;
        }
        if (keep) out.emplace_back(p.name, t.cpu().clone());
      }
    }
  }
  return out;
}

void Sharding::copy_masters_from(const Sharding& source) {
  const auto mine = masters(), theirs = source.masters();
  AHA_CHECK(mine.size() == theirs.size(), "sharding: copying masters between different layouts");
  c10::NoGradGuard no_grad;
  for (size_t i = 0; i < mine.size(); ++i)
    mine[i].copy_(theirs[i]);
  ++impl_->epoch;
  if (!impl_->frees())
    for (UnitState& u : impl_->units)
      impl_->gather(u);
}

void Sharding::save(const std::string& dir, const MomentsOf& moments) const {
  const Impl& m = *impl_;
  io::make_dirs(dir);
  const std::string stem = "rank-" + std::to_string(m.world->global_rank());
  std::vector<io::NamedTensor> tensors;
  Json manifest;
  manifest["world_size"] = m.world->size();
  manifest["flats"] = Json::array();
  int64_t k = 0;
  for (const UnitState& u : m.units) {
    for (const Flat& f : u.flats) {
      std::string key = "f";  // (not "f" + to_string: GCC 12 warns falsely about that with -Wrestrict)
      key += std::to_string(k++);
      const Moments mo = moments ? moments(f.master) : Moments{};
      tensors.emplace_back(key + ".master", f.master);
      if (mo.exp_avg.defined()) tensors.emplace_back(key + ".exp_avg", mo.exp_avg);
      if (mo.exp_avg_sq.defined()) tensors.emplace_back(key + ".exp_avg_sq", mo.exp_avg_sq);
      Json pieces = Json::array();
      for (const auto& p : m.pieces(u, f))
        pieces.push_back({p.name, p.g0, p.g1, p.f0});
      manifest["flats"].push_back({{"key", key}, {"step", mo.step}, {"pieces", pieces}});
    }
  }
  io::save_safetensors((fs::path(dir) / (stem + ".safetensors")).string(), tensors);
  // The manifest last: a reader that finds it finds its tensors.
  io::write_file_atomic((fs::path(dir) / (stem + ".json")).string(), manifest.dump() + "\n");
}

void Sharding::load(const std::string& dir,
                    const std::function<void(const at::Tensor&, const Moments&)>& set_moments) {
  Impl& m = *impl_;
  // Every saved piece of every parameter, from every rank's manifest.
  struct Saved {
    size_t file;
    std::string key;
    int64_t g0, g1, f0, step;
  };
  std::map<std::string, std::vector<Saved>> where;
  std::vector<std::string> files;
  AHA_CHECK(fs::is_directory(dir), "no sharded state in ", dir, " (the checkpoint's shards/ folder)");
  for (const auto& entry : fs::directory_iterator(dir)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind("rank-", 0) != 0 || entry.path().extension() != ".json") continue;
    Json manifest;
    try {
      manifest = Json::parse(io::read_file(entry.path().string()));
    } catch (const Json::exception& e) {
      AHA_FAIL(entry.path().string(), ": not a shard manifest (", e.what(), ")");
    }
    files.push_back((entry.path().parent_path() / (entry.path().stem().string() + ".safetensors")).string());
    for (const auto& flat : manifest.at("flats"))
      for (const auto& p : flat.at("pieces"))
        where[p.at(0).get<std::string>()].push_back({files.size() - 1, flat.at("key").get<std::string>(),
                                                     p.at(1).get<int64_t>(), p.at(2).get<int64_t>(),
                                                     p.at(3).get<int64_t>(), flat.at("step").get<int64_t>()});
  }
  AHA_CHECK(!files.empty(), "no rank-*.json shard manifest in ", dir);
  std::map<size_t, io::SafetensorsFile> open;
  auto file = [&](size_t i) -> const io::SafetensorsFile& {
    auto it = open.find(i);
    if (it == open.end()) it = open.emplace(i, io::SafetensorsFile::open(files[i])).first;
    return it->second;
  };
  c10::NoGradGuard no_grad;
  for (UnitState& u : m.units) {
    for (Flat& f : u.flats) {
      at::Tensor parts[3];
      const char* kinds[3] = {".master", ".exp_avg", ".exp_avg_sq"};
      int64_t step = 0;
      for (int kind = 0; kind < 3; ++kind) {
        at::Tensor out = at::zeros({f.slice}, at::kFloat);
        int64_t covered = 0, wanted = 0;
        for (const auto& piece : m.pieces(u, f)) {
          wanted += piece.g1 - piece.g0;
          const auto it = where.find(piece.name);
          AHA_CHECK(it != where.end(), dir, " holds no value of ", piece.name);
          for (const Saved& s : it->second) {
            const int64_t lo = std::max(piece.g0, s.g0), hi = std::min(piece.g1, s.g1);
            if (lo >= hi) continue;
            const io::SafetensorsFile& sf = file(s.file);
            if (!sf.contains(s.key + kinds[kind])) continue;
            out.narrow(0, piece.f0 + lo - piece.g0, hi - lo)
                .copy_(sf.tensor(s.key + kinds[kind]).narrow(0, s.f0 + lo - s.g0, hi - lo));
            covered += hi - lo;
            step = std::max(step, s.step);
          }
        }
        if (kind == 0) {
          AHA_CHECK(covered == wanted, dir, ": the saved shards cover ", covered, " of the ", wanted,
                    " elements of ", u.unit.name, "'s weights this rank needs (a different model?)");
        } else if (covered == 0) {
          continue;  // saved before the optimizer's first step
        } else {
          AHA_CHECK(covered == wanted, dir, ": the saved optimizer state covers ", covered, " of ", wanted,
                    " elements of ", u.unit.name);
        }
        parts[kind] = out.to(f.master.device());
      }
      f.master.copy_(parts[0]);
      if (set_moments && parts[1].defined()) set_moments(f.master, {parts[1], parts[2], step});
    }
  }
  ++m.epoch;
  for (UnitState& u : m.units)
    if (!m.frees()) m.gather(u);
}

MemoryBytes Sharding::memory() const {
  std::vector<at::Tensor> params, grads;
  for (const UnitState& u : impl_->units) {
    for (const auto& p : u.unit.params) {
      params.push_back(p.tensor);
      grads.push_back(p.tensor.grad());
    }
    for (const Flat& f : u.flats) {
      params.push_back(f.master);
      grads.push_back(f.master.grad());
    }
  }
  return {storage_bytes(params), storage_bytes(grads)};
}

}  // namespace aha::dist
