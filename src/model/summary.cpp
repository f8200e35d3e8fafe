#include "aha/model/summary.h"

#include <algorithm>

namespace aha::model {
namespace {

struct LayerSizes {
  int64_t attention, dense_mlp, router, expert, shared, norms;
};

LayerSizes layer_sizes(const ModelConfig& c) {
  const int64_t d = c.hidden_size, h = c.num_attention_heads, r = c.kv_lora_rank;
  const int64_t dq = h * c.qk_head_dim(), bias = c.attention_bias ? 1 : 0;
  LayerSizes s{};
  s.attention =
      (c.q_lora_rank ? (d * *c.q_lora_rank + bias * *c.q_lora_rank + *c.q_lora_rank + *c.q_lora_rank * dq)
                     : d * dq) +
      d * (r + c.qk_rope_head_dim) + bias * (r + c.qk_rope_head_dim) + r +
      r * h * (c.qk_nope_head_dim + c.v_head_dim) + h * c.v_head_dim * d + bias * d;
  s.dense_mlp = 3 * d * c.intermediate_size;
  s.router = c.n_routed_experts * d + c.n_routed_experts;
  s.expert = 3 * d * c.moe_intermediate_size;
  s.shared = 3 * d * c.moe_intermediate_size * c.n_shared_experts;
  s.norms = 2 * d;
  return s;
}

}  // namespace

ModelSummary summarize(const ModelConfig& c) {
  const LayerSizes s = layer_sizes(c);
  const int64_t d = c.hidden_size, v = c.vocab_size;
  ModelSummary out;
  int64_t inactive = 0;
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    int64_t layer = s.attention + s.norms;
    if (c.is_moe_layer(i)) {
      ++out.moe_layers;
      layer += s.router + c.n_routed_experts * s.expert + s.shared;
      out.routed_expert_parameters += c.n_routed_experts * s.expert;
      inactive += (c.n_routed_experts - c.num_experts_per_tok) * s.expert;
    } else {
      ++out.dense_layers;
      layer += s.dense_mlp;
    }
    out.total_parameters += layer;
    out.largest_layer_parameters = std::max(out.largest_layer_parameters, layer);
    if (i > 0) out.layer_map += ' ';
    out.layer_map += c.is_moe_layer(i) ? 'M' : 'D';
  }
  out.root_parameters = v * d + d + (c.tie_word_embeddings ? 0 : v * d);
  out.total_parameters += out.root_parameters;
  out.active_parameters = out.total_parameters - inactive;
  // Each MTP module: its own embedding and head, two norms, eh_proj, a head norm, and one MoE decoder layer.
  const int64_t mtp_layer = s.attention + s.norms + s.router + c.n_routed_experts * s.expert + s.shared;
  const int64_t mtp_module = 2 * v * d + 3 * d + 2 * d * d + mtp_layer;
  out.mtp_parameters = c.num_nextn_predict_layers * mtp_module;
  out.mtp_routed_expert_parameters = c.num_nextn_predict_layers * c.n_routed_experts * s.expert;
  if (c.num_nextn_predict_layers > 0)
    out.largest_layer_parameters = std::max(out.largest_layer_parameters, mtp_module);
  out.kv_cache_values_per_token = c.num_hidden_layers * c.kv_cache_values_per_token();
  return out;
}

}  // namespace aha::model
