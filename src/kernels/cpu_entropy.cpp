#include "aha/kernels/cpu_entropy.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/GradMode.h>

#include "aha/core/error.h"
#include "cpu_lanes.h"

namespace aha::kernels {
namespace {

// acc += e^x x, lane by lane, where x >= -87.
[[gnu::always_inline]] inline void add_terms(const Lanes& x, Lanes& acc) {
  Lanes p = x;
  exp_lanes(p);
  acc += x < -87.0f ? Lanes{} : p * x;
}

// -sum_i e^lp[i] lp[i] over one row of v log-probabilities.
AHA_CPU_CLONES float row_entropy(const float* lp, int64_t v) {
  Lanes acc{};
  int64_t i = 0;
  for (; i + kLanes <= v; i += kLanes) {
    Lanes x;
    AHA_LOAD_LANES(x, lp + i);
    add_terms(x, acc);
  }
  if (i < v) {
    Lanes x = Lanes{} - 100.0f;  // the tail's empty lanes: below the cut, adding nothing
    std::memcpy(&x, lp + i, static_cast<size_t>(v - i) * sizeof(float));
    add_terms(x, acc);
  }
  return -sum_lanes(acc);
}

}  // namespace

bool cpu_entropy_supported(const at::Tensor& log_probs) {
  return log_probs.defined() && log_probs.device().is_cpu() && log_probs.scalar_type() == at::kFloat &&
         log_probs.dim() >= 1 && !(log_probs.requires_grad() && c10::GradMode::is_enabled());
}

at::Tensor cpu_entropy(const at::Tensor& log_probs) {
  AHA_CHECK(cpu_entropy_supported(log_probs), "cpu_entropy: needs CPU float32 log-probabilities without a ",
            "gradient, got ", log_probs.toString(), " ", log_probs.sizes(),
            log_probs.requires_grad() ? " requiring grad" : "");
  const at::Tensor lp = log_probs.contiguous();
  const int64_t v = lp.size(-1), rows = v == 0 ? 0 : lp.numel() / v;
  at::Tensor out = at::empty(lp.sizes().slice(0, lp.dim() - 1), lp.options());
  const float* in = lp.data_ptr<float>();
  float* o = out.data_ptr<float>();
  at::parallel_for(0, rows, 16, [&](int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; ++r)
      o[r] = row_entropy(in + r * v, v);
  });
  if (v == 0) out.zero_();
  return out;
}

}  // namespace aha::kernels
