// The decode-step CPU kernels against the ATen paths they replace under InferenceMode.
#include "aha/model/cpu_decode.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>
#include <gtest/gtest.h>

#include <limits>

#include "aha/model/checkpoint.h"
#include "aha/model/moe.h"
#include "aha/model/norm.h"
#include "model_fixtures.h"

namespace {

// Experts of odd sizes (D = 44, Im = 24: neither a multiple of the kernel's 16 lanes, and D not of its 8
// weight rows at a time) and a router over them.
struct RoutedExperts {
  aha::model::ModelConfig c;
  aha::model::Experts experts{nullptr};
  aha::model::Router router{nullptr};
  explicit RoutedExperts(int64_t seed) {
    c.hidden_size = 44;
    c.moe_intermediate_size = 24;
    c.n_routed_experts = 8;
    c.n_group = 4;
    c.topk_group = 2;
    c.num_experts_per_tok = 3;
    at::manual_seed(static_cast<uint64_t>(seed));
    experts = aha::model::Experts(c.n_routed_experts, c.hidden_size, c.moe_intermediate_size);
    router = aha::model::Router(c);
    at::NoGradGuard g;
    experts->gate_up_proj.normal_(0, 0.3);
    experts->down_proj.normal_(0, 0.3);
    router->weight.normal_(0, 1);
  }
};

// Token counts from one (an expert with a single token) to enough for 4-token blocks plus every remainder,
// and to token-major blocks of 8, 16 and 24 tokens and more than one block per expert (80 tokens: ~30 per
// expert).
class CpuRoutedExperts : public ::testing::TestWithParam<int64_t> {};

TEST_P(CpuRoutedExperts, EqualsTheAtenDispatch) {
  const int64_t tokens = GetParam();
  RoutedExperts s(tokens);
  const at::Tensor x = at::randn({tokens, s.c.hidden_size});
  const auto routing = s.router(x);
  at::Tensor want_load = at::zeros({s.c.n_routed_experts}, at::kLong);
  const at::Tensor want = s.experts->forward_aten(x, routing, &want_load).detach();
  at::Tensor load = at::zeros({s.c.n_routed_experts}, at::kLong);
  const at::Tensor got =
      aha::model::cpu_routed_experts(x, routing.experts, routing.weights, s.experts->gate_up_proj.detach(),
                                     s.experts->down_proj.detach(), &load);
  ASSERT_EQ(got.sizes(), want.sizes());
  EXPECT_LE((got - want).abs().max().item<double>(), 1e-5 * std::max(1.0, want.abs().max().item<double>()));
  EXPECT_TRUE(at::equal(load, want_load));
}

INSTANTIATE_TEST_SUITE_P(Tokens, CpuRoutedExperts, ::testing::Values(1, 2, 5, 16, 37, 80));

TEST(CpuRoutedExpertsDispatch, InferenceModeTakesTheKernelWithTheSameResult) {
  RoutedExperts s(7);
  const at::Tensor x = at::randn({16, s.c.hidden_size});
  const auto routing = s.router(x);
  const at::Tensor want = s.experts->forward_aten(x, routing).detach();
  at::Tensor got, direct;
  {
    c10::InferenceMode guard;
    got = s.experts(x, routing);
    direct = aha::model::cpu_routed_experts(x, routing.experts, routing.weights, s.experts->gate_up_proj,
                                            s.experts->down_proj);
  }
  // Under InferenceMode forward() runs the kernel: bit-identical to calling it, close to the ATen path.
  EXPECT_TRUE(at::equal(got, direct));
  EXPECT_LE((got - want).abs().max().item<double>(), 1e-5 * std::max(1.0, want.abs().max().item<double>()));
}

TEST(CpuRoutedExpertsDispatch, SameResultWhateverTheThreadCount) {
  RoutedExperts s(9);
  const at::Tensor x = at::randn({24, s.c.hidden_size});
  const auto routing = s.router(x);
  const auto run = [&] {
    return aha::model::cpu_routed_experts(x, routing.experts, routing.weights,
                                          s.experts->gate_up_proj.detach(), s.experts->down_proj.detach());
  };
  const int threads = at::get_num_threads();
  at::set_num_threads(1);
  const at::Tensor one = run();
  at::set_num_threads(2);
  const at::Tensor two = run();
  at::set_num_threads(threads);
  EXPECT_TRUE(at::equal(one, two));
}

TEST(CpuRoutedExpertsDispatch, RejectsWhatItCannotRun) {
  RoutedExperts s(1);
  const at::Tensor x = at::randn({4, s.c.hidden_size});
  const auto routing = s.router(x);
  EXPECT_FALSE(aha::model::cpu_routed_experts_supported(x.to(at::kDouble), s.experts->gate_up_proj,
                                                        s.experts->down_proj));
  EXPECT_FALSE(aha::model::cpu_routed_experts_supported(x.slice(1, 0, 8), s.experts->gate_up_proj,
                                                        s.experts->down_proj));
  at::Tensor bad = routing.experts.clone();
  bad[0][0] = s.c.n_routed_experts;
  try {
    aha::model::cpu_routed_experts(x, bad, routing.weights, s.experts->gate_up_proj.detach(),
                                   s.experts->down_proj.detach());
    FAIL() << "expected an error";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("expert id 8 outside [0, 8)"), std::string::npos) << e.what();
  }
}

