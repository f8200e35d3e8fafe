#include "aha/kernels/cpu_token_logprobs.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <tuple>

#include "aha/core/error.h"

namespace {

double max_abs(const at::Tensor& a, const at::Tensor& b) {
  return (a.to(at::kDouble) - b.to(at::kDouble)).abs().max().item<double>();
}

class CpuTokenLogprobs : public ::testing::TestWithParam<std::tuple<int64_t, double>> {};

// The reference: log_softmax in double with autograd, gather, entropy; the kernel's forward and its d logits
// for a weighted sum of the log-probabilities must match it.
TEST_P(CpuTokenLogprobs, ForwardAndGradientEqualTheDoubleLogSoftmax) {
  const auto [v, temperature] = GetParam();
  at::manual_seed(v);
  const at::Tensor base = at::randn({3, 7, v}) * at::linspace(0.1, 12.0, 7).view({1, 7, 1});
  const at::Tensor tokens = at::randint(v, {3, 7}, at::kLong);
  const at::Tensor weights = at::randn({3, 7});
  const double t = temperature > 0 ? temperature : 1.0;

  const at::Tensor ref_in = base.to(at::kDouble).requires_grad_();
  const at::Tensor ref_lp = at::log_softmax(ref_in / t, -1);
  const at::Tensor ref_logp = ref_lp.gather(-1, tokens.unsqueeze(-1)).squeeze(-1);
  const at::Tensor ref_entropy = -(ref_lp.exp() * ref_lp).sum(-1).detach();
  (ref_logp * weights.to(at::kDouble)).sum().backward();

  const at::Tensor in = base.clone().requires_grad_();
  const aha::kernels::TokenLogprobs got = aha::kernels::cpu_token_logprobs(in, tokens, temperature);
  ASSERT_EQ(got.logp.sizes(), tokens.sizes());
  ASSERT_EQ(got.entropy.sizes(), tokens.sizes());
  EXPECT_FALSE(got.entropy.requires_grad());
  (got.logp * weights).sum().backward();

  const double scale = std::max(1.0, std::log(static_cast<double>(v)));
  EXPECT_LE(max_abs(got.logp, ref_logp.detach()), 2e-6 * scale * std::max(1.0, 12.0 / t));
  EXPECT_LE(max_abs(got.entropy, ref_entropy), 2e-6 * scale);
  EXPECT_LE(max_abs(in.grad(), ref_in.grad()), 1e-6 * std::max(1.0, 1.0 / t) * 3);
}

INSTANTIATE_TEST_SUITE_P(VocabTemperature, CpuTokenLogprobs,
                         ::testing::Combine(::testing::Values(1, 5, 16, 100, 8192),
                                            ::testing::Values(1.0, 0.7, 0.0)));

TEST(CpuTokenLogprobsEdges, RowsWithoutGradientGetZerosAndImpossibleTokensNone) {
  at::Tensor logits = at::randn({2, 40});
  logits[1].fill_(-std::numeric_limits<float>::infinity());
  logits[1][3] = 2.0f;  // a certain token: the other 39 impossible
  const at::Tensor in = logits.clone().requires_grad_();
  const at::Tensor tokens = at::tensor({5, 3}, at::kLong);
  const auto got = aha::kernels::cpu_token_logprobs(in, tokens, 1.0);
  EXPECT_EQ(got.logp[1].item<float>(), 0.0f);
  EXPECT_EQ(got.entropy[1].item<float>(), 0.0f);
  (got.logp * at::tensor({0.0f, 1.0f})).sum().backward();
  EXPECT_TRUE(at::equal(in.grad()[0], at::zeros({40})));    // a masked position
  EXPECT_EQ(in.grad()[1].abs().sum().item<float>(), 0.0f);  // d log 1 = 0
}

TEST(CpuTokenLogprobsEdges, SameResultWhateverTheThreadCount) {
  const at::Tensor logits = at::randn({64, 333});
  const at::Tensor tokens = at::randint(333, {64}, at::kLong);
  const auto run = [&] {
    const at::Tensor in = logits.clone().requires_grad_();
    const auto out = aha::kernels::cpu_token_logprobs(in, tokens, 0.9);
    out.logp.sum().backward();
    return std::make_tuple(out.logp.detach(), out.entropy, in.grad());
  };
  const int threads = at::get_num_threads();
  at::set_num_threads(1);
  const auto one = run();
  at::set_num_threads(2);
  const auto two = run();
  at::set_num_threads(threads);
  EXPECT_TRUE(at::equal(std::get<0>(one), std::get<0>(two)));
  EXPECT_TRUE(at::equal(std::get<1>(one), std::get<1>(two)));
  EXPECT_TRUE(at::equal(std::get<2>(one), std::get<2>(two)));
}

TEST(CpuTokenLogprobsEdges, ErrorsNameTheToken) {
  const at::Tensor logits = at::randn({2, 10});
  try {
    aha::kernels::cpu_token_logprobs(logits, at::tensor({3, 10}, at::kLong), 1.0);
    FAIL() << "token 10 accepted";
  } catch (const aha::Error& e) {
    EXPECT_NE(std::string(e.what()).find("token 10 outside the vocabulary [0, 10)"), std::string::npos)
        << e.what();
  }
  EXPECT_FALSE(
      aha::kernels::cpu_token_logprobs_supported(logits.to(at::kDouble), at::tensor({1, 2}, at::kLong)));
  EXPECT_FALSE(aha::kernels::cpu_token_logprobs_supported(logits, at::tensor({1, 2, 3}, at::kLong)));
}

}  // namespace
