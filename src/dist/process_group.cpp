#include "aha/dist/process_group.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>

#include "aha/core/error.h"
#include "backends.h"

namespace aha::dist {

namespace {

std::string first_line(const std::exception& e) {
  const auto* ce = dynamic_cast<const c10::Error*>(&e);
  std::string s = ce ? ce->what_without_backtrace() : e.what();
  const size_t nl = s.find('\n');
  return nl == std::string::npos ? s : s.substr(0, nl);
}

bool loopback(const std::string& host) {
  return host == "localhost" || host.rfind("127.", 0) == 0 || host == "::1";
}

c10d::ReduceOp to_c10d(ReduceOp op) {
  return op == ReduceOp::max ? c10d::ReduceOp(c10d::ReduceOp::MAX) : c10d::ReduceOp(c10d::ReduceOp::SUM);
}

// Consecutive runs of tensors with one dtype and device, at most `bucket_bytes` each (a larger tensor is a
// bucket of its own).
std::vector<std::pair<size_t, size_t>> buckets(const std::vector<at::Tensor>& ts, int64_t bucket_bytes) {
  std::vector<std::pair<size_t, size_t>> out;
  size_t begin = 0;
  int64_t bytes = 0;
  for (size_t i = 0; i < ts.size(); ++i) {
    const int64_t b = ts[i].numel() * static_cast<int64_t>(ts[i].element_size());
    const bool split = i > begin && (ts[i].scalar_type() != ts[begin].scalar_type() ||
                                     ts[i].device() != ts[begin].device() || bytes + b > bucket_bytes);
    if (split) {
      out.emplace_back(begin, i);
      begin = i;
      bytes = 0;
    }
    bytes += b;
  }
  if (begin < ts.size()) out.emplace_back(begin, ts.size());
  return out;
}

}  // namespace

struct World::Impl {
  WorldSpec spec;
  std::string backend = "none";
  c10::Device comm_device{c10::kCPU};  // where the backend's collectives take their tensors
  std::chrono::milliseconds timeout{600000};
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::Store> tcp;  // the rendezvous store itself: sub-groups take prefixes of it
  c10::intrusive_ptr<c10d::Backend> pg;
  bool broken = false;
  std::string name = "world";
  int64_t global_rank = 0;
  int64_t splits = 0;  // sub-groups made so far (the same count on every rank: their store prefixes)
  int device_index = 0;

  ~Impl() {
    if (pg && broken) {
      try {
        pg->abort();
      } catch (...) {
      }
    }
  }

  [[noreturn]] void fail(const char* op, const std::string& why) {
    broken = true;
    AHA_FAIL(
        "collective ", op, " failed on rank ", spec.rank, " of ", spec.world_size,
        name == "world" ? std::string()
                        : " in " + name + " (rank " + std::to_string(global_rank) + " overall)",
        " (", backend, ", timeout ", spec.timeout_s, " s): ", why,
        ". Another rank has probably stopped (crashed, killed, out of memory) or is stuck: see its output");
  }

  template <class F>
  void run(const char* op, F&& launch) {
    AHA_CHECK(!broken, "collective ", op, " on rank ", spec.rank, name == "world" ? "" : " in " + name,
              ": the process group is unusable after an earlier failed collective");
    try {
      c10::intrusive_ptr<c10d::Work> work = launch();
      work->wait(timeout);
    } catch (const std::exception& e) {
      fail(op, first_line(e));
    }
  }

  c10::intrusive_ptr<c10d::Backend> make_backend(const c10::intrusive_ptr<c10d::Store>& on, int rank,
                                                 int size) {
    return backend == "nccl"
               ? detail::make_nccl(on, rank, size, timeout, device_index)
               : detail::make_gloo(on, rank, size, timeout, loopback(spec.master_addr) ? "127.0.0.1" : "");
  }

  // A collective from `input` into `output` (any shapes; their element counts are the caller's to check),
  // through flat contiguous buffers on the comm device. A world of one copies (its slice is the whole).
  template <class F>
  void flat(const char* op, const at::Tensor& input, at::Tensor& output, F&& launch) {
    c10::NoGradGuard no_grad;
    if (!pg) {
      if (!output.is_same(input)) output.copy_(input.reshape(output.sizes()));
      return;
    }
    at::Tensor in = input.to(comm_device).contiguous().view(-1);
    at::Tensor out = output.device() == comm_device && output.is_contiguous()
                         ? output.view(-1)
                         : at::empty({output.numel()}, in.options());
    run(op, [&] { return launch(out, in); });
    if (out.data_ptr() != output.data_ptr()) output.copy_(out.view(output.sizes()));
  }

