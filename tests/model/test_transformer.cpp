// Parity with transformers' DeepseekV3ForCausalLM (fp32, eager) on the fixtures made by
// scripts/make_model_fixtures.py: logits within 1e-4 at every real token, on left-padded batches.
#include "aha/model/transformer.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "aha/io/safetensors.h"
#include "aha/model/checkpoint.h"
#include "model_fixtures.h"

namespace {

using aha::test::fixture_inputs;
using aha::test::masked_max_diff;
using aha::test::model_fixture;

class ModelParity : public ::testing::TestWithParam<std::string> {};

TEST_P(ModelParity, LogitsMatchTransformers) {
  auto model = aha::model::load_pretrained(model_fixture(GetParam()));
  model->eval();
  const auto in = fixture_inputs(GetParam());
  const at::Tensor expected =
      aha::io::SafetensorsFile::open(model_fixture(GetParam()) + "/expected.safetensors").tensor("logits");
  const auto out = model->forward(in);
  ASSERT_EQ(out.logits.sizes(), expected.sizes());
  const double diff = masked_max_diff(out.logits, expected, in.attention_mask);
  EXPECT_LE(diff, 1e-4) << GetParam();
  RecordProperty("max_abs_logit_diff", std::to_string(diff));
  std::cout << GetParam() << ": max |logit - transformers| = " << diff << "\n";
}

TEST_P(ModelParity, LeftPaddingDoesNotChangeRealTokens) {
  auto model = aha::model::load_pretrained(model_fixture(GetParam()));
  auto in = fixture_inputs(GetParam());
  const at::Tensor alone = aha::io::SafetensorsFile::open(model_fixture(GetParam()) + "/expected.safetensors")
                               .tensor("logits_unpadded_row1");
  // Positions derived from the mask (none passed) must equal the explicit ones.
  in.position_ids = at::Tensor();
  const auto padded = model->forward(in);
  const int64_t pads = in.attention_mask[1].eq(0).sum().item<int64_t>();
  const at::Tensor row1 = padded.logits[1].slice(0, pads).unsqueeze(0);
  EXPECT_LE((row1 - alone).abs().max().item<double>(), 1e-4);
  aha::model::ForwardInput single;
  single.input_ids = in.input_ids[1].slice(0, pads).unsqueeze(0);
  const auto out = model->forward(single);
  EXPECT_LE((out.logits - alone).abs().max().item<double>(), 1e-4);
  EXPECT_FALSE(at::isnan(padded.logits).any().item<bool>());
}

INSTANTIATE_TEST_SUITE_P(Fixtures, ModelParity, ::testing::ValuesIn(aha::test::parity_fixtures()));

TEST(Transformer, RoutingStatisticsCountEveryTokenKTimes) {
  auto model = aha::model::load_pretrained(model_fixture("yarn_qlora_groups"));
  const auto in = fixture_inputs("yarn_qlora_groups");
  const auto out = model->forward(in);
  const auto& c = model->config();
  ASSERT_EQ(out.expert_load.sizes(),
            (std::vector<int64_t>{c.num_hidden_layers - c.first_k_dense_replace, c.n_routed_experts}));
  const int64_t tokens = in.input_ids.numel();
  for (int64_t l = 0; l < out.expert_load.size(0); ++l) {
    EXPECT_EQ(out.expert_load[l].sum().item<int64_t>(), tokens * c.num_experts_per_tok);
    EXPECT_GT(out.expert_load[l].gt(0).sum().item<int64_t>(), 4) << "routing should spread over experts";
  }
}

TEST(Transformer, GradientsReachEveryTrainableParameterButNotTheRoutingBias) {
  auto model = aha::model::load_pretrained(model_fixture("yarn_qlora_groups"));
  const auto in = fixture_inputs("yarn_qlora_groups");
  const auto out = model->forward(in);
  out.logits.logsumexp(-1).mean().backward();
  for (const auto& p : model->named_parameters()) {
    ASSERT_TRUE(p.value().grad().defined()) << p.key();
    EXPECT_GT(p.value().grad().abs().sum().item<double>(), 0.0) << p.key();
  }
  for (const auto& b : model->named_buffers())
    EXPECT_FALSE(b.value().requires_grad()) << b.key();
  bool found_bias = false;
  for (const auto& b : model->named_buffers())
    found_bias |= b.key().find("e_score_correction_bias") != std::string::npos;
  EXPECT_TRUE(found_bias);
}

TEST(Transformer, Bf16RunsAndStaysCloseToFp32) {
  auto model = aha::model::load_pretrained(model_fixture("yarn_qlora_groups"), {.dtype = at::kBFloat16});
  EXPECT_EQ(model->dtype(), at::kBFloat16);
  for (const auto& p : model->named_parameters()) {
    if (p.key().find("mlp.gate.weight") != std::string::npos) {
      EXPECT_EQ(p.value().scalar_type(), at::kFloat) << p.key();
    }
  }
  const auto in = fixture_inputs("yarn_qlora_groups");
  const at::Tensor expected =
      aha::io::SafetensorsFile::open(model_fixture("yarn_qlora_groups") + "/expected.safetensors")
          .tensor("logits");
  const auto out = model->forward(in);
  EXPECT_EQ(out.logits.scalar_type(), at::kBFloat16);
  // bf16 has 8 bits of mantissa; routing may flip for a few tokens, so compare the bulk, not the worst case.
  const at::Tensor keep = in.attention_mask.to(at::kBool).unsqueeze(-1).expand_as(expected);
  const double mean_err =
      (out.logits.to(at::kFloat) - expected).abs().masked_select(keep).mean().item<double>();
  EXPECT_LT(mean_err, 0.1);
}

}  // namespace
