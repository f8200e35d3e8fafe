// The absorbed decode form against the training form: same logits, token by token, on left-padded batches.
#include "aha/model/kv_cache.h"

#include <gtest/gtest.h>
#include <torch/utils.h>

#include "aha/model/checkpoint.h"
#include "model_fixtures.h"

namespace {

using aha::test::fixture_inputs;
using aha::test::model_fixture;

class AbsorbedDecode : public ::testing::TestWithParam<std::string> {};

TEST_P(AbsorbedDecode, EqualsTrainingFormTokenByToken) {
  torch::NoGradGuard no_grad;
  auto model = aha::model::load_pretrained(model_fixture(GetParam()));
  const auto in = fixture_inputs(GetParam());
  const at::Tensor full = model->forward(in).logits;  // [B, T, V]
  const int64_t b = in.input_ids.size(0), t = in.input_ids.size(1), prefix = 7;
  auto cache = model->make_cache(b, t);
  // Prefill the first `prefix` positions (rows 1 and 2 start with padding), then one token at a time.
  const auto pre =
      model->decode(in.input_ids.slice(1, 0, prefix), in.attention_mask.slice(1, 0, prefix), cache);
  const at::Tensor real = in.attention_mask.to(at::kBool);
  double worst = 0;
  auto check = [&](const at::Tensor& got, int64_t from, int64_t to) {
    const at::Tensor want = full.slice(1, from, to);
    const at::Tensor keep = real.slice(1, from, to).unsqueeze(-1).expand_as(want);
    worst = std::max(worst, (got - want).abs().masked_select(keep).max().item<double>());
  };
  check(pre.logits, 0, prefix);
  for (int64_t pos = prefix; pos < t; ++pos) {
    const auto step =
        model->decode(in.input_ids.slice(1, pos, pos + 1), in.attention_mask.slice(1, pos, pos + 1), cache);
    check(step.logits, pos, pos + 1);
  }
  EXPECT_EQ(cache.length, t);
  EXPECT_TRUE(at::equal(cache.positions, in.attention_mask.sum(1)));
  EXPECT_LE(worst, 1e-5) << GetParam();
  std::cout << GetParam() << ": max |absorbed decode - training form| = " << worst << "\n";
}

INSTANTIATE_TEST_SUITE_P(Fixtures, AbsorbedDecode, ::testing::ValuesIn(aha::test::parity_fixtures()));

TEST(KvCache, HoldsOnlyTheLatentAndSharesPrefixesAcrossRows) {
  torch::NoGradGuard no_grad;
  auto model = aha::model::load_pretrained(model_fixture("yarn_qlora_groups"));
  const auto& c = model->config();
  const auto in = fixture_inputs("yarn_qlora_groups");
  auto cache = model->make_cache(3, 16);
  EXPECT_EQ(cache.bytes_per_token(), c.num_hidden_layers * (c.kv_lora_rank + c.qk_rope_head_dim) * 4);
  model->decode(in.input_ids, in.attention_mask, cache);
  // Row 0 repeated four times continues exactly like row 0.
  auto shared = cache.select_rows(at::tensor({0, 0, 0, 0}, at::kLong));
  auto single = cache.select_rows(at::tensor({0}, at::kLong));
  const at::Tensor next = at::full({4, 1}, 17, at::kLong);
  const auto a = model->decode(next, at::Tensor(), shared);
  const auto b = model->decode(next.slice(0, 0, 1), at::Tensor(), single);
  for (int64_t r = 0; r < 4; ++r)
    EXPECT_LE((a.logits[r] - b.logits[0]).abs().max().item<double>(), 1e-5) << r;
  EXPECT_THROW(model->decode(at::zeros({4, 8}, at::kLong), at::Tensor(), shared), aha::Error);  // 12 + 8 > 16
}

}  // namespace
