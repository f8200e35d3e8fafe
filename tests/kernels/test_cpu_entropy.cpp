#include "aha/kernels/cpu_entropy.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "aha/core/error.h"

namespace {

// The reference in double: -sum p log p with p = exp(lp).
at::Tensor reference(const at::Tensor& lp) {
  const at::Tensor d = lp.to(at::kDouble);
  return -(d.exp() * d).sum(-1);
}

class CpuEntropy : public ::testing::TestWithParam<int64_t> {};

TEST_P(CpuEntropy, EqualsTheDoubleReferenceOnSoftmaxesOfAnySharpness) {
  const int64_t v = GetParam();
  at::manual_seed(v);
  // Rows from nearly uniform to nearly one-hot (logit scales 0.01 to 30): entropies from log v to ~0.
  const at::Tensor scale = at::logspace(-2, std::log10(30.0), 12).view({12, 1});
  const at::Tensor lp = at::log_softmax(at::randn({3, 12, v}) * scale, -1);
  const at::Tensor got = aha::kernels::cpu_entropy(lp);
  ASSERT_EQ(got.sizes(), (std::vector<int64_t>{3, 12}));
  const at::Tensor want = reference(lp);
  const double log_v = std::log(static_cast<double>(v));
  EXPECT_LE((got.to(at::kDouble) - want).abs().max().item<double>(), 2e-6 * std::max(1.0, log_v));
  EXPECT_NEAR(got[0][0].item<double>(), log_v, 0.01);  // near uniform
  if (v > 1) {
    EXPECT_LT(got[0][11].item<double>(), log_v / 2);  // sharp
  }
}

INSTANTIATE_TEST_SUITE_P(Vocab, CpuEntropy, ::testing::Values(1, 5, 16, 100, 8192));

TEST(CpuEntropyEdges, MinusInfinityAddsNothingAndTheAtenExpressionAgreesElsewhere) {
  at::Tensor lp = at::log_softmax(at::randn({4, 40}), -1);
  const at::Tensor aten = -(lp.exp() * lp).sum(-1);
  EXPECT_LE((aha::kernels::cpu_entropy(lp) - aten).abs().max().item<double>(), 1e-5);
  // A row with one certain token and the rest impossible (a top-k-filtered distribution) has entropy 0.
  at::Tensor certain = at::full({1, 40}, -std::numeric_limits<float>::infinity());
  certain[0][7] = 0.0f;
  EXPECT_EQ(aha::kernels::cpu_entropy(certain).item<float>(), 0.0f);
  EXPECT_TRUE(std::isnan((-(certain.exp() * certain).sum(-1)).item<float>()));  // what it replaces
}

TEST(CpuEntropyEdges, SameResultWhateverTheThreadCountAndLayout) {
  const at::Tensor lp = at::log_softmax(at::randn({64, 333}), -1);
  const int threads = at::get_num_threads();
  at::set_num_threads(1);
  const at::Tensor one = aha::kernels::cpu_entropy(lp);
  at::set_num_threads(2);
  const at::Tensor two = aha::kernels::cpu_entropy(lp);
  at::set_num_threads(threads);
  EXPECT_TRUE(at::equal(one, two));
  // A transposed view is read as its values, not its memory.
  const at::Tensor t = lp.t().contiguous().t();
  EXPECT_TRUE(at::equal(aha::kernels::cpu_entropy(t), one));
}

TEST(CpuEntropyEdges, SupportedOnlyWithoutGradientOnCpuFloat) {
  const at::Tensor lp = at::log_softmax(at::randn({2, 8}), -1);
  EXPECT_TRUE(aha::kernels::cpu_entropy_supported(lp));
  EXPECT_FALSE(aha::kernels::cpu_entropy_supported(lp.to(at::kDouble)));
  EXPECT_FALSE(aha::kernels::cpu_entropy_supported(lp.clone().requires_grad_()));
  try {
    aha::kernels::cpu_entropy(lp.to(at::kDouble));
    FAIL() << "double accepted";
  } catch (const aha::Error& e) {
    EXPECT_NE(std::string(e.what()).find("float32"), std::string::npos) << e.what();
  }
}

}  // namespace
