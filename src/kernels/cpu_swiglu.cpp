#include "cpu_swiglu.h"

#include <cstring>

#include "cpu_lanes.h"

namespace aha::kernels {
namespace {

// e = 1 + e^-g on the lanes (vectors by reference, like cpu_lanes.h: no ABI change between the clones).
[[gnu::always_inline]] inline void one_plus_exp_neg(const Lanes& g, Lanes& e) {
  e = -g;
  exp_lanes(e);
  e = 1.0f + e;
}

// v = the n < kLanes floats at p, zeros after them.
[[gnu::always_inline]] inline void load_tail(const float* p, int64_t n, Lanes& v) {
  v = Lanes{};
  std::memcpy(&v, p, static_cast<size_t>(n) * sizeof(float));
}

[[gnu::always_inline]] inline void silu_mul_lanes(const Lanes& g, const Lanes& u, Lanes& h) {
  one_plus_exp_neg(g, h);
  h = g / h * u;
}

[[gnu::always_inline]] inline void silu_mul_backward_lanes(const Lanes& g, const Lanes& u, const Lanes& dh,
                                                           Lanes& dg, Lanes& du) {
  Lanes s;
  one_plus_exp_neg(g, s);
  s = 1.0f / s;
  du = dh * (g * s);
  dg = dh * u * s * (1.0f + g * (1.0f - s));
}

}  // namespace

AHA_CPU_CLONES void silu_mul(const float* g, const float* u, float* h, int64_t n) {
  int64_t j = 0;
  Lanes gv, uv, hv;
  for (; j + kLanes <= n; j += kLanes) {
    AHA_LOAD_LANES(gv, g + j);
    AHA_LOAD_LANES(uv, u + j);
    silu_mul_lanes(gv, uv, hv);
    std::memcpy(h + j, &hv, sizeof(Lanes));
  }
  if (j == n) return;
  load_tail(g + j, n - j, gv);
  load_tail(u + j, n - j, uv);
  silu_mul_lanes(gv, uv, hv);
  std::memcpy(h + j, &hv, static_cast<size_t>(n - j) * sizeof(float));
}

AHA_CPU_CLONES void silu_mul_backward(const float* g, const float* u, const float* dh, float* dg, float* du,
                                      int64_t n) {
  int64_t j = 0;
  Lanes gv, uv, dv, dgv, duv;
  for (; j + kLanes <= n; j += kLanes) {
    AHA_LOAD_LANES(gv, g + j);
    AHA_LOAD_LANES(uv, u + j);
    AHA_LOAD_LANES(dv, dh + j);
    silu_mul_backward_lanes(gv, uv, dv, dgv, duv);
    std::memcpy(dg + j, &dgv, sizeof(Lanes));
    std::memcpy(du + j, &duv, sizeof(Lanes));
  }
  if (j == n) return;
  load_tail(g + j, n - j, gv);
  load_tail(u + j, n - j, uv);
  load_tail(dh + j, n - j, dv);
  silu_mul_backward_lanes(gv, uv, dv, dgv, duv);
  std::memcpy(dg + j, &dgv, static_cast<size_t>(n - j) * sizeof(float));
  std::memcpy(du + j, &duv, static_cast<size_t>(n - j) * sizeof(float));
}

}  // namespace aha::kernels