  void wait_all(const char* op, std::vector<c10::intrusive_ptr<c10d::Work>>& works) {
    try {
      for (auto& w : works)
        w->wait(timeout);
    } catch (const std::exception& e) {
      fail(op, first_line(e));
    }
  }
};

World::World() : impl_(std::make_unique<Impl>()) {}
World::~World() = default;

int64_t World::rank() const {
  return impl_->spec.rank;
}
int64_t World::size() const {
  return impl_->spec.world_size;
}
int64_t World::local_rank() const {
  return impl_->spec.local_rank;
}
const std::string& World::backend() const {
  return impl_->backend;
}
const WorldSpec& World::spec() const {
  return impl_->spec;
}

std::shared_ptr<World> World::connect(const WorldSpec& spec, const c10::Device& device) {
  auto w = std::make_shared<World>();
  Impl& m = *w->impl_;
  m.spec = spec;
  m.global_rank = spec.rank;
  // One process that no launcher started has nothing to join. Started by one (even alone, as in the GPU
  // check's world of one), it builds the store and the process group, and every collective goes through them.
  if (spec.source == "single") return w;
  std::string backend = spec.backend == "auto" ? (device.is_cuda() ? "nccl" : "gloo") : spec.backend;
  AHA_CHECK(backend == "gloo" || backend == "nccl", "dist.backend must be auto, gloo or nccl, got \"",
            backend, "\"");
  AHA_CHECK(backend != "nccl" || device.is_cuda(), "dist.backend is nccl but rank ", spec.rank,
            " computes on ", device.str(), ": NCCL needs a CUDA device (gloo runs on CPU)");
  m.backend = backend;
  m.comm_device = backend == "nccl" ? device : c10::Device(c10::kCPU);
  m.timeout = std::chrono::milliseconds(static_cast<int64_t>(std::ceil(spec.timeout_s * 1000)));
  const std::string where = spec.master_addr + ":" + std::to_string(spec.master_port);
  try {
    c10d::TCPStoreOptions o;
    o.port = static_cast<uint16_t>(spec.master_port);
    o.isServer = spec.rank == 0 && !spec.agent_store;
    if (!spec.agent_store) o.numWorkers = static_cast<size_t>(spec.world_size);
    o.timeout = m.timeout;
    m.tcp = c10::make_intrusive<c10d::TCPStore>(spec.master_addr, o);
    m.store = c10::make_intrusive<c10d::PrefixStore>("aha/pg0", m.tcp);
    m.device_index = device.has_index() ? device.index() : 0;
    m.pg = m.make_backend(m.store, static_cast<int>(spec.rank), static_cast<int>(spec.world_size));
  } catch (const aha::Error&) {
    throw;
  } catch (const std::exception& e) {
    AHA_FAIL(
        "rendezvous failed: rank ", spec.rank, " of ", spec.world_size, " (", spec.source, ", ", backend,
        ") could not meet the others through the TCPStore at ", where,
        spec.agent_store ? " (hosted by torchrun's agent)"
        : spec.rank == 0 ? " (hosted by this rank)"
                         : " (hosted by rank 0)",
        " within ", spec.timeout_s, " s (dist.timeout_s): ", first_line(e),
        ". Check that every rank got the same MASTER_ADDR/MASTER_PORT and WORLD_SIZE, that rank 0 started, "
        "and that the port is reachable");
  }
  w->barrier();
  return w;
}

void World::all_reduce(at::Tensor& t, ReduceOp op) {
  if (!impl_->pg) return;
  at::Tensor x = t.to(impl_->comm_device).contiguous();
  std::vector<at::Tensor> v{x};
  c10d::AllreduceOptions o;
  o.reduceOp = to_c10d(op);
  impl_->run("all_reduce", [&] { return impl_->pg->allreduce(v, o); });
  if (!x.is_same(t)) t.copy_(x);
}

std::vector<double> World::all_reduce(std::vector<double> v, ReduceOp op) {
  if (!impl_->pg || v.empty()) return v;
  at::Tensor t = at::tensor(v, at::TensorOptions().dtype(at::kDouble));
  all_reduce(t, op);
  const double* p = t.data_ptr<double>();
  return std::vector<double>(p, p + t.numel());
}

std::vector<double> World::all_gather(const std::vector<double>& local, size_t* offset_out) {
  if (offset_out) *offset_out = 0;
  if (!impl_->pg) return local;
  std::vector<double> counts(static_cast<size_t>(size()), 0.0);
  counts[static_cast<size_t>(rank())] = static_cast<double>(local.size());
  counts = all_reduce(counts);
  size_t total = 0, offset = 0;
  for (int64_t r = 0; r < size(); ++r) {
    if (r == rank()) offset = total;
    total += static_cast<size_t>(counts[static_cast<size_t>(r)]);
  }
  if (offset_out) *offset_out = offset;
  if (total == 0) return {};
  // Every other rank adds zeros to this rank's slice: x + 0 == x exactly (NaN included).
  std::vector<double> all(total, 0.0);
  std::copy(local.begin(), local.end(), all.begin() + static_cast<std::ptrdiff_t>(offset));
  return all_reduce(std::move(all));
}

struct World::Work {
  c10::intrusive_ptr<c10d::Work> work;
};

std::shared_ptr<World::Work> World::all_reduce_async(const at::Tensor& t) {
  if (!impl_->pg) return nullptr;
  AHA_CHECK(!impl_->broken, "collective all_reduce (async) on rank ", rank(),
            ": the process group is unusable after an earlier failed collective");
  AHA_CHECK(t.device() == impl_->comm_device && t.is_contiguous(), "all_reduce_async on rank ", rank(),
            ": the tensor must be contiguous and on ", impl_->comm_device.str(), ", got ", t.device().str(),
            t.is_contiguous() ? "" : " (not contiguous)");
  std::vector<at::Tensor> v{t};
  auto w = std::make_shared<Work>();
  try {
    w->work = impl_->pg->allreduce(v);
  } catch (const std::exception& e) {
    impl_->fail("all_reduce (async)", first_line(e));
  }
  return w;
}

void World::wait(const std::vector<std::shared_ptr<Work>>& works, const char* op) {
  std::vector<c10::intrusive_ptr<c10d::Work>> ws;
  for (const auto& w : works)
    if (w && w->work) ws.push_back(w->work);
  if (!ws.empty()) impl_->wait_all(op, ws);
}

c10::Device World::comm_device() const {
  return impl_->comm_device;
}

void World::broadcast(const std::vector<at::Tensor>& tensors, int64_t root, int64_t bucket_bytes) {
  if (!impl_->pg || tensors.empty()) return;
  c10::NoGradGuard no_grad;
  for (const auto& [b, e] : buckets(tensors, bucket_bytes)) {
    std::vector<at::Tensor> parts;
    for (size_t i = b; i < e; ++i)
      parts.push_back(tensors[i].reshape(-1));
    std::vector<at::Tensor> v{at::cat(parts).to(impl_->comm_device)};
    c10d::BroadcastOptions o;
    o.rootRank = root;
    impl_->run("broadcast", [&] { return impl_->pg->broadcast(v, o); });
    int64_t at_ = 0;
    for (size_t i = b; i < e; ++i) {
      at::Tensor t = tensors[i];
      t.copy_(v[0].narrow(0, at_, t.numel()).view(t.sizes()));
      at_ += t.numel();
    }
  }
}

void World::barrier() {
  if (!impl_->pg) return;
  at::Tensor one = at::ones({1}, at::TensorOptions().dtype(at::kFloat));
  all_reduce(one);
}

void World::all_gather(const at::Tensor& input, at::Tensor& output) {
  AHA_CHECK(output.numel() == input.numel() * size(), "all_gather on rank ", rank(), ": ", input.numel(),
            " elements per rank need an output of ", input.numel() * size(), ", got ", output.numel());
  impl_->flat("all_gather", input, output,
              [&](at::Tensor& out, at::Tensor& in) { return impl_->pg->_allgather_base(out, in); });
}

void World::reduce_scatter(const at::Tensor& input, at::Tensor& output) {
  AHA_CHECK(input.numel() == output.numel() * size(), "reduce_scatter on rank ", rank(), ": an input of ",
            input.numel(), " elements does not split into ", size(), " slices of ", output.numel());
  c10d::ReduceScatterOptions o;
  o.reduceOp = c10d::ReduceOp(c10d::ReduceOp::SUM);
  impl_->flat("reduce_scatter", input, output,
              [&](at::Tensor& out, at::Tensor& in) { return impl_->pg->_reduce_scatter_base(out, in, o); });
}

at::Tensor World::all_to_all(const at::Tensor& input, const std::vector<int64_t>& send,
                             const std::vector<int64_t>& recv) {
  const auto n = static_cast<size_t>(size());
  AHA_CHECK(send.size() == n && recv.size() == n, "all_to_all on rank ", rank(), ": ", n,
            " send and receive counts needed, got ", send.size(), " and ", recv.size());
  int64_t total_send = 0, total_recv = 0;
  for (size_t r = 0; r < n; ++r) {
    total_send += send[r];
    total_recv += recv[r];
  }
  AHA_CHECK(input.dim() >= 1 && input.size(0) == total_send, "all_to_all on rank ", rank(), ": ", total_send,
            " rows to send, the input has ", input.dim() >= 1 ? input.size(0) : 0);
  std::vector<int64_t> shape = input.sizes().vec();
  shape[0] = total_recv;
  if (!impl_->pg) return input.clone();
  c10::NoGradGuard no_grad;
  at::Tensor in = input.to(impl_->comm_device).contiguous();
  at::Tensor out = at::empty(shape, in.options());
  std::vector<int64_t> send_split(send), recv_split(recv);
  c10d::AllToAllOptions o;
  impl_->run("all_to_all", [&] { return impl_->pg->alltoall_base(out, in, recv_split, send_split, o); });
  return out.to(input.device());
}

std::shared_ptr<World> World::split(int64_t color, const std::string& name) {
  // Every rank learns every rank's color (one small gather), then each group meets under its own prefix.
  const std::vector<double> colors = all_gather(std::vector<double>{static_cast<double>(color)});
  std::vector<int64_t> members;
  for (size_t r = 0; r < colors.size(); ++r)
    if (static_cast<int64_t>(colors[r]) == color) members.push_back(static_cast<int64_t>(r));
  auto w = std::make_shared<World>();
  Impl& m = *w->impl_;
  m.spec = impl_->spec;
  m.spec.world_size = static_cast<int64_t>(members.size());
  m.spec.rank = std::find(members.begin(), members.end(), rank()) - members.begin();
  m.name = name;
  m.global_rank = impl_->global_rank;
  const int64_t index = impl_->splits++;
  if (!impl_->pg || members.size() == 1) return w;  // a group of one communicates with nobody
  m.backend = impl_->backend;
  m.comm_device = impl_->comm_device;
  m.timeout = impl_->timeout;
  m.device_index = impl_->device_index;
  m.tcp = impl_->tcp;
  m.store = c10::make_intrusive<c10d::PrefixStore>(
      "aha/" + impl_->name + "/split" + std::to_string(index) + "/" + std::to_string(color), impl_->store);
  try {
    m.pg = m.make_backend(m.store, static_cast<int>(m.spec.rank), static_cast<int>(m.spec.world_size));
  } catch (const std::exception& e) {
    impl_->fail("split", first_line(e));
  }
  w->barrier();
  return w;
}

int64_t World::global_rank() const {
  return impl_->global_rank;
}

const std::string& World::name() const {
  return impl_->name;
}

bool backend_available(const std::string& backend) {
  return backend == "gloo" ? detail::have_gloo() : backend == "nccl" ? detail::have_nccl() : false;
}

std::string rank_device(const std::string& model_device, const WorldSpec& spec, bool cuda_available) {
  if (spec.world_size == 1) return model_device;
  const std::string mine = "cuda:" + std::to_string(spec.local_rank);
  if (model_device == "auto") return cuda_available ? mine : "cpu";
  if (model_device == "cuda") return mine;
  return model_device;
}

}  // namespace aha::dist
