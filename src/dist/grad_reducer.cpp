#include "aha/dist/grad_reducer.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>
#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/function_hook.h>
#include <torch/csrc/autograd/variable.h>

#include <chrono>
#include <functional>
#include <mutex>
#include <unordered_set>

#include "aha/core/error.h"
#include "aha/dist/process_group.h"

namespace aha::dist {

namespace {

// Runs after AccumulateGrad has written the parameter's .grad (the tensor hooks that torch's
// register_hook installs run before it, on the incoming gradient only).
class ReadyHook : public torch::autograd::PostAccumulateGradHook {
 public:
  explicit ReadyHook(std::function<void()> ready) : ready_(std::move(ready)) {}
  void operator()(const torch::autograd::Variable&) override { ready_(); }

 private:
  std::function<void()> ready_;
};

}  // namespace

struct GradReducer::Impl {
  struct Bucket {
    std::vector<size_t> params;  // indices into Impl::params, in bucket order
    at::Tensor flat;             // [numel + params.size()] on the comm device: gradients, then indicators
    int64_t numel = 0;           // gradient elements (the indicators follow)
    size_t pending = 0;          // parameters not yet copied in since arm()
    std::shared_ptr<World::Work> work;
  };
  struct Slot {
    size_t bucket = 0;
    int64_t offset = 0;   // of the gradient in the bucket's flat tensor
    size_t position = 0;  // in the bucket: its indicator is flat[numel + position]
    bool ready = false;
  };

  std::shared_ptr<World> world;
  std::vector<at::Tensor> params;
  std::vector<Slot> slots;
  std::vector<Bucket> buckets;
  bool hooked = false;
  bool armed = false;
  size_t next = 0;  // the next bucket to start
  Report report;
  std::mutex mutex;  // autograd may run hooks on its device threads

  void start_ready_buckets() {
    while (next < buckets.size() && buckets[next].pending == 0) {
      buckets[next].work = world->all_reduce_async(buckets[next].flat);
      ++next;
    }
  }

  // Copies parameter i's gradient (zeros and a 0 indicator when it has none) into its bucket.
  void mark_ready(size_t i) {
    Slot& s = slots[i];
    Bucket& b = buckets[s.bucket];
    const at::Tensor& p = params[i];
    const at::Tensor& g = p.grad();
    at::Tensor dst = b.flat.narrow(0, s.offset, p.numel());
    if (g.defined()) {
      dst.view(g.sizes()).copy_(g);
    } else {
      dst.zero_();
    }
    b.flat.narrow(0, b.numel + static_cast<int64_t>(s.position), 1).fill_(g.defined() ? 1 : 0);
    s.ready = true;
    --b.pending;
  }

  void on_ready(size_t i) {
    std::lock_guard<std::mutex> lock(mutex);
    if (!armed) return;  // a micro-batch that only accumulates
    AHA_CHECK(!slots[i].ready, "gradient reducer: parameter ", i, " (shape ", params[i].sizes(),
              ") got its gradient twice in one armed backward pass; call finish() before the next backward");
    c10::NoGradGuard no_grad;
    mark_ready(i);
    start_ready_buckets();
  }

