#include "aha/rl/memory_plan.h"

#include <algorithm>

#include "aha/core/error.h"
#include "aha/model/summary.h"

namespace aha::rl {

MemoryPlan plan_memory(const PlanInput& in) {
  const model::ModelConfig& c = in.model;
  const int64_t w = in.world_size, n = in.expert_parallel;
  AHA_CHECK(w >= 1, "world size must be at least 1, got ", w);
  AHA_CHECK(n >= 1 && w % n == 0, "dist.expert_parallel ", n, " must divide the world size ", w);
  AHA_CHECK(c.n_routed_experts % n == 0, "dist.expert_parallel ", n, " must divide the ", c.n_routed_experts,
            " routed experts");
  AHA_CHECK(in.shard == "none" || in.shard == "optimizer" || in.shard == "grads" || in.shard == "full",
            "dist.shard must be none, optimizer, grads or full, got \"", in.shard, "\"");
  AHA_CHECK(in.precision == "fp32" || in.precision == "bf16" || in.precision == "fp8",
            "model.precision must be fp32, bf16 or fp8, got \"", in.precision, "\"");
  const model::ModelSummary s = model::summarize(c);
  const bool sharded = in.shard != "none";
  // Bytes of a module weight: the compute dtype when sharded (bf16 only changes it), fp32 otherwise.
  const int64_t b = sharded && in.precision == "bf16" ? 2 : 4;
  // Replicated weights (MTP's included), this rank's experts, and what gets gradients and moments.
  const int64_t all = s.total_parameters + s.mtp_parameters;
  const int64_t replicated = all - s.routed_expert_parameters - s.mtp_routed_expert_parameters;
  const int64_t experts = (s.routed_expert_parameters + s.mtp_routed_expert_parameters) / n;
  const int64_t trained_replicated = s.total_parameters - s.routed_expert_parameters;
  const int64_t trained_experts = s.routed_expert_parameters / n;
  const int64_t trained_all = trained_replicated + s.routed_expert_parameters;  // over all ranks' experts

  MemoryPlan p;
  if (!sharded) {
    p.params = 4 * (replicated + experts);
    p.grads = 4 * (trained_replicated + trained_experts);
    p.optimizer = 8 * (trained_replicated + trained_experts);
  } else {
    const int64_t masters = 4 * all / w, master_grads = 4 * trained_all / w;
    const int64_t module = in.shard == "full" ? 0 : b * (replicated + experts);
    p.params = module + masters;
    // ZeRO-1 sums whole gradients before taking its slice: both exist at once.
    p.grads = master_grads + (in.shard == "optimizer" ? b * (trained_replicated + trained_experts) : 0);
    p.optimizer = 8 * trained_all / w;
    if (in.shard == "full") {
      const int64_t largest_experts = c.n_routed_experts * 3 * c.hidden_size * c.moe_intermediate_size;
      p.gathered =
          b * (s.root_parameters + s.largest_layer_parameters - largest_experts + largest_experts / n);
    }
  }

  // Activations of one micro-batch (estimate): per token and layer, what autograd keeps for the backward
  // pass.
  const int64_t d = c.hidden_size, h = c.num_attention_heads, t = in.prompt_tokens + in.completion_tokens;
  const int64_t a = sharded && in.precision == "bf16" ? 2 : 4;
  const int64_t q = c.q_lora_rank ? 2 * *c.q_lora_rank : 0;
  const int64_t attention = 2 * d + q + 2 * h * c.qk_head_dim() + 2 * c.kv_lora_rank + c.qk_rope_head_dim +
                            h * (c.qk_nope_head_dim + c.v_head_dim) + h * c.v_head_dim + d;
  const int64_t scores_bytes = 4 * h * t;  // the softmax's probabilities, fp32
  const int64_t moe = c.num_experts_per_tok * (d + 3 * c.moe_intermediate_size) + 2 * c.n_routed_experts + d +
                      3 * c.moe_intermediate_size * c.n_shared_experts;
  const int64_t dense = d + 3 * c.intermediate_size;
  int64_t layers = 0, widest = 0;
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    const int64_t layer = a * (attention + (c.is_moe_layer(i) ? moe : dense)) + scores_bytes;
    layers += layer;
    widest = std::max(widest, layer);
  }
  const int64_t tokens = in.micro_batch * t;
  // With checkpointing: each layer's input, and one layer recomputed at a time.
  const int64_t per_token = in.activation_checkpointing ? a * d * c.num_hidden_layers + widest : layers;
  const int64_t logits = 2 * 4 * in.micro_batch * in.completion_tokens * c.vocab_size;  // logits, log-softmax
  p.activations = tokens * per_token + logits;

  p.rollout_weights = b * (replicated + experts);
  p.kv_cache = in.rollout_rows * t * s.kv_cache_values_per_token * b;
  return p;
}

}  // namespace aha::rl
