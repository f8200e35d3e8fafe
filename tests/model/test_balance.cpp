// Load balancing: the bias update of auxiliary-loss-free balancing and the sequence-wise balance loss.
#include "aha/model/balance.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "aha/model/checkpoint.h"
#include "model_fixtures.h"

namespace {

using aha::test::model_fixture;

TEST(Balance, BiasMovesAgainstTheLoadByGamma) {
  auto model = aha::model::load_pretrained(model_fixture("yarn_qlora_groups"));
  auto layer = model->model->layers[1]->as<aha::model::DecoderLayerImpl>();
  const at::Tensor before = layer->moe->gate->e_score_correction_bias.clone();
  at::Tensor load = at::full({model->num_moe_layers(), 16}, 10, at::kLong);
  load[0][3] = 40;  // overloaded
  load[0][5] = 0;   // underloaded; mean is (16*10 + 30 - 10) / 16 = 11.25
  aha::model::update_routing_bias(*model, load, 0.001);
  const at::Tensor delta = layer->moe->gate->e_score_correction_bias - before;
  EXPECT_NEAR(delta[3].item<float>(), -0.001f, 1e-7);
  EXPECT_NEAR(delta[5].item<float>(), 0.001f, 1e-7);
  EXPECT_NEAR(delta[0].item<float>(), 0.001f, 1e-7);  // 10 < 11.25: underloaded too
  EXPECT_THROW(aha::model::update_routing_bias(*model, at::zeros({1, 3}, at::kLong), 0.001), aha::Error);
  const at::Tensor imbalance = aha::model::load_imbalance(load);
  EXPECT_NEAR(imbalance[0].item<float>(), 40 / 11.25, 1e-5);
}

TEST(Balance, SequenceLossMatchesHandComputedValue) {
  // One sequence of 2 tokens, 4 experts, K = 1.
  const at::Tensor scores = at::tensor({0.5f, 0.5f, 0.0f, 0.0f, 0.25f, 0.25f, 0.25f, 0.25f}).view({1, 2, 4});
  const at::Tensor experts = at::tensor({0, 1}, at::kLong).view({1, 2, 1});
  // f = E/(K T) * counts = 4/2 * [1, 1, 0, 0] = [2, 2, 0, 0]; P = mean of normalised scores = [3/8, 3/8, 1/8,
  // 1/8] loss = alpha * (2 * 3/8 + 2 * 3/8) = 1.5 alpha
  EXPECT_NEAR(aha::model::sequence_balance_loss(experts, scores, at::Tensor(), 0.1).item<double>(), 0.15,
              1e-7);
  // Padding is left out: only the first token counts -> f = [4, 0, 0, 0], P = [0.5, 0.5, 0, 0] -> 2 alpha.
  const at::Tensor mask = at::tensor({1, 0}, at::kLong).view({1, 2});
  EXPECT_NEAR(aha::model::sequence_balance_loss(experts, scores, mask, 0.1).item<double>(), 0.2, 1e-7);
}

TEST(Balance, LossFromTheForwardPassTrainsTheRouter) {
  auto model = aha::model::load_pretrained(model_fixture("yarn_qlora_groups"));
  const auto in = aha::test::fixture_inputs("yarn_qlora_groups");
  aha::model::ForwardInput with_loss = in;
  with_loss.balance_alpha = 1e-4;
  with_loss.compute_logits = false;
  const auto out = model->forward(with_loss);
  ASSERT_TRUE(out.balance_loss.defined());
  EXPECT_GT(out.balance_loss.item<double>(), 0);
  out.balance_loss.backward();
  auto layer = model->model->layers[1]->as<aha::model::DecoderLayerImpl>();
  ASSERT_TRUE(layer->moe->gate->weight.grad().defined());
  EXPECT_GT(layer->moe->gate->weight.grad().abs().sum().item<double>(), 0);
  EXPECT_FALSE(model->forward(in).balance_loss.defined());  // off unless asked for
}

}  // namespace
