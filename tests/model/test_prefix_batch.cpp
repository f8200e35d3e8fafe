// forward_prefix_batch (rows sharing a prefix run it once) against forward() over the whole rows: the same
// hidden states, gradients and expert loads up to fp32 rounding, on the yarn/q-LoRA/grouped-routing fixture.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <vector>

#include "aha/model/checkpoint.h"
#include "aha/model/transformer.h"
#include "model_fixtures.h"

namespace {

using aha::test::model_fixture;

// Prefixes and suffixes of given lengths (random ids), right-padded, rows continuing prefix_of[n].
struct Batch {
  aha::model::PrefixBatchInput packed;
  aha::model::ForwardInput whole;  // each row as prefix + suffix, right-padded
  std::vector<int64_t> prefix_len, suffix_len, prefix_of;
};

Batch make_batch(const std::vector<int64_t>& prefix_len, const std::vector<int64_t>& suffix_len,
                 const std::vector<int64_t>& prefix_of, int64_t vocab) {
  Batch b{{}, {}, prefix_len, suffix_len, prefix_of};
  const auto P = static_cast<int64_t>(prefix_len.size()), N = static_cast<int64_t>(suffix_len.size());
  int64_t Lp = 0, Ls = 0, L = 0;
  for (int64_t l : prefix_len)
    Lp = std::max(Lp, l);
  for (int64_t l : suffix_len)
    Ls = std::max(Ls, l);
  for (int64_t n = 0; n < N; ++n)
    L = std::max(L, prefix_len[prefix_of[n]] + suffix_len[n]);
  at::manual_seed(3);
  const at::Tensor prefix = at::randint(2, vocab, {P, Lp}, at::kLong),
                   suffix = at::randint(2, vocab, {N, Ls}, at::kLong);
  at::Tensor pmask = at::zeros({P, Lp}, at::kLong), smask = at::zeros({N, Ls}, at::kLong);
  at::Tensor ids = at::zeros({N, L}, at::kLong), mask = at::zeros({N, L}, at::kLong);
  for (int64_t p = 0; p < P; ++p)
    pmask[p].slice(0, 0, prefix_len[p]).fill_(1);
  for (int64_t n = 0; n < N; ++n) {
    const int64_t lp = prefix_len[prefix_of[n]], ls = suffix_len[n];
    smask[n].slice(0, 0, ls).fill_(1);
    ids[n].slice(0, 0, lp).copy_(prefix[prefix_of[n]].slice(0, 0, lp));
    ids[n].slice(0, lp, lp + ls).copy_(suffix[n].slice(0, 0, ls));
    mask[n].slice(0, 0, lp + ls).fill_(1);
  }
  b.packed.prefix_ids = prefix * pmask;
  b.packed.prefix_mask = pmask;
  b.packed.suffix_ids = suffix * smask;
  b.packed.suffix_mask = smask;
  b.packed.prefix_of = at::tensor(prefix_of, at::kLong);
  b.whole.input_ids = ids;
  b.whole.attention_mask = mask;
  b.whole.compute_logits = false;
  return b;
}

// The whole-row states at the packed output's positions: after the prefix, then after each suffix token
// (zeros past a row's suffix).
at::Tensor whole_at_packed_positions(const Batch& b, const at::Tensor& hidden, int64_t suffix_cols) {
  const auto N = static_cast<int64_t>(b.suffix_len.size());
  at::Tensor out = at::zeros({N, 1 + suffix_cols, hidden.size(-1)});
  for (int64_t n = 0; n < N; ++n) {
    const int64_t lp = b.prefix_len[b.prefix_of[n]];
    out[n].slice(0, 0, 1 + b.suffix_len[n]).copy_(hidden[n].slice(0, lp - 1, lp + b.suffix_len[n]));
  }
  return out;
}

at::Tensor real_positions(const Batch& b, int64_t suffix_cols) {
  const auto N = static_cast<int64_t>(b.suffix_len.size());
  at::Tensor m = at::zeros({N, 1 + suffix_cols, 1});
  for (int64_t n = 0; n < N; ++n)
    m[n].slice(0, 0, 1 + b.suffix_len[n]).fill_(1);
  return m;
}

TEST(PrefixBatch, HiddenStatesAndGradientsEqualTheWholeRows) {
  auto model = aha::model::load_pretrained(model_fixture("yarn_qlora_groups"));
  // Prefixes of 4, 6 and 2 tokens; seven rows with suffixes of 1 to 5 tokens, rows of one prefix not
  // adjacent.
  const Batch b =
      make_batch({4, 6, 2}, {5, 3, 5, 1, 4, 5, 2}, {0, 0, 1, 2, 2, 2, 1}, model->config().vocab_size);
  const int64_t Ls = b.packed.suffix_ids.size(1);
  const at::Tensor keep = real_positions(b, Ls);
  const at::Tensor weights = at::randn({7, 1 + Ls, model->config().hidden_size});

  const auto packed = model->forward_prefix_batch(b.packed);
  ASSERT_EQ(packed.hidden.sizes(), (std::vector<int64_t>{7, 1 + Ls, model->config().hidden_size}));
  (packed.hidden * keep * weights).sum().backward();
  std::vector<at::Tensor> packed_grads;
  for (const auto& p : model->parameters()) {
    packed_grads.push_back(p.grad().defined() ? p.grad().clone() : at::zeros_like(p));
    p.mutable_grad() = at::Tensor();
  }

  const auto whole = model->forward(b.whole);
  const at::Tensor want = whole_at_packed_positions(b, whole.hidden, Ls);
  (want * keep * weights).sum().backward();

  const double diff = ((packed.hidden.detach() - want.detach()) * keep).abs().max().item<double>();
  EXPECT_LT(diff, 1e-5) << "max |packed - whole rows| over real positions";
  size_t i = 0;
  for (const auto& item : model->named_parameters()) {
    const at::Tensor g = item.value().grad().defined() ? item.value().grad() : at::zeros_like(item.value());
    const double scale = std::max(1.0, g.abs().max().item<double>());
    EXPECT_LT((packed_grads[i++] - g).abs().max().item<double>(), 1e-4 * scale) << item.key();
  }
}

TEST(PrefixBatch, ExpertLoadCountsAPrefixTokenOncePerRowThatContinuesIt) {
  auto model = aha::model::load_pretrained(model_fixture("yarn_qlora_groups"));
  // No padding anywhere, so the whole rows' forward counts exactly the real tokens.
  const Batch b = make_batch({4, 4}, {3, 3, 3}, {1, 0, 1}, model->config().vocab_size);
  at::NoGradGuard no_grad;
  const auto packed = model->forward_prefix_batch(b.packed);
  const auto whole = model->forward(b.whole);
  EXPECT_TRUE(at::equal(packed.expert_load, whole.expert_load)) << packed.expert_load << "\nvs\n"
                                                                << whole.expert_load;
  EXPECT_EQ(packed.expert_load[0].sum().item<int64_t>(), 3 * 7 * model->config().num_experts_per_tok);
}

TEST(PrefixBatch, RejectsARowWithoutItsPrefix) {
  auto model = aha::model::load_pretrained(model_fixture("yarn_qlora_groups"));
  Batch b = make_batch({3}, {2, 2}, {0, 0}, model->config().vocab_size);
  b.packed.prefix_of = at::tensor(std::vector<int64_t>{0, 1}, at::kLong);
  at::NoGradGuard no_grad;
  try {
    model->forward_prefix_batch(b.packed);
    FAIL() << "expected an error";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("prefix_of outside [0, 1)"), std::string::npos) << e.what();
  }
}

}  // namespace