TEST(RmsNormDecodePath, InferenceModeEqualsTheOperatorPath) {
  aha::model::RMSNorm norm(40, 1e-6);
  at::manual_seed(2);
  {
    at::NoGradGuard g;
    norm->weight.normal_(1, 0.2);
  }
  const at::Tensor x = at::randn({3, 5, 40}) * 3;
  const at::Tensor want = norm(x).detach();
  at::Tensor got;
  {
    c10::InferenceMode guard;
    got = norm(x);
  }
  ASSERT_EQ(got.sizes(), want.sizes());
  EXPECT_LE((got - want).abs().max().item<double>(), 1e-6 * want.abs().max().item<double>());
}

// The whole decode step under InferenceMode (RMSNorm and experts on their CPU fast paths) against
// the training form's logits, on left-padded rows, token by token after a prefill: as AbsorbedDecode checks
// for the ATen paths.
class CpuDecodeStep : public ::testing::TestWithParam<std::string> {};

TEST_P(CpuDecodeStep, EqualsTrainingFormTokenByToken) {
  auto model = aha::model::load_pretrained(aha::test::model_fixture(GetParam()));
  const auto in = aha::test::fixture_inputs(GetParam());
  at::Tensor full;
  {
    at::NoGradGuard no_grad;
    full = model->forward(in).logits;  // [B, T, V]
  }
  c10::InferenceMode inference;
  const int64_t b = in.input_ids.size(0), t = in.input_ids.size(1), prefix = 7;
  auto cache = model->make_cache(b, t);
  model->decode(in.input_ids.slice(1, 0, prefix), in.attention_mask.slice(1, 0, prefix), cache);
  const at::Tensor real = in.attention_mask.to(at::kBool);
  double worst = 0;
  for (int64_t pos = prefix; pos < t; ++pos) {
    const at::Tensor got =
        model->decode(in.input_ids.slice(1, pos, pos + 1), in.attention_mask.slice(1, pos, pos + 1), cache)
            .logits;
    const at::Tensor want = full.slice(1, pos, pos + 1);
    const at::Tensor keep = real.slice(1, pos, pos + 1).unsqueeze(-1).expand_as(want);
    worst = std::max(worst, (got - want).abs().masked_select(keep).max().item<double>());
  }
  EXPECT_LE(worst, 1e-5) << GetParam();
}

INSTANTIATE_TEST_SUITE_P(Fixtures, CpuDecodeStep, ::testing::ValuesIn(aha::test::parity_fixtures()));

}  // namespace

namespace {

// The latent attention kernel against the ATen expression it replaces in forward_absorbed: R and r not
// multiples of 16, heads not of 4, a cache longer than the length read, masked positions and a row with every
// position masked (uniform weights, as softmax gives).
TEST(CpuLatentAttention, EqualsTheAtenExpression) {
  at::manual_seed(4);
  const int64_t b = 5, heads = 6, r = 37, dr = 11, R = r + dr, capacity = 23, length = 19;
  const double scale = 0.21;
  const at::Tensor q = at::randn({b, heads, R}), cache = at::randn({b, capacity, R});
  at::Tensor mask = at::zeros({b, length});
  mask[1].slice(0, 0, 7).fill_(std::numeric_limits<float>::lowest());
  mask[3].fill_(std::numeric_limits<float>::lowest());
  mask[4][12] = std::numeric_limits<float>::lowest();
  const at::Tensor seen = cache.slice(1, 0, length);
  const at::Tensor p = at::softmax(at::bmm(q, seen.transpose(1, 2)) * scale + mask.unsqueeze(1), -1);
  const at::Tensor want = at::bmm(p, seen.slice(-1, 0, r));
  ASSERT_TRUE(aha::model::cpu_latent_attention_supported(q, cache, mask));
  const at::Tensor got = aha::model::cpu_latent_attention(q, cache, length, mask, scale, r);
  ASSERT_EQ(got.sizes(), want.sizes());
  EXPECT_LE((got - want).abs().max().item<double>(), 1e-5 * want.abs().max().item<double>());
  // Row 3 (every position masked) averages its latents; row 1 ignores its first 7 positions.
  EXPECT_LE((got[3][0] - seen[3].slice(-1, 0, r).mean(0)).abs().max().item<double>(), 1e-5);
  at::Tensor changed = cache.clone();
  changed[1].slice(0, 0, 7).normal_();
  EXPECT_TRUE(at::allclose(aha::model::cpu_latent_attention(q, changed, length, mask, scale, r)[1], got[1]));
  // Not taken: a cache whose rows are not contiguous, a mask of the wrong batch, double.
  EXPECT_FALSE(aha::model::cpu_latent_attention_supported(q, cache.transpose(1, 2), mask));
  EXPECT_FALSE(aha::model::cpu_latent_attention_supported(q, cache, mask.slice(0, 0, 2)));
  EXPECT_FALSE(aha::model::cpu_latent_attention_supported(q.to(at::kDouble), cache, mask));
}

}  // namespace
