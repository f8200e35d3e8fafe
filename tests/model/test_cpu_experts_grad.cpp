// The trainable CPU routed experts (cpu_experts_grad.h) against the ATen path they replace in training:
// value, load and every gradient.
#include "aha/model/cpu_experts_grad.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/csrc/autograd/autograd.h>

#include "aha/model/moe.h"

namespace {

// Experts of odd sizes (D = 44, Im = 24) with random weights.
struct Experts {
  aha::model::Experts experts{nullptr};
  Experts(int64_t count, int64_t d, int64_t im) : experts(count, d, im) {
    at::NoGradGuard g;
    experts->gate_up_proj.normal_(0, 0.3);
    experts->down_proj.normal_(0, 0.3);
  }
};

double rel_err(const at::Tensor& got, const at::Tensor& want) {
  return (got - want).abs().max().item<double>() / std::max(1.0, want.abs().max().item<double>());
}

// Random routing: K distinct experts per token and positive weights, all leaves the test differentiates.
struct Case {
  at::Tensor x, ids, weights;
  Case(int64_t tokens, int64_t d, int64_t count, int64_t k) {
    x = at::randn({tokens, d}).requires_grad_();
    ids = std::get<1>(at::rand({tokens, count}).topk(k, -1));
    weights = at::rand({tokens, k}).add_(0.1).requires_grad_();
  }
};

class CpuExpertsGrad : public ::testing::TestWithParam<int64_t> {};

TEST_P(CpuExpertsGrad, ValueLoadAndGradientsEqualTheAtenPath) {
  const int64_t tokens = GetParam(), count = 8, k = 3;
  at::manual_seed(tokens);
  Experts e(count, 44, 24);
  const Case c(tokens, 44, count, k);
  const aha::model::Routing routing{c.weights, c.ids, {}};
  at::Tensor load = at::zeros({count}, at::kLong), want_load = at::zeros({count}, at::kLong);
  const at::Tensor got = aha::model::cpu_routed_experts_grad(c.x, c.ids, c.weights, e.experts->gate_up_proj,
                                                             e.experts->down_proj, &load);
  const at::Tensor want = e.experts->forward_aten(c.x, routing, &want_load);
  EXPECT_LE(rel_err(got, want), 1e-5);
  EXPECT_TRUE(at::equal(load, want_load));
  const at::Tensor upstream = at::randn_like(want);
  const std::vector<at::Tensor> wrt{c.x, c.weights, e.experts->gate_up_proj, e.experts->down_proj};
  const auto grads = torch::autograd::grad({(got * upstream).sum()}, wrt);
  const auto want_grads = torch::autograd::grad({(want * upstream).sum()}, wrt);
  const char* names[] = {"x", "weights", "gate_up", "down"};
  for (size_t i = 0; i < wrt.size(); ++i) {
    ASSERT_EQ(grads[i].sizes(), want_grads[i].sizes()) << names[i];
    EXPECT_LE(rel_err(grads[i], want_grads[i]), 1e-5) << names[i];
  }
}

// One token (one pair per expert), a few, enough for every expert, and many per expert.
INSTANTIATE_TEST_SUITE_P(Tokens, CpuExpertsGrad, ::testing::Values(1, 5, 37, 300));

TEST(CpuExpertsGradEdges, ExpertsWithoutTokensGetZeroGradients) {
  at::manual_seed(1);
  Experts e(6, 44, 24);
  const at::Tensor x = at::randn({9, 44});
  // Every token on experts 1 and 4 only.
  const at::Tensor ids = at::tensor({1, 4}, at::kLong).repeat({9, 1});
  const at::Tensor weights = at::full({9, 2}, 0.5);
  {
    at::NoGradGuard g;  // stale gradients must not survive
    e.experts->gate_up_proj.mutable_grad() = at::full_like(e.experts->gate_up_proj, 7.0);
    e.experts->down_proj.mutable_grad() = at::full_like(e.experts->down_proj, 7.0);
  }
  const auto grads = torch::autograd::grad(
      {aha::model::cpu_routed_experts_grad(x, ids, weights, e.experts->gate_up_proj, e.experts->down_proj)
           .sum()},
      {e.experts->gate_up_proj, e.experts->down_proj});
  for (const at::Tensor& g : grads)
    for (int64_t expert = 0; expert < 6; ++expert) {
      const bool used = expert == 1 || expert == 4;
      EXPECT_EQ(g[expert].abs().sum().item<double>() > 0, used) << expert;
    }
}

TEST(CpuExpertsGradEdges, NoGradGivesTheSameValueAndForwardTakesIt) {
  at::manual_seed(2);
  Experts e(8, 44, 24);
  const Case c(20, 44, 8, 3);
  const aha::model::Routing routing{c.weights, c.ids, {}};
  const at::Tensor with_grad = e.experts(c.x, routing);
  EXPECT_TRUE(with_grad.requires_grad());
  EXPECT_TRUE(
      at::equal(with_grad, aha::model::cpu_routed_experts_grad(c.x, c.ids, c.weights, e.experts->gate_up_proj,
                                                               e.experts->down_proj)));
  at::NoGradGuard g;
  const at::Tensor without = e.experts(c.x, routing);
  EXPECT_FALSE(without.requires_grad());
  EXPECT_TRUE(at::equal(with_grad.detach(), without));
}

TEST(CpuExpertsGradEdges, RejectsAnExpertIdOutOfRange) {
  Experts e(4, 44, 24);
  const at::Tensor x = at::randn({2, 44});
  const at::Tensor ids = at::tensor({0, 5, 1, 2}, at::kLong).view({2, 2});
  try {
    aha::model::cpu_routed_experts_grad(x, ids, at::ones({2, 2}), e.experts->gate_up_proj,
                                        e.experts->down_proj);
    FAIL() << "no error";
  } catch (const std::exception& err) {
    EXPECT_NE(std::string(err.what()).find("expert id 5 outside [0, 4)"), std::string::npos) << err.what();
  }
}

}  // namespace
