// CPU references of kernels/fp8.cuh: the quantisation rules every FP8 path in aha follows, written as plain
// loops so that the device kernels and the torch-facing CPU path can be checked against them.
#include <algorithm>
#include <bit>
#include <cmath>
#include <vector>

#include "fp8.cuh"

namespace aha::kernels {

uint8_t e4m3_from_float(float x) {
  const uint32_t bits = std::bit_cast<uint32_t>(x);
  const uint8_t sign = static_cast<uint8_t>((bits >> 24) & 0x80u);
  if (std::isnan(x)) return sign | 0x7f;
  float a = std::fabs(x);
  if (a >= kE4m3Max) return sign | 0x7e;  // saturate (448 = 1.75 * 2^8)
  if (a < 0.015625f) {
    // Subnormal range (below 2^-6): multiples of 2^-9; a count of 8 is the smallest normal, encoded 0x08.
    return sign | static_cast<uint8_t>(std::nearbyint(a * 512.0f));
  }
  // Normal: keep 3 mantissa bits, rounding at bit 20 of the fp32 mantissa to nearest even.
  uint32_t u = std::bit_cast<uint32_t>(a);
  u += 0x7ffffu + ((u >> 20) & 1u);
  const int exponent = static_cast<int>(u >> 23) - 127 + 7;
  const uint32_t mantissa = (u >> 20) & 7u;
  if (exponent > 15 || (exponent == 15 && mantissa == 7)) return sign | 0x7e;
  return sign | static_cast<uint8_t>((exponent << 3) | mantissa);
}

float e4m3_to_float(uint8_t bits) {
  const int exponent = (bits >> 3) & 15, mantissa = bits & 7;
  float v;
  if (exponent == 15 && mantissa == 7)
    v = NAN;
  else if (exponent == 0)
    v = std::ldexp(static_cast<float>(mantissa), -9);
  else
    v = std::ldexp(1.0f + static_cast<float>(mantissa) / 8.0f, exponent - 7);
  return (bits & 0x80) ? -v : v;
}

float fp8_group_scale(float amax, bool ue8m0) {
  float s = std::max(amax, kFp8MinAmax) / kE4m3Max;
  if (ue8m0) {
    // 2^ceil(log2 s) on the bits: a normal float with a non-zero mantissa goes up to the next power of two.
    uint32_t u = std::bit_cast<uint32_t>(s);
    if (u & 0x7fffffu) u = (u & 0xff800000u) + 0x800000u;
    s = std::bit_cast<float>(u & 0xff800000u);
  }
  return s;
}

void fp8_quantize_rows_ref(const float* x, int64_t rows, int64_t cols, bool ue8m0, uint8_t* q, float* s) {
  const int64_t groups = (cols + kFp8Group - 1) / kFp8Group;
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t g = 0; g < groups; ++g) {
      const int64_t begin = g * kFp8Group, end = std::min(cols, begin + kFp8Group);
      float amax = 0;
      for (int64_t c = begin; c < end; ++c)
        amax = std::max(amax, std::fabs(x[r * cols + c]));
      const float scale = fp8_group_scale(amax, ue8m0);
      s[r * groups + g] = scale;
      for (int64_t c = begin; c < end; ++c)
        q[r * cols + c] = e4m3_from_float(x[r * cols + c] / scale);
    }
  }
}

void fp8_quantize_rows_transposed_ref(const float* x, int64_t rows, int64_t cols, bool ue8m0, uint8_t* q,
                                      float* s) {
  std::vector<float> xt(static_cast<size_t>(rows * cols));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c)
      xt[c * rows + r] = x[r * cols + c];
  fp8_quantize_rows_ref(xt.data(), cols, rows, ue8m0, q, s);
}

void fp8_quantize_blocks_ref(const float* w, int64_t rows, int64_t cols, bool ue8m0, uint8_t* q, float* s) {
  const int64_t br = (rows + kFp8Group - 1) / kFp8Group, bc = (cols + kFp8Group - 1) / kFp8Group;
  for (int64_t i = 0; i < br; ++i) {
    for (int64_t j = 0; j < bc; ++j) {
      const int64_t r0 = i * kFp8Group, r1 = std::min(rows, r0 + kFp8Group);
      const int64_t c0 = j * kFp8Group, c1 = std::min(cols, c0 + kFp8Group);
      float amax = 0;
      for (int64_t r = r0; r < r1; ++r)
        for (int64_t c = c0; c < c1; ++c)
          amax = std::max(amax, std::fabs(w[r * cols + c]));
      const float scale = fp8_group_scale(amax, ue8m0);
      s[i * bc + j] = scale;
      for (int64_t r = r0; r < r1; ++r)
        for (int64_t c = c0; c < c1; ++c)
          q[r * cols + c] = e4m3_from_float(w[r * cols + c] / scale);
    }
  }
}

void fp8_gemm_nt_ref(const uint8_t* a, const float* sa, const uint8_t* b, const float* sb, int64_t m,
                     int64_t n, int64_t k, int b_block_rows, float* c) {
  float table[256];
  for (int i = 0; i < 256; ++i)
    table[i] = e4m3_to_float(static_cast<uint8_t>(i));
  const int64_t kb_count = (k + kFp8Group - 1) / kFp8Group;
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j = 0; j < n; ++j) {
      float acc = 0;
      for (int64_t kb = 0; kb < kb_count; ++kb) {
        const int64_t k0 = kb * kFp8Group, k1 = std::min(k, k0 + kFp8Group);
        float partial = 0;
        for (int64_t t = k0; t < k1; ++t)
          partial += table[a[i * k + t]] * table[b[j * k + t]];
        acc += partial * sa[i * kb_count + kb] * sb[(j / b_block_rows) * kb_count + kb];
      }
      c[i * n + j] = acc;
    }
  }
}

}  // namespace aha::kernels