  void reset() {
    for (auto& s : slots)
      s.ready = false;
    for (auto& b : buckets) {
      b.pending = b.params.size();
      b.work.reset();
    }
    next = 0;
    armed = false;
  }
};

GradReducer::GradReducer(std::shared_ptr<World> world, std::vector<at::Tensor> params, int64_t bucket_bytes)
    : impl_(std::make_unique<Impl>()) {
  AHA_CHECK(world != nullptr, "gradient reducer: no World");
  AHA_CHECK(bucket_bytes > 0, "gradient reducer: bucket_bytes must be > 0, got ", bucket_bytes);
  Impl& m = *impl_;
  m.world = std::move(world);
  if (m.world->backend() == "none") return;  // one process: no hooks, no buffers
  m.params = std::move(params);
  m.slots.resize(m.params.size());
  const c10::Device comm = m.world->comm_device();
  // Reverse order; a new bucket where the dtype or device changes or the size would pass bucket_bytes.
  int64_t bytes = 0;
  for (size_t k = m.params.size(); k-- > 0;) {
    const at::Tensor& p = m.params[k];
    AHA_CHECK(p.defined() && p.requires_grad() && p.is_leaf(), "gradient reducer: parameter ", k,
              " must be a leaf tensor that requires a gradient");
    const int64_t b = p.numel() * static_cast<int64_t>(p.element_size());
    bool split = m.buckets.empty();
    if (!split) {
      const at::Tensor& first = m.params[m.buckets.back().params.front()];
      split =
          p.scalar_type() != first.scalar_type() || p.device() != first.device() || bytes + b > bucket_bytes;
    }
    if (split) {
      m.buckets.emplace_back();
      bytes = 0;
    }
    Impl::Bucket& bk = m.buckets.back();
    m.slots[k] = {m.buckets.size() - 1, bk.numel, bk.params.size(), false};
    bk.params.push_back(k);
    bk.numel += p.numel();
    bytes += b;
  }
  for (auto& bk : m.buckets) {
    const at::Tensor& first = m.params[bk.params.front()];
    bk.flat = at::empty({bk.numel + static_cast<int64_t>(bk.params.size())},
                        at::TensorOptions().dtype(first.scalar_type()).device(comm));
  }
  m.reset();
  // All checked before any is set: a constructor that throws must leave no hook behind.
  for (size_t k = 0; k < m.params.size(); ++k)
    AHA_CHECK(torch::autograd::impl::post_acc_grad_hooks(m.params[k]) == nullptr,
              "gradient reducer: parameter ", k,
              " already has a post-accumulation hook (another GradReducer on the same parameters?)");
  for (size_t k = 0; k < m.params.size(); ++k)
    torch::autograd::impl::set_post_acc_grad_hooks(
        m.params[k], std::make_unique<ReadyHook>([impl = impl_.get(), k] { impl->on_ready(k); }));
  m.hooked = true;
}

GradReducer::~GradReducer() {
  if (!impl_->hooked) return;
  for (auto& p : impl_->params)
    torch::autograd::impl::set_post_acc_grad_hooks(p, nullptr);
}

bool GradReducer::active() const {
  return impl_->hooked;
}

int64_t GradReducer::buckets() const {
  return static_cast<int64_t>(impl_->buckets.size());
}

void GradReducer::arm(const at::Tensor& loss) {
  if (!active()) return;
  Impl& m = *impl_;
  // The autograd nodes the backward pass from `loss` will run. A parameter whose gradient accumulator is not
  // among them gets nothing from it (an unused module, such as MTP heads in RL): its gradient is final now.
  std::unordered_set<const torch::autograd::Node*> reached;
  std::vector<const torch::autograd::Node*> todo;
  if (loss.defined() && loss.grad_fn()) todo.push_back(loss.grad_fn().get());
  while (!todo.empty()) {
    const torch::autograd::Node* n = todo.back();
    todo.pop_back();
    if (!reached.insert(n).second) continue;
    for (const auto& e : n->next_edges())
      if (e.function) todo.push_back(e.function.get());
  }
  c10::NoGradGuard no_grad;
  std::lock_guard<std::mutex> lock(m.mutex);
  AHA_CHECK(!m.armed && m.next == 0, "gradient reducer: arm() twice without finish()");
  m.armed = true;
  for (auto& b : m.buckets)
    for (size_t i : b.params) {
      const std::shared_ptr<torch::autograd::Node> acc =
          torch::autograd::impl::try_get_grad_accumulator(m.params[i]);
      if (!acc || !reached.count(acc.get())) m.mark_ready(i);
    }
  m.start_ready_buckets();
}

int64_t GradReducer::launched() const {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  return static_cast<int64_t>(impl_->next);
}

const GradReducer::Report& GradReducer::last() const {
  return impl_->report;
}

void GradReducer::finish() {
  if (!active()) return;
  Impl& m = *impl_;
  const auto t0 = std::chrono::steady_clock::now();
  c10::NoGradGuard no_grad;
  std::lock_guard<std::mutex> lock(m.mutex);
  m.report = Report{};
  m.report.buckets = static_cast<int64_t>(m.buckets.size());
  m.report.during_backward = static_cast<int64_t>(m.next);
  // Whatever the backward pass left, in bucket order, so that the collectives start in the same order here as
  // on a rank whose backward pass started more (or fewer) of them.
  try {
    for (auto& b : m.buckets)
      for (size_t i : b.params)
        if (!m.slots[i].ready) {
          m.mark_ready(i);
          m.start_ready_buckets();
        }
    std::vector<std::shared_ptr<World::Work>> works;
    for (auto& b : m.buckets)
      works.push_back(b.work);
    m.world->wait(works, "all_reduce (gradients)");
  } catch (...) {
    m.reset();
    throw;
  }
  for (auto& b : m.buckets) {
    const at::Tensor count =
        b.flat.narrow(0, b.numel, static_cast<int64_t>(b.params.size())).to(at::kCPU, at::kDouble);
    const double* c = count.data_ptr<double>();
    for (size_t j = 0; j < b.params.size(); ++j) {
      at::Tensor& p = m.params[b.params[j]];
      if (!(c[j] > 0)) continue;  // no rank had a gradient: it stays undefined
      const at::Tensor sum = b.flat.narrow(0, m.slots[b.params[j]].offset, p.numel()).view(p.sizes());
      if (p.grad().defined()) {
        p.mutable_grad().copy_(sum);
      } else {
        p.mutable_grad() = at::empty_like(p).copy_(sum);
      }
    }
  }
  m.reset();
  m.report.finish_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace aha::dist
