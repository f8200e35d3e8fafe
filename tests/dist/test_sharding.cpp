// Sharded training state (dist/sharding.h) on two Gloo ranks (threads of this process), against one process:
//   - every mode (optimizer, grads, full), with and without activation checkpointing: the two ranks' masters
//     after one SGD step from their summed gradients equal one process's weights after the same step on the
//     whole batch (a dense layer, a MoE layer with its balance loss, and an MTP module in the loss);
//   - full mode frees the weights between uses and keeps half the bytes per rank;
//   - activation checkpointing alone (mode none) gives one process's gradients bit for bit;
//   - state saved on two ranks loads on one and on two, bit for bit, moments included;
//   - bf16 compute: the module's weights gather in bf16, the masters stay fp32.
#include "aha/dist/sharding.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <map>

#include "../model/model_fixtures.h"
#include "../support/temp_dir.h"
#include "../support/two_ranks.h"
#include "aha/dist/process_group.h"
#include "aha/rl/parallel.h"

namespace aha::dist {
namespace {

using test::on_two_ranks;

model::ModelConfig config() {
  model::ModelConfig c = test::two_layer_moe_config();
  c.hidden_size = 32;
  c.intermediate_size = 48;
  c.moe_intermediate_size = 16;
  c.kv_lora_rank = 16;
  c.qk_rope_head_dim = 8;
  c.qk_nope_head_dim = 8;
  c.v_head_dim = 8;
  c.num_attention_heads = 2;
  c.num_key_value_heads = 2;
  c.num_hidden_layers = 3;
  c.num_nextn_predict_layers = 1;
  return c;
}

model::Transformer make_model() {
  model::Transformer m(config());
  m->init_weights(5);
  return m;
}

// Rows [begin, end) of a fixed batch of 4 left-padded sequences.
model::ForwardInput batch(int64_t begin, int64_t end) {
  const at::Tensor ids =
      at::remainder(at::arange(4 * 9, at::kLong) * 7 + 3, config().vocab_size).view({4, 9});
  at::Tensor mask = at::ones({4, 9}, at::kLong);
  mask[1].slice(0, 0, 3).zero_();
  mask[3].slice(0, 0, 1).zero_();
  model::ForwardInput in;
  in.input_ids = ids.slice(0, begin, end);
  in.attention_mask = mask.slice(0, begin, end);
  in.balance_alpha = 0.01;
  in.compute_mtp = true;
  return in;
}

// A loss that is a sum over rows (so two ranks' halves add up to one process's whole).
at::Tensor loss_of(model::TransformerImpl& m, const model::ForwardInput& in) {
  const model::ForwardOutput out = m.forward(in);
  at::Tensor loss = (out.logits.pow(2) * in.attention_mask.unsqueeze(-1)).sum() * 1e-3 +
                    out.mtp_logits[0].pow(2).sum() * 1e-3;
  return loss + out.balance_loss * static_cast<double>(in.input_ids.size(0));
}

// One process: the weights after w -= lr * grad on the whole batch.
std::map<std::string, at::Tensor> reference_step(double lr) {
  model::Transformer m = make_model();
  loss_of(*m, batch(0, 4)).backward();
  std::map<std::string, at::Tensor> out;
  c10::NoGradGuard no_grad;
  for (const auto& p : m->named_parameters()) {
    at::Tensor w = p.value().detach().clone();
    if (p.value().grad().defined()) w -= lr * p.value().grad();
    out[p.key()] = w;
  }
  return out;
}

struct Case {
  ShardMode mode;
  bool checkpoint;
};

class ShardingModes : public ::testing::TestWithParam<Case> {};

TEST_P(ShardingModes, TwoRanksStepLikeOneProcess) {
  if (!backend_available("gloo")) GTEST_SKIP() << "built without the gloo headers (Debian libgloo-dev)";
  const Case c = GetParam();
  const double lr = 0.5;
  const auto expected = reference_step(lr);
  int64_t whole_bytes = 0;
  {
    model::Transformer m = make_model();
    whole_bytes = storage_bytes(m->parameters());
  }
  on_two_ranks([&](const std::shared_ptr<World>& world) {
    model::Transformer m = make_model();
    rl::ParallelLayout layout;
    layout.world = world;
    auto s = std::make_shared<Sharding>(world, rl::shard_units(*m, layout),
                                        ShardingOptions{c.mode, c.checkpoint, at::kFloat});
    m->set_layer_runner(s);
    const int64_t r = world->rank();
    if (c.mode == ShardMode::full) {
      // Freed at rest: a layer's weights hold no bytes; the masters are half of the model (one process's).
      EXPECT_EQ(m->model->layers[1]->named_parameters()["self_attn.kv_b_proj.weight"].storage().nbytes(), 0u);
      EXPECT_NEAR(static_cast<double>(s->memory().params), whole_bytes / 2.0, whole_bytes * 0.01);
    }
    s->gather_root();
    loss_of(*m, batch(2 * r, 2 * r + 2)).backward();
    s->after_backward();
    if (c.mode == ShardMode::optimizer) {
      for (auto& p : m->parameters())
        if (p.grad().defined()) world->all_reduce(p.mutable_grad());
      s->take_grads();
      m->zero_grad();
    }
    s->release_root();
    {
      c10::NoGradGuard no_grad;
      for (auto& master : s->masters())
        if (master.grad().defined()) master -= lr * master.grad();
    }
    s->after_step();
    const auto got = s->full_tensors();
    // Whole weights again where the mode keeps them, in the module itself (gathered on demand in full mode).
    s->gather_all();
    for (const auto& p : m->named_parameters())
      EXPECT_LE((p.value().detach() - expected.at(p.key())).abs().max().item<double>(), 1e-6) << p.key();
    if (r != 0) {
      EXPECT_TRUE(got.empty());
      return;
    }
    ASSERT_EQ(got.size(), expected.size());
    for (const auto& [name, value] : got) {
      ASSERT_TRUE(expected.count(name)) << name;
      EXPECT_LE((value - expected.at(name)).abs().max().item<double>(), 1e-6) << name;
    }
  });
}

INSTANTIATE_TEST_SUITE_P(Modes, ShardingModes,
                         ::testing::Values(Case{ShardMode::optimizer, false}, Case{ShardMode::grads, false},
                                           Case{ShardMode::full, false}, Case{ShardMode::full, true},
                                           Case{ShardMode::grads, true}),
                         [](const auto& info) {
                           return std::string(shard_mode_name(info.param.mode)) +
                                  (info.param.checkpoint ? "_checkpointed" : "");
                         });

TEST(DistSharding, ActivationCheckpointingAloneGivesTheSameGradientsBitForBit) {
  model::Transformer plain = make_model(), recomputed = make_model();
  auto s = std::make_shared<Sharding>(std::make_shared<World>(), rl::shard_units(*recomputed, {}),
                                      ShardingOptions{ShardMode::none, true, at::kFloat});
  recomputed->set_layer_runner(s);
  loss_of(*plain, batch(0, 4)).backward();
  loss_of(*recomputed, batch(0, 4)).backward();
  auto a = plain->named_parameters(), b = recomputed->named_parameters();
  int64_t compared = 0;
  for (const auto& p : a) {
    ASSERT_EQ(p.value().grad().defined(), b[p.key()].grad().defined()) << p.key();
    if (!p.value().grad().defined()) continue;
    EXPECT_TRUE(p.value().grad().equal(b[p.key()].grad())) << p.key();
    ++compared;
  }
  EXPECT_GT(compared, 40);
}

TEST(DistSharding, StateSavedOnTwoRanksLoadsOnOneAndOnTwoBitForBit) {
  if (!backend_available("gloo")) GTEST_SKIP() << "built without the gloo headers (Debian libgloo-dev)";
  const std::string dir = (test::fresh_temp_dir("sharding_state") / "shards").string();
  // Moments that are functions of each element of the master (so any layout of slices can be checked), 0 on
  // the padding.
  auto moments = [](const at::Tensor& master) {
    return Sharding::Moments{master * 2, master * master * 3, 7};
  };
  std::vector<std::pair<std::string, at::Tensor>> saved_whole;
  on_two_ranks([&](const std::shared_ptr<World>& world) {
    model::Transformer m = make_model();
    {
      // Weights that are not the initialisation's, different per parameter.
      c10::NoGradGuard no_grad;
      int64_t k = 0;
      for (auto& p : m->parameters())
        p.add_(0.01 * static_cast<double>(++k));
    }
    rl::ParallelLayout layout;
    layout.world = world;
    Sharding s(world, rl::shard_units(*m, layout), ShardingOptions{ShardMode::full, false, at::kFloat});
    s.save(dir, moments);
    auto whole = s.full_tensors();
    if (world->rank() == 0) saved_whole = whole;
    world->barrier();
    // Back on two ranks: the same masters, and the moments saved with them.
    model::Transformer fresh = make_model();
    Sharding t(world, rl::shard_units(*fresh, layout), ShardingOptions{ShardMode::grads, false, at::kFloat});
    int64_t installed = 0;
    t.load(dir, [&](const at::Tensor& master, const Sharding::Moments& mo) {
      const Sharding::Moments want = moments(master);
      EXPECT_TRUE(mo.exp_avg.equal(want.exp_avg));
      EXPECT_TRUE(mo.exp_avg_sq.equal(want.exp_avg_sq));
      EXPECT_EQ(mo.step, 7);
      ++installed;
    });
    EXPECT_EQ(installed, static_cast<int64_t>(t.masters().size()));
    const auto mine = s.masters(), theirs = t.masters();
    ASSERT_EQ(mine.size(), theirs.size());
    for (size_t i = 0; i < mine.size(); ++i)
      EXPECT_TRUE(mine[i].equal(theirs[i]));
    // grads mode keeps the module's weights whole: they are the loaded values.
    auto named = fresh->named_parameters();
    for (const auto& [name, value] : whole)
      EXPECT_TRUE(named[name].equal(value)) << name;
  });
  ASSERT_FALSE(saved_whole.empty());
  // On one process (a world of one): every slice is read from the two files.
  model::Transformer one = make_model();
  Sharding s(std::make_shared<World>(), rl::shard_units(*one, {}),
             ShardingOptions{ShardMode::optimizer, false, at::kFloat});
  int64_t installed = 0;
  s.load(dir, [&](const at::Tensor& master, const Sharding::Moments& mo) {
    EXPECT_TRUE(mo.exp_avg.equal(moments(master).exp_avg));
    EXPECT_TRUE(mo.exp_avg_sq.equal(moments(master).exp_avg_sq));
    ++installed;
  });
  EXPECT_EQ(installed, static_cast<int64_t>(s.masters().size()));
  auto named = one->named_parameters();
  for (const auto& [name, value] : saved_whole)
    EXPECT_TRUE(named[name].equal(value)) << name;
}

TEST(DistSharding, Bf16ComputeGathersBf16WeightsFromFp32Masters) {
  model::Transformer m = make_model();
  const at::Tensor before =
      m->model->layers[0]->named_parameters()["self_attn.o_proj.weight"].detach().clone();
  Sharding s(std::make_shared<World>(), rl::shard_units(*m, {}),
             ShardingOptions{ShardMode::grads, false, at::kBFloat16});
  const at::Tensor w = m->model->layers[0]->named_parameters()["self_attn.o_proj.weight"];
  EXPECT_EQ(w.scalar_type(), at::kBFloat16);
  EXPECT_TRUE(w.equal(before.to(at::kBFloat16)));
  EXPECT_EQ(m->model->layers[1]->named_parameters()["mlp.gate.weight"].scalar_type(), at::kFloat);  // router
  for (const auto& master : s.masters())
    EXPECT_EQ(master.scalar_type(), at::kFloat);
  // The masters keep the fp32 values the bf16 weights lost.
  const auto whole = s.full_tensors();
  for (const auto& [name, value] : whole)
    if (name == "model.layers.0.self_attn.o_proj.weight") {
      EXPECT_TRUE(value.equal(before));
    }
}

}  // namespace
}  // namespace aha::dist
