// Shared helpers of the FP8 model tests (FP8 linear layers and experts): inputs over several binades and the
// check of a result against its exact value and the E4M3 error bound (../kernels/test_fp8_bound.h).
#pragma once

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

namespace aha::test {

inline at::Tensor bits(const at::Tensor& e4m3) {
  return e4m3.view(at::kByte);
}

// Values over several binades (the groups' scales then differ), as activations and gradients have them.
inline at::Tensor spread(std::vector<int64_t> shape, uint64_t seed) {
  at::manual_seed(seed);
  const at::Tensor x = at::randn(shape);
  return x * at::exp2(at::randint(-4, 4, shape).to(at::kFloat));
}

inline void expect_within_bound(const at::Tensor& got, const at::Tensor& exact, const at::Tensor& bound,
                                const std::string& what) {
  const at::Tensor err = (got.to(at::kFloat) - exact).abs();
  EXPECT_TRUE((err <= bound).all().item<bool>())
      << what << ": worst err/bound " << (err / bound).max().item<float>();
  const double rel = (err.norm() / exact.norm()).item<double>();
  EXPECT_GT(rel, 1e-3) << what << " is not computed in FP8";
  EXPECT_LT(rel, 0.06) << what;
}

}  // namespace aha::test
