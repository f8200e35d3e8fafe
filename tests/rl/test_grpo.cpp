// GRPO advantages and losses against values derived by hand, a finite-difference gradient check, and the
// micro-batch identity (accumulated micro-batch gradients equal the full batch's gradient).
#include "aha/rl/grpo.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/autograd.h>

#include <cmath>

#include "../support/error_of.h"

namespace aha::rl {
namespace {

at::Tensor vec(std::vector<double> v) {
  return at::tensor(v, at::kDouble);
}

void expect_near(const at::Tensor& got, std::vector<double> want, double tol = 1e-6) {
  ASSERT_EQ(got.numel(), static_cast<int64_t>(want.size()));
  at::Tensor g = got.to(at::kDouble).flatten();
  for (size_t i = 0; i < want.size(); ++i)
    EXPECT_NEAR(g[static_cast<int64_t>(i)].item<double>(), want[i], tol) << "at " << i;
}

TEST(GrpoAdvantage, GroupMeanAndBesselStd) {
  // Group 1: mean 0.5, sample std sqrt(1/3); group 2 all equal: zero advantages.
  at::Tensor a = compute_advantages(vec({1, 0, 0, 1, 0, 0, 0, 0}), {}, 4, Advantage::grpo, 1e-4);
  const double s = 0.5 / (std::sqrt(1.0 / 3.0) + 1e-4);
  expect_near(a, {s, -s, -s, s, 0, 0, 0, 0});
}

TEST(GrpoAdvantage, DrGrpoHasNoStd) {
  at::Tensor a = compute_advantages(vec({2, 0, 1, 3}), {}, 2, Advantage::dr_grpo, 1e-4);
  expect_near(a, {1, -1, -1, 1});
}

TEST(GrpoAdvantage, BatchStdScaling) {
  // Batch of 8: mean 0.25, variance (2 * 0.5625 + 6 * 0.0625) / 7.
  at::Tensor a = compute_advantages(vec({1, 0, 0, 1, 0, 0, 0, 0}), {}, 4, Advantage::batch_std, 0);
  const double s = 0.5 / std::sqrt(1.5 / 7);
  expect_near(a, {s, -s, -s, s, 0, 0, 0, 0});
}

TEST(GrpoAdvantage, RlooLeavesOneOut) {
  at::Tensor a = compute_advantages(vec({1, 0, 0, 1, 3, 1, 2, 2}), {}, 4, Advantage::rloo, 0);
  expect_near(a, {1 - 1.0 / 3, -2.0 / 3, -2.0 / 3, 1 - 1.0 / 3, 3 - 5.0 / 3, 1 - 7.0 / 3, 2 - 2, 2 - 2});
}

TEST(GrpoAdvantage, SkippedSamplesAreLeftOut) {
  // Valid rewards 1, 0, 0: mean 1/3, sample std sqrt(1/3); the skipped one gets 0 (its reward is ignored).
  at::Tensor valid = at::tensor(std::vector<int64_t>{1, 1, 0, 1}).to(at::kBool);
  at::Tensor a = compute_advantages(vec({1, 0, 100, 0}), valid, 4, Advantage::grpo, 0);
  const double s = std::sqrt(1.0 / 3);
  expect_near(a, {(2.0 / 3) / s, (-1.0 / 3) / s, 0, (-1.0 / 3) / s}, 1e-5);
  // A group with a single valid reward has no signal.
  at::Tensor one = at::tensor(std::vector<int64_t>{0, 1, 0, 0}).to(at::kBool);
  expect_near(compute_advantages(vec({5, 1, 2, 3}), one, 4, Advantage::rloo, 0), {0, 0, 0, 0});
  expect_near(compute_advantages(vec({5, 1, 2, 3}), one, 4, Advantage::grpo, 1e-4), {0, 0, 0, 0});
}

TEST(GrpoAdvantage, ZeroVarianceGroups) {
  at::Tensor z =
      zero_variance_groups(vec({1, 1, 1, 0, 2, 2, 5, 5}),
                           at::tensor(std::vector<int64_t>{1, 1, 1, 1, 1, 1, 0, 1}).to(at::kBool), 2);
  EXPECT_EQ(z[0].item<bool>(), true);
  EXPECT_EQ(z[1].item<bool>(), false);
  EXPECT_EQ(z[2].item<bool>(), true);
  EXPECT_EQ(z[3].item<bool>(), true);  // one valid reward
}

TEST(GrpoAdvantage, BadShapesAreErrors) {
  EXPECT_NE(test::error_of([] {
              compute_advantages(vec({1, 2, 3}), {}, 2, Advantage::grpo, 1e-4);
            }).find("not a multiple of the group size 2"),
            std::string::npos);
  EXPECT_NE(test::error_of([] { parse_aggregation("token_mean"); }).find("seq-mean-token-mean"),
            std::string::npos);
}

TEST(GrpoKl, Estimators) {
  at::Tensor logp = vec({-1.0, -2.0});
  at::Tensor ref = vec({-1.5, -1.0});  // d = -0.5, 1.0
  expect_near(kl_penalty(logp, ref, KlEstimator::k1), {0.5, -1.0});
  expect_near(kl_penalty(logp, ref, KlEstimator::k2), {0.125, 0.5});
  expect_near(kl_penalty(logp, ref, KlEstimator::k3), {std::exp(-0.5) + 0.5 - 1, std::exp(1.0) - 2});
  // Clamped as verl does: d to +-20, k3 to 10.
  expect_near(kl_penalty(vec({0.0}), vec({100.0}), KlEstimator::k3), {10});
  expect_near(kl_penalty(vec({0.0}), vec({-100.0}), KlEstimator::k1), {20});
}

// One sequence of 4 tokens with hand-picked ratios.
LossInput one_sequence(double advantage, std::vector<double> log_ratios) {
  LossInput in;
  const auto t = static_cast<int64_t>(log_ratios.size());
  in.old_logp = at::full({1, t}, -1.0, at::kDouble);
  in.logp = (in.old_logp + vec(log_ratios).view({1, t})).requires_grad_(true);
  in.advantages = vec({advantage});
  in.mask = at::ones({1, t}, at::kDouble);
  return in;
}

TEST(GrpoLoss, ClipHigherAndClipLowByHand) {
  const std::vector<double> lr = {std::log(0.5), std::log(0.9), std::log(1.1), std::log(1.5)};
  LossOptions o;  // eps_low 0.2, eps_high 0.28, token-mean
  LossDenominators den{.tokens = 4};
  // A = +1: -min(r, clip(r)) per token = -(0.5, 0.9, 1.1, 1.28).
  LossOutput pos = policy_loss(one_sequence(1, lr), o, den);
  EXPECT_NEAR(pos.loss.item<double>(), -(0.5 + 0.9 + 1.1 + 1.28) / 4, 1e-12);
  EXPECT_EQ(pos.stats.clipped_high, 1);
  EXPECT_EQ(pos.stats.clipped_low, 0);
  // A = -1: max(r, clip(r)) = (0.8, 0.9, 1.1, 1.5).
  LossOutput neg = policy_loss(one_sequence(-1, lr), o, den);
  EXPECT_NEAR(neg.loss.item<double>(), (0.8 + 0.9 + 1.1 + 1.5) / 4, 1e-12);
  EXPECT_EQ(neg.stats.clipped_low, 1);
  EXPECT_EQ(neg.stats.clipped_high, 0);
  EXPECT_NEAR(neg.stats.ratio, 0.5 + 0.9 + 1.1 + 1.5, 1e-12);
  // The gradient flows only where the clip does not bind: d/dlogp of -A r is -A r.
  pos.loss.backward();
  LossInput again = one_sequence(1, lr);
  policy_loss(again, o, den).loss.backward();
  expect_near(again.logp.grad(), {-0.5 / 4, -0.9 / 4, -1.1 / 4, 0}, 1e-12);
}

TEST(GrpoLoss, DualClipCapsNegativeAdvantages) {
  LossOptions o;
  o.dual_clip = 3;
  LossDenominators den{.tokens = 2};
  // A = -2, ratios 5 and 1: max(-A r, -A clip r) = 10 (capped at -A c = 6) and 2.
  LossOutput out = policy_loss(one_sequence(-2, {std::log(5.0), 0.0}), o, den);
  EXPECT_NEAR(out.loss.item<double>(), (6 + 2) / 2.0, 1e-12);
  EXPECT_EQ(out.stats.dual_clipped, 1);
  // Positive advantages are untouched by the dual clip: min(5, 1.28) * 2 = 2.56.
  LossOutput pos = policy_loss(one_sequence(2, {std::log(5.0), 0.0}), o, den);
  EXPECT_NEAR(pos.loss.item<double>(), -(2.56 + 2) / 2.0, 1e-12);
}

TEST(GrpoLoss, KlTermAddsBetaTimesEstimate) {
  LossOptions o;
  o.beta = 0.1;
  o.kl = KlEstimator::k2;
  LossInput in = one_sequence(0, {0.0, 0.0});
  in.ref_logp = in.old_logp + vec({1.0, -2.0}).view({1, 2});  // d = 1, -2: k2 = 0.5, 2
  LossOutput out = policy_loss(in, o, {.tokens = 2});
  EXPECT_NEAR(out.loss.item<double>(), 0.1 * (0.5 + 2) / 2, 1e-12);
  EXPECT_NEAR(out.stats.kl, 2.5, 1e-12);
  LossOptions no_ref;  // beta = 0: the reference is never looked at
  in.ref_logp = at::Tensor();
  EXPECT_NEAR(policy_loss(in, no_ref, {.tokens = 2}).loss.item<double>(), 0, 1e-12);
}

// Two sequences of lengths 3 and 1 (padded to 3), all ratios 1, advantages 1 and -2: l = -A per token.
LossInput two_sequences() {
  LossInput in;
  in.old_logp = at::full({2, 3}, -1.0, at::kDouble);
  in.logp = in.old_logp.clone().requires_grad_(true);
  in.advantages = vec({1, -2});
  in.mask = vec({1, 1, 1, 1, 0, 0}).view({2, 3});
  return in;
}

TEST(GrpoLoss, EntropyBonusIsSubtractedAndAggregatedLikeTheLoss) {
  // Token losses -1, -1, -1 and 2 (see above); entropies 0.5, 1, 1.5 and 2 (the padded ones must not count).
  LossOptions o;
  o.entropy_coef = 0.1;
  LossDenominators den{.tokens = 4, .sequences = 2, .max_length = 8};
  LossInput in = two_sequences();
  at::Tensor e = vec({0.5, 1, 1.5, 2, 7, 7}).view({2, 3}).requires_grad_(true);
  in.entropy = e;
  at::Tensor loss = policy_loss(in, o, den).loss;
  EXPECT_NEAR(loss.item<double>(), (-3 + 2) / 4.0 - 0.1 * (0.5 + 1 + 1.5 + 2) / 4.0, 1e-12);
  loss.backward();
  expect_near(e.grad(), {-0.025, -0.025, -0.025, -0.025, 0, 0}, 1e-12);
  o.aggregation = Aggregation::seq_mean_token_mean;
  in.entropy = e.detach();
  EXPECT_NEAR(policy_loss(in, o, den).loss.item<double>(), (-1 + 2) / 2.0 - 0.1 * (1.0 + 2.0) / 2.0, 1e-12);
  // A bonus without entropies is an error; coefficient 0 never looks at them.
  in.entropy = at::Tensor();
  EXPECT_NE(test::error_of([&] { policy_loss(in, o, den); }).find("entropy"), std::string::npos);
  o.entropy_coef = 0;
  EXPECT_NEAR(policy_loss(in, o, den).loss.item<double>(), (-1 + 2) / 2.0, 1e-12);
}

TEST(GrpoLogprobs, EntropyGradientIsMinusPTimesLogPPlusH) {
  // dH/dz_i = -p_i (log p_i + H) at temperature 1; at temperature T the logits are divided by T first.
  at::Tensor z = vec({0.3, -1.2, 2.0, 0.7}).view({1, 1, 4}).to(at::kFloat).requires_grad_(true);
  for (double T : {1.0, 0.5}) {
    if (z.grad().defined()) z.grad().zero_();
    at::Tensor h = token_entropy(z, T, true);
    ASSERT_TRUE(h.requires_grad());
    h.sum().backward();
    at::Tensor logp = at::log_softmax(z.detach().to(at::kDouble) / T, -1);
    at::Tensor H = -(logp.exp() * logp).sum();
    at::Tensor want = -logp.exp() * (logp + H) / T;
    EXPECT_NEAR(h.item<double>(), H.item<double>(), 1e-6);
    expect_near(z.grad(), std::vector<double>(want.data_ptr<double>(), want.data_ptr<double>() + 4), 1e-6);
  }
  EXPECT_FALSE(token_entropy(z, 1).requires_grad());
}

TEST(GrpoLoss, AggregationsByHand) {
  LossOptions o;
  LossDenominators den{.tokens = 4, .sequences = 2, .max_length = 8};
  // Token losses: -1, -1, -1 and 2.
  o.aggregation = Aggregation::token_mean;
  EXPECT_NEAR(policy_loss(two_sequences(), o, den).loss.item<double>(), (-3 + 2) / 4.0, 1e-12);
  o.aggregation = Aggregation::seq_mean_token_mean;
  EXPECT_NEAR(policy_loss(two_sequences(), o, den).loss.item<double>(), (-1 + 2) / 2.0, 1e-12);
  o.aggregation = Aggregation::seq_mean_token_sum_norm;
  EXPECT_NEAR(policy_loss(two_sequences(), o, den).loss.item<double>(), (-3 + 2) / (2.0 * 8), 1e-12);
  o.aggregation = Aggregation::seq_mean_token_sum;
  EXPECT_NEAR(policy_loss(two_sequences(), o, den).loss.item<double>(), (-3 + 2) / 2.0, 1e-12);
}

TEST(GrpoLoss, SequenceRatioIsTheGeometricMean) {
  LossOptions o;
  o.ratio = RatioLevel::sequence;
  o.aggregation = Aggregation::seq_mean_token_mean;
  // log ratios 0.1, 0.3 (mean 0.2) in a sequence with A = 1: loss -exp(0.2) (inside the clip range).
  LossOutput out = policy_loss(one_sequence(1, {0.1, 0.3}), o, {.tokens = 2, .sequences = 1});
  EXPECT_NEAR(out.loss.item<double>(), -std::exp(0.2), 1e-12);
  // GSPO's tight clip: eps 3e-4 / 4e-4 clips s = exp(0.2) to 1.0004 for A > 0.
  o.epsilon_low = 3e-4;
  o.epsilon_high = 4e-4;
  EXPECT_NEAR(policy_loss(one_sequence(1, {0.1, 0.3}), o, {.tokens = 2, .sequences = 1}).loss.item<double>(),
              -1.0004, 1e-12);
}

// Finite differences of the full loss (clip, dual clip, KL, every aggregation) in float64.
TEST(GrpoLoss, GradientMatchesFiniteDifferences) {
  at::manual_seed(3);
  for (Aggregation agg : {Aggregation::token_mean, Aggregation::seq_mean_token_mean,
                          Aggregation::seq_mean_token_sum_norm, Aggregation::seq_mean_token_sum}) {
    for (RatioLevel level : {RatioLevel::token, RatioLevel::sequence}) {
      LossOptions o;
      o.aggregation = agg;
      o.ratio = level;
      o.dual_clip = 3;
      o.beta = 0.05;
      LossInput in;
      in.old_logp = -at::rand({3, 5}, at::kDouble) * 3;
      at::Tensor x = (in.old_logp + 0.3 * at::randn({3, 5}, at::kDouble)).requires_grad_(true);
      in.logp = x;
      in.ref_logp = in.old_logp + 0.2 * at::randn({3, 5}, at::kDouble);
      in.advantages = vec({1.5, -0.7, -2});
      in.mask = vec({1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 1, 1, 1, 1, 0}).view({3, 5});
      LossDenominators den{.tokens = 12, .sequences = 3, .max_length = 5};
      policy_loss(in, o, den).loss.backward();
      at::Tensor grad = x.grad().clone();
      const double h = 1e-6;
      for (int64_t i = 0; i < x.numel(); ++i) {
        at::Tensor plus = x.detach().clone(), minus = x.detach().clone();
        plus.view(-1)[i] += h;
        minus.view(-1)[i] -= h;
        in.logp = plus;
        const double fp = policy_loss(in, o, den).loss.item<double>();
        in.logp = minus;
        const double fm = policy_loss(in, o, den).loss.item<double>();
        EXPECT_NEAR(grad.view(-1)[i].item<double>(), (fp - fm) / (2 * h), 1e-6)
            << "aggregation " << static_cast<int>(agg) << " level " << static_cast<int>(level) << " at " << i;
      }
    }
  }
}

// The losses of two micro-batches add up to the loss of the batch, and so do their gradients.
TEST(GrpoLoss, MicroBatchesAccumulateToTheFullBatch) {
  at::manual_seed(5);
  for (Aggregation agg : {Aggregation::token_mean, Aggregation::seq_mean_token_mean,
                          Aggregation::seq_mean_token_sum_norm, Aggregation::seq_mean_token_sum}) {
    LossOptions o;
    o.aggregation = agg;
    o.beta = 0.01;
    at::Tensor old_logp = -at::rand({4, 6}, at::kDouble);
    at::Tensor ref = old_logp + 0.1 * at::randn({4, 6}, at::kDouble);
    at::Tensor x = (old_logp + 0.2 * at::randn({4, 6}, at::kDouble)).requires_grad_(true);
    at::Tensor adv = vec({1, -1, 0.5, 2});
    at::Tensor mask = (at::rand({4, 6}, at::kDouble) > 0.3).to(at::kDouble);
    mask.select(1, 0).fill_(1);
    LossDenominators den{.tokens = mask.sum().item<double>(), .sequences = 4, .max_length = 6};
    const double full = policy_loss({x, old_logp, ref, adv, mask}, o, den).loss.item<double>();
    at::Tensor full_grad =
        torch::autograd::grad({policy_loss({x, old_logp, ref, adv, mask}, o, den).loss}, {x})[0];
    double sum = 0;
    for (int64_t start : {0, 2}) {
      auto rows = [&](const at::Tensor& t) { return t.narrow(0, start, 2); };
      LossOutput part = policy_loss({rows(x), rows(old_logp), rows(ref), rows(adv), rows(mask)}, o, den);
      sum += part.loss.item<double>();
      part.loss.backward();
    }
    EXPECT_NEAR(sum, full, 1e-12);
    EXPECT_TRUE(at::allclose(x.grad(), full_grad, 0, 1e-12));
  }
}

TEST(GrpoLogprobs, TemperatureScaledLogSoftmax) {
  at::Tensor logits = vec({1, 2, 3, 0, 0, 0}).view({1, 2, 3});
  at::Tensor tokens = at::tensor({2, 0}, at::kLong).view({1, 2});
  at::Tensor lp = token_logprobs(logits, tokens, 0.5);
  const double z = std::log(std::exp(2.0) + std::exp(4.0) + std::exp(6.0));
  expect_near(lp, {6 - z, -std::log(3.0)}, 1e-6);
  expect_near(token_entropy(logits.slice(1, 1, 2), 1), {std::log(3.0)}, 1e-6);
}

}  // namespace
}  // namespace aha::rl
