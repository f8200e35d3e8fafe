#include "aha/dist/expert_comm.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>
#include <torch/csrc/autograd/function.h>

#include <chrono>

#include "aha/dist/process_group.h"

namespace aha::dist {

namespace {

using Clock = std::chrono::steady_clock;

// Times one collective into the comm's counters.
template <class F>
auto timed(double& seconds, int64_t& count, F&& f) {
  const auto t0 = Clock::now();
  auto out = f();
  seconds += std::chrono::duration<double>(Clock::now() - t0).count();
  ++count;
  return out;
}

// Backward of an exchange: the gradients of the received rows go back to where the rows came from.
struct ExchangeBackward : torch::autograd::Node {
  std::shared_ptr<World> group;
  std::vector<int64_t> send, recv;  // of the forward exchange
  std::vector<int64_t> received_shape;
  at::TensorOptions options;
  std::shared_ptr<double> seconds;
  std::shared_ptr<int64_t> count;

  std::string name() const override { return "aha::dist::ExchangeBackward"; }

  torch::autograd::variable_list apply(torch::autograd::variable_list&& grads) override {
    // No gradient reached the received rows (they did not matter for the loss): zeros, still exchanged.
    const at::Tensor g = grads[0].defined() ? grads[0] : at::zeros(received_shape, options);
    return {timed(*seconds, *count, [&] { return group->all_to_all(g, recv, send); })};
  }
};

}  // namespace

GroupExpertComm::GroupExpertComm(std::shared_ptr<World> group) : group_(std::move(group)) {}

int64_t GroupExpertComm::size() const {
  return group_->size();
}

int64_t GroupExpertComm::rank() const {
  return group_->rank();
}

at::Tensor GroupExpertComm::exchange(const at::Tensor& x, const std::vector<int64_t>& send,
                                     const std::vector<int64_t>& recv) {
  at::Tensor out = timed(*seconds_, *exchanges_, [&] { return group_->all_to_all(x.detach(), send, recv); });
  if (!at::GradMode::is_enabled()) return out;
  auto node = std::shared_ptr<ExchangeBackward>(new ExchangeBackward(), torch::autograd::deleteNode);
  node->group = group_;
  node->send = send;
  node->recv = recv;
  node->received_shape = out.sizes().vec();
  node->options = out.options();
  node->seconds = seconds_;
  node->count = exchanges_;
  node->set_next_edges(torch::autograd::collect_next_edges(x));
  torch::autograd::create_gradient_edge(out, node);
  return out;
}

std::vector<int64_t> GroupExpertComm::exchange_counts(const std::vector<int64_t>& counts) {
  const int64_t n = group_->size();
  const auto k = static_cast<int64_t>(counts.size()) / n;
  const std::vector<int64_t> each(static_cast<size_t>(n), k);
  const at::Tensor got = timed(*seconds_, *exchanges_, [&] {
    c10::NoGradGuard no_grad;
    return group_->all_to_all(at::tensor(counts, at::kLong).view({n * k, 1}), each, each);
  });
  const at::Tensor flat = got.reshape({-1}).contiguous();
  return std::vector<int64_t>(flat.data_ptr<int64_t>(), flat.data_ptr<int64_t>() + flat.numel());
}

}  // namespace aha::dist
