// Portable SIMD for the CPU kernels (cpu_decode, cpu_entropy): 16-float vectors as GCC vector extensions,
// compiled for AVX-512, AVX2 and the baseline and chosen at load time. No torch headers.
#pragma once

#include <cstdint>
#include <cstring>

namespace aha::kernels {

// A function so marked is compiled for AVX-512, AVX2 and the baseline, chosen at load time (GCC function
// multi-versioning); elsewhere it is compiled once for the target.
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define AHA_CPU_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define AHA_CPU_CLONES
#endif

// 16 independent partial sums per reduction: the loop vectorises without reassociating any one sum, and the
// lanes are added in a fixed order, so the result does not depend on the instruction set's width.
constexpr int64_t kLanes = 16;
typedef float Lanes __attribute__((vector_size(kLanes * sizeof(float))));
typedef int32_t IntLanes __attribute__((vector_size(kLanes * sizeof(int32_t))));

#define AHA_LOAD_LANES(dst, src) std::memcpy(&(dst), (src), sizeof(Lanes))

// x = e^x on the lanes (Cephes' expf: x = n ln 2 + r, a polynomial in r, 2^n from the exponent bits), within
// 1 ulp of e^x for x in [-87, 88]; below that it gives e^-87 (~1.6e-38), above it e^88. Inlined into its
// callers' clones (vectors by reference: no ABI change between them).
[[gnu::always_inline]] inline void exp_lanes(Lanes& x) {
  x = x < -87.0f ? Lanes{} - 87.0f : x;
  x = x > 88.0f ? Lanes{} + 88.0f : x;
  constexpr float kRound = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer
  const Lanes n = (x * 1.44269504088896341f + kRound) - kRound;
  const Lanes r = x - n * 0.693359375f + n * 2.12194440e-4f;
  Lanes p = Lanes{} + 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const IntLanes bits = (__builtin_convertvector(n, IntLanes) + 127) << 23;
  Lanes scale;
  std::memcpy(&scale, &bits, sizeof(Lanes));
  x = p * scale;
}

// The lanes added in a fixed order.
[[gnu::always_inline]] inline float sum_lanes(const Lanes& x) {
  float s = 0;
  for (int l = 0; l < kLanes; ++l)
    s += x[l];
  return s;
}

}  // namespace aha::kernels
