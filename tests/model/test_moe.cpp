// The mixture of experts against a plain per-token reference: routing, expert outputs, and gradients.
#include "aha/model/moe.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/csrc/autograd/autograd.h>

namespace {

aha::model::ModelConfig tiny() {
  aha::model::ModelConfig c;
  c.hidden_size = 16;
  c.moe_intermediate_size = 8;
  c.n_routed_experts = 8;
  c.n_group = 4;
  c.topk_group = 2;
  c.num_experts_per_tok = 3;
  c.n_shared_experts = 1;
  return c;
}

// Token by token, slot by slot: what the sorted, grouped dispatch must compute.
at::Tensor reference(const aha::model::ExpertsImpl& e, const at::Tensor& x, const aha::model::Routing& r) {
  std::vector<at::Tensor> rows;
  for (int64_t n = 0; n < x.size(0); ++n) {
    at::Tensor acc = at::zeros({x.size(1)});
    for (int64_t s = 0; s < r.experts.size(1); ++s) {
      const int64_t id = r.experts[n][s].item<int64_t>();
      const at::Tensor gu = at::matmul(e.gate_up_proj[id], x[n]);
      const int64_t im = gu.size(0) / 2;
      const at::Tensor h = at::silu(gu.slice(0, 0, im)) * gu.slice(0, im);
      acc = acc + r.weights[n][s] * at::matmul(e.down_proj[id], h);
    }
    rows.push_back(acc);
  }
  return at::stack(rows);
}

// forward() (on the CPU in float32: the autograd kernel of cpu_experts_grad.h) and forward_aten() (37 tokens
// take the per-expert GEMMs, 300 the grouped GEMM).
class MoeDispatch : public ::testing::TestWithParam<std::tuple<int64_t, bool>> {};

TEST_P(MoeDispatch, EqualsPerTokenReferenceWithGradients) {
  const auto [tokens, aten] = GetParam();
  at::manual_seed(3);
  const auto c = tiny();
  aha::model::Experts experts(c.n_routed_experts, c.hidden_size, c.moe_intermediate_size);
  aha::model::Router router(c);
  {
    at::NoGradGuard g;
    experts->gate_up_proj.normal_(0, 0.3);
    experts->down_proj.normal_(0, 0.3);
    router->weight.normal_(0, 1);
    router->e_score_correction_bias.normal_(0, 0.1);
  }
  const at::Tensor x = at::randn({tokens, c.hidden_size}).requires_grad_();
  const auto routing = router(x);
  const auto run = [&](const at::Tensor& input, const aha::model::Routing& r, at::Tensor* load) {
    return aten ? experts->forward_aten(input, r, load) : experts(input, r, load);
  };
  at::Tensor load = at::zeros({c.n_routed_experts}, at::kLong);
  const at::Tensor got = run(x, routing, &load);
  EXPECT_EQ(load.sum().item<int64_t>(), tokens * 3);
  const at::Tensor upstream = at::randn_like(got);
  const std::vector<at::Tensor> wrt{experts->gate_up_proj, experts->down_proj, x, router->weight};
  // The routing graph is shared with the reference below: keep it.
  const auto grads = torch::autograd::grad({(got * upstream).sum()}, wrt, {}, /*retain_graph=*/true);
  const at::Tensor want = reference(*experts, x, routing);
  const auto want_grads = torch::autograd::grad({(want * upstream).sum()}, wrt);
  EXPECT_LE((got - want).abs().max().item<double>(), 1e-5);
  // Gradients sum over every token of an expert: compare relative to their size.
  for (size_t i = 0; i < wrt.size(); ++i) {
    const double scale = want_grads[i].abs().max().item<double>();
    EXPECT_LE((grads[i] - want_grads[i]).abs().max().item<double>(), 1e-6 * std::max(1.0, scale) * 10) << i;
  }
  // A plain sum sends an expanded gradient; the dispatch must accept it.
  EXPECT_NO_THROW(run(x, router(x), nullptr).sum().backward());
}

INSTANTIATE_TEST_SUITE_P(Paths, MoeDispatch,
                         ::testing::Combine(::testing::Values(37, 300), ::testing::Values(false, true)));

TEST(Moe, RouterFollowsTheGroupLimitAndTheUnbiasedScores) {
  const auto c = tiny();
  aha::model::Router router(c);
  at::NoGradGuard g;
  router->weight.zero_();
  // Huge bias on experts 0 and 1 (group 0) and 6 (group 3): selection goes there, weights stay the unbiased
  // 0.5.
  router->e_score_correction_bias.zero_();
  router->e_score_correction_bias[0] = 5;
  router->e_score_correction_bias[1] = 4;
  router->e_score_correction_bias[6] = 3;
  const auto r = router(at::zeros({2, c.hidden_size}));
  const at::Tensor chosen = std::get<0>(r.experts.sort(1));
  EXPECT_TRUE(at::equal(chosen[0], at::tensor({0, 1, 6}, at::kLong)));
  // sigmoid(0) = 0.5 each, normalised to 1/3, times routed_scaling_factor 2.5.
  EXPECT_TRUE(at::allclose(r.weights, at::full({2, 3}, 2.5f / 3)));
  EXPECT_TRUE(at::allclose(r.scores, at::full({2, 8}, 0.5f)));
}

}  // namespace
