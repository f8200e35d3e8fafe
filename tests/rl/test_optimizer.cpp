// The learning-rate schedule by hand, and AdamW's weight-decay exclusions.
#include "aha/rl/optimizer.h"

#include <gtest/gtest.h>
#include <torch/optim/adamw.h>

#include <cmath>

#include "aha/model/transformer.h"
#include "aha/rl/policy.h"
#include "aha/rl/tasks.h"
#include "aha/text/char_tokenizer.h"

namespace aha::rl {
namespace {

TEST(Schedule, WarmupThenConstantOrCosine) {
  OptimSection o;
  o.lr = 1.0;
  o.warmup_steps = 4;
  EXPECT_DOUBLE_EQ(scheduled_lr(o, 0, 104), 0.25);
  EXPECT_DOUBLE_EQ(scheduled_lr(o, 3, 104), 1.0);
  EXPECT_DOUBLE_EQ(scheduled_lr(o, 50, 104), 1.0);
  o.schedule = "cosine";
  o.min_lr_ratio = 0.1;
  EXPECT_DOUBLE_EQ(scheduled_lr(o, 4, 104), 1.0);                 // start of the decay
  EXPECT_NEAR(scheduled_lr(o, 54, 104), 0.1 + 0.9 * 0.5, 1e-12);  // halfway
  EXPECT_NEAR(scheduled_lr(o, 104, 104), 0.1, 1e-12);             // the floor
  EXPECT_NEAR(scheduled_lr(o, 500, 104), 0.1, 1e-12);             // and it stays there
}

TEST(AdamW, NoDecayOnNormsBiasesAndEmbeddings) {
  auto tok = text::CharTokenizer::from_json(task_tokenizer_json(), "task");
  model::Transformer m(architecture_preset("tiny", tok));
  OptimSection o;
  o.weight_decay = 0.1;
  std::vector<at::Tensor> trainable;
  auto opt = make_adamw(*m, o, &trainable);
  ASSERT_EQ(opt->param_groups().size(), 2u);
  const auto& decay = opt->param_groups()[0];
  const auto& exempt = opt->param_groups()[1];
  EXPECT_DOUBLE_EQ(static_cast<const torch::optim::AdamWOptions&>(decay.options()).weight_decay(), 0.1);
  EXPECT_DOUBLE_EQ(static_cast<const torch::optim::AdamWOptions&>(exempt.options()).weight_decay(), 0.0);
  for (const auto& p : decay.params())
    EXPECT_GE(p.dim(), 2);
  const at::Tensor embed = m->model->embed_tokens->weight;
  bool embed_exempt = false;
  for (const auto& p : exempt.params())
    embed_exempt |= p.is_same(embed);
  EXPECT_TRUE(embed_exempt);
  EXPECT_EQ(trainable.size(), decay.params().size() + exempt.params().size());
  set_lr(*opt, 0.5);
  for (const auto& g : opt->param_groups())
    EXPECT_DOUBLE_EQ(static_cast<const torch::optim::AdamWOptions&>(g.options()).lr(), 0.5);
}

}  // namespace
}  // namespace aha::rl
