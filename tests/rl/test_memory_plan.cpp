// aha plan's arithmetic (rl/memory_plan.h) on DeepSeek-V3's config, by hand: 16 bytes per trained parameter
// unsharded (fp32 weight, gradient, two moments), MTP weights held but not trained; sharding divides each
// part by W exactly (padding aside); expert parallelism divides the experts' share; bf16 halves the kept
// weights. (That the trainer's live bytes match it is checked end to end in
// tests/dist/test_dist_trainer.cpp.)
#include "aha/rl/memory_plan.h"

#include <gtest/gtest.h>

#include "../support/error_of.h"
#include "aha/model/summary.h"

namespace aha::rl {
namespace {

PlanInput v3(const std::string& shard, int64_t world, int64_t experts) {
  PlanInput in;
  in.model = model::load_hf_config(std::string(AHA_SOURCE_DIR) + "/configs/model/deepseek-v3/config.json");
  in.shard = shard;
  in.world_size = world;
  in.expert_parallel = experts;
  return in;
}

TEST(MemoryPlan, DeepSeekV3ByHand) {
  const PlanInput one = v3("none", 1, 1);
  const model::ModelSummary s = model::summarize(one.model);
  ASSERT_EQ(s.total_parameters, 671026419200);  // aha info's figure (671.03 B)
  const MemoryPlan p = plan_memory(one);
  EXPECT_EQ(p.params, 4 * (s.total_parameters + s.mtp_parameters));
  EXPECT_EQ(p.grads, 4 * s.total_parameters);
  EXPECT_EQ(p.optimizer, 8 * s.total_parameters);
  // 256 ranks, fully sharded: a 256th of each (masters, gradients, moments), nothing kept whole.
  const MemoryPlan f = plan_memory(v3("full", 256, 1));
  EXPECT_EQ(f.params, p.params / 256);
  EXPECT_EQ(f.grads, p.grads / 256);
  EXPECT_EQ(f.optimizer, p.optimizer / 256);
  EXPECT_GT(f.gathered, 0);
  // Expert parallelism alone: whole weights but only 1/8 of the routed experts per rank.
  const MemoryPlan e = plan_memory(v3("none", 8, 8));
  const int64_t experts = s.routed_expert_parameters + s.mtp_routed_expert_parameters;
  EXPECT_EQ(e.params, p.params - 4 * experts + 4 * experts / 8);
  // ZeRO-1 keeps whole gradients besides the slices; ZeRO-2 only the slices.
  EXPECT_EQ(plan_memory(v3("optimizer", 16, 1)).grads, p.grads + p.grads / 16);
  EXPECT_EQ(plan_memory(v3("grads", 16, 1)).grads, p.grads / 16);
  // bf16 compute: the weights kept whole (ZeRO-2) take 2 bytes, the masters still 4.
  PlanInput bf = v3("grads", 16, 1);
  bf.precision = "bf16";
  EXPECT_EQ(plan_memory(bf).params, p.params / 2 + p.params / 16);
  // Checkpointing keeps each layer's input instead of its activations.
  PlanInput ck = v3("full", 256, 8);
  const int64_t kept = plan_memory(ck).activations;
  ck.activation_checkpointing = true;
  EXPECT_LT(plan_memory(ck).activations, kept / 10);
}

TEST(MemoryPlan, ErrorsNameTheBadSetting) {
  EXPECT_NE(test::error_of([] {
              plan_memory(v3("full", 6, 4));
            }).find("dist.expert_parallel 4 must divide the world size 6"),
            std::string::npos);
  EXPECT_NE(test::error_of([] { plan_memory(v3("zero3", 4, 1)); }).find("dist.shard must be"),
            std::string::npos);
  EXPECT_NE(test::error_of([] { plan_memory(v3("full", 6, 3)); }).find("256 routed experts"),
            std::string::npos);
}

}  // namespace
}  // namespace aha::rl
