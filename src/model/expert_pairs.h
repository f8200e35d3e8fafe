// The (token, slot) pairs of a routing sorted by expert, on the host: what the CPU experts kernels
// (cpu_decode.cpp, cpu_experts_grad.cpp) share. Private to src/model.
#pragma once

#include <ATen/Parallel.h>
#include <ATen/core/LegacyTypeDispatch.h>
#include <ATen/core/Tensor.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <vector>

namespace aha::model {

struct ExpertPairs {
  int64_t tokens = 0, k = 0;      // N tokens with K slots each: pair p = t K + s
  std::vector<int64_t> first;     // [E + 1]: expert e owns sorted positions [first[e], first[e + 1])
  std::vector<int64_t> counts;    // [E]: pairs per expert
  std::vector<int64_t> active;    // the experts with pairs, in expert order
  std::vector<int64_t> position;  // [N K]: sorted position of pair p
  std::vector<int64_t> token_at;  // [N K]: token of the pair at each sorted position
};

// The checks both CPU experts kernels make on their inputs (`who` names the caller in the errors): CPU
// float32 x [N, D], gate_up [E, 2 * Im, D], down [E, D, Im], experts int64 [N, K] and weights of its shape
// (CPU float32 too when `float_weights`).
void check_routed_experts_inputs(const char* who, const at::Tensor& x, const at::Tensor& experts,
                                 const at::Tensor& weights, const at::Tensor& gate_up, const at::Tensor& down,
                                 bool float_weights);

// Counting sort (stable: a token's pairs for one expert keep token order) of experts [N, K] (int64, any
// device) over `count` experts; `who` names the caller in the error for an id outside [0, count).
ExpertPairs sort_expert_pairs(const at::Tensor& experts, int64_t count, const char* who);

// f(e) for each expert e with pairs, on up to `threads` intra-op threads: largest first, each thread taking
// the next expert when it is done (a fixed split of the list can give one thread a few more tokens' work than
// the other). f runs below autograd: the workers do not inherit the caller's autograd state.
template <typename F>
void for_each_expert_largest_first(const ExpertPairs& s, int64_t threads, F&& f) {
  std::vector<int64_t> order = s.active;
  std::stable_sort(order.begin(), order.end(),
                   [&](int64_t a, int64_t b) { return s.counts[a] > s.counts[b]; });
  const auto n = static_cast<int64_t>(order.size());
  std::atomic<int64_t> next{0};
  at::parallel_for(0, std::min(threads, n), 1, [&](int64_t, int64_t) {
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    for (int64_t a = next++; a < n; a = next++)
      f(order[a]);
  });
}

}  // namespace aha::model
