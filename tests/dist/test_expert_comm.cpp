// Expert parallelism on two Gloo ranks (threads of this process), against one process holding every expert:
//   - a MoE layer's output, its input gradient and its experts' weight gradients equal one process's on the
//     same tokens (split unevenly between the ranks, one rank with none at all), with the routed-token
//     counts;
//   - the sampler in lockstep: ranks with different numbers of prompts (one with none) generate the
//   completions
//     one process generates for the same prompts and seeds, token for token;
//   - the token exchange is timed.
#include "aha/dist/expert_comm.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "../model/model_fixtures.h"
#include "../support/two_ranks.h"
#include "aha/dist/process_group.h"
#include "aha/model/expert_parallel.h"
#include "aha/model/moe.h"
#include "aha/rollout/sampler.h"

namespace aha::dist {
namespace {

using test::on_two_ranks;

model::ModelConfig config() {
  model::ModelConfig c = test::two_layer_moe_config();
  c.hidden_size = 32;
  c.moe_intermediate_size = 16;
  c.intermediate_size = 48;
  c.kv_lora_rank = 16;
  c.qk_rope_head_dim = 8;
  c.qk_nope_head_dim = 8;
  c.v_head_dim = 8;
  c.num_attention_heads = 2;
  c.num_key_value_heads = 2;
  c.n_routed_experts = 8;
  c.num_experts_per_tok = 3;
  c.eos_token_id = {1};
  return c;
}

model::Moe make_moe() {
  model::Moe m(config());
  c10::NoGradGuard no_grad;
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(11);
  for (auto& p : m->parameters())
    p.copy_(at::normal(0.0, 0.2, p.sizes(), gen, at::kFloat));
  return m;
}

// 7 tokens: rank 0 takes the first 7 - `rank1` of them, rank 1 the rest.
at::Tensor tokens() {
  return at::sin(at::arange(7 * 32, at::kFloat) * 0.731).view({1, 7, 32});
}

class ExpertParallelMoe : public ::testing::TestWithParam<int64_t> {};

TEST_P(ExpertParallelMoe, TwoRanksEqualOneProcess) {
  if (!backend_available("gloo")) GTEST_SKIP() << "built without the gloo headers (Debian libgloo-dev)";
  const int64_t rank1 = GetParam();  // tokens on rank 1
  model::Moe one = make_moe();
  const at::Tensor x = tokens().requires_grad_();
  model::MoeStats stats;
  stats.load = at::zeros({8}, at::kLong);
  const at::Tensor y = one->forward(x, &stats);
  const at::Tensor weight = at::cos(at::arange(7 * 32, at::kFloat)).view({1, 7, 32});
  (y * weight).sum().backward();
  on_two_ranks([&](const std::shared_ptr<World>& world) {
    model::Moe moe = make_moe();
    auto comm = std::make_shared<GroupExpertComm>(world);
    moe->experts->set_expert_parallel(comm);
    ASSERT_EQ(moe->experts->gate_up_proj.size(0), 4);
    const int64_t r = world->rank();
    const int64_t begin = r == 0 ? 0 : 7 - rank1, end = r == 0 ? 7 - rank1 : 7;
    const at::Tensor mine = tokens().slice(1, begin, end).detach().requires_grad_();
    model::MoeStats s;
    s.load = at::zeros({8}, at::kLong);
    const at::Tensor out = moe->forward(mine, &s);
    (out * weight.slice(1, begin, end)).sum().backward();
    EXPECT_EQ(out.sizes(), mine.sizes());
    if (end > begin) {
      EXPECT_LE((out - y.slice(1, begin, end)).abs().max().item<double>(), 1e-6);
      EXPECT_LE((mine.grad() - x.grad().slice(1, begin, end)).abs().max().item<double>(), 1e-6);
    }
    // The routed-token counts of all experts, summed over the ranks, are one process's.
    world->all_reduce(s.load);
    EXPECT_TRUE(s.load.equal(stats.load));
    // This rank's experts' gradients: block r of one process's (the other rank's tokens included).
    for (const char* name : {"gate_up_proj", "down_proj"}) {
      const at::Tensor g = moe->experts->named_parameters()[name].grad();
      const at::Tensor want = one->experts->named_parameters()[name].grad().slice(0, 4 * r, 4 * r + 4);
      ASSERT_TRUE(g.defined()) << name;
      EXPECT_LE((g - want).abs().max().item<double>(), 1e-6) << name;
    }
    // The router and shared experts stay local (their gradients are this rank's share, summed elsewhere).
    EXPECT_GT(comm->exchanges(), 0);
    EXPECT_GE(comm->seconds(), 0.0);
  });
}

// Rank 1 gets 3 tokens, or none at all (it still exchanges, forward and backward, with empty tensors).
INSTANTIATE_TEST_SUITE_P(Splits, ExpertParallelMoe, ::testing::Values(3, 0));

TEST(ExpertParallelSampler, RanksInLockstepGenerateWhatOneProcessGenerates) {
  if (!backend_available("gloo")) GTEST_SKIP() << "built without the gloo headers (Debian libgloo-dev)";
  model::ModelConfig c = config();
  c.vocab_size = 40;
  auto make = [&] {
    model::Transformer m(c);
    m->init_weights(9);
    return m;
  };
  const std::vector<std::vector<int64_t>> prompts = {{2, 5, 7}, {3, 9}, {4, 4, 8, 11}};
  rollout::SamplingParams sp;
  sp.temperature = 1.0;
  sp.max_new_tokens = 6;
  sp.n = 2;
  const std::vector<uint64_t> seeds = {101, 202, 303};
  model::Transformer one = make();
  rollout::GenerateOptions go;
  go.prompt_seeds = seeds;
  const rollout::GenerateResult want = rollout::Sampler().generate(*one, prompts, sp, go);
  for (int64_t share : {2, 3}) {  // rank 0's prompts: two, or all three (rank 1 then has none)
    on_two_ranks([&](const std::shared_ptr<World>& world) {
      model::Transformer m = make();
      auto comm = std::make_shared<GroupExpertComm>(world);
      for (const auto& mod : m->modules())
        if (auto* e = dynamic_cast<model::ExpertsImpl*>(mod.get())) e->set_expert_parallel(comm);
      const size_t lo = world->rank() == 0 ? 0 : static_cast<size_t>(share),
                   hi = world->rank() == 0 ? share : 3;
      rollout::GenerateOptions o;
      o.prompt_seeds.assign(seeds.begin() + static_cast<std::ptrdiff_t>(lo),
                            seeds.begin() + static_cast<std::ptrdiff_t>(hi));
      o.lockstep = [&](bool mine) { return world->all_reduce({mine ? 1.0 : 0.0}, ReduceOp::max)[0] > 0; };
      const std::vector<std::vector<int64_t>> part(prompts.begin() + static_cast<std::ptrdiff_t>(lo),
                                                   prompts.begin() + static_cast<std::ptrdiff_t>(hi));
      const rollout::GenerateResult got = rollout::Sampler().generate(*m, part, sp, o);
      ASSERT_EQ(got.completions.size(), part.size() * 2);
      for (size_t i = 0; i < got.completions.size(); ++i) {
        const auto& a = got.completions[i];
        const auto& b = want.completions[lo * 2 + i];
        EXPECT_EQ(a.tokens, b.tokens) << "rank " << world->rank() << " completion " << i;
        for (size_t t = 0; t < a.logprobs.size() && t < b.logprobs.size(); ++t)
          EXPECT_NEAR(a.logprobs[t], b.logprobs[t], 1e-5);
      }
    });
  }
}

}  // namespace
}  // namespace aha::dist
