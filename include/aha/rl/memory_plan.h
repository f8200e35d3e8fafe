// What a GRPO run holds per rank, in bytes, from the model's config alone (`aha plan`): the training state
// that dist.shard divides (weights, gradients, AdamW moments: what the trainer's mem/* metrics measure on
// live tensors), and estimates of what comes and goes (gathered weights, activations of a micro-batch,
// rollout weights and KV cache).
//
// Counted as the trainer holds them (rl/trainer.h, dist/sharding.h): masters and moments fp32; module weights
// in the compute dtype when sharded (model.precision bf16: 2 bytes), fp32 otherwise; the routed experts of a
// rank are 1/N of them (dist.expert_parallel N), sharded over their W/N replicas; the MTP modules' weights
// are held but get no gradient and no moments in GRPO (their loss is not used). Padding of the flat slices is
// ignored (at most W - 1 elements per unit and dtype).
#pragma once

#include <cstdint>
#include <string>

#include "aha/model/config.h"

namespace aha::rl {

struct PlanInput {
  model::ModelConfig model;
  int64_t world_size = 1;
  std::string shard = "none";      // dist.shard
  int64_t expert_parallel = 1;     // dist.expert_parallel
  std::string precision = "fp32";  // model.precision
  bool activation_checkpointing = false;
  int64_t micro_batch = 32;          // train.micro_batch_size
  int64_t prompt_tokens = 256;       // a prompt's length
  int64_t completion_tokens = 1024;  // rollout.max_new_tokens
  int64_t rollout_rows = 128;        // completions a rank samples at once (prompts_per_step x G / W)
};

struct MemoryPlan {
  int64_t params = 0;           // at rest: module weights kept plus fp32 masters (mem/params)
  int64_t grads = 0;            // gradients at their peak between backward and step (mem/grads)
  int64_t optimizer = 0;        // AdamW's two moments (mem/optimizer)
  int64_t gathered = 0;         // dist.shard full: weights whole at once in a step (the root and one layer)
  int64_t activations = 0;      // kept for the backward pass of one micro-batch (an estimate)
  int64_t rollout_weights = 0;  // whole weights while sampling (this rank's experts)
  int64_t kv_cache = 0;         // the rollout's compressed MLA cache
  int64_t state() const { return params + grads + optimizer; }
};

// Throws naming the bad value (an unknown shard mode, N not dividing W or the experts, ...).
MemoryPlan plan_memory(const PlanInput& input);

}  // namespace aha::rl
