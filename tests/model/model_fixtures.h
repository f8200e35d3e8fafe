// Shared helpers of the model tests: the transformers-made fixtures in tests/data/model/
// (scripts/make_model_fixtures.py).
#pragma once

#include <ATen/ATen.h>

#include <optional>
#include <string>
#include <vector>

#include "aha/core/config_json.h"
#include "aha/model/transformer.h"

namespace aha::test {

inline std::string model_fixture(const std::string& name) {
  return std::string(AHA_TEST_DATA) + "/model/" + name;
}

inline const std::vector<std::string>& parity_fixtures() {
  static const std::vector<std::string> names = {"yarn_qlora_groups", "plain_no_qlora", "yarn_mtp_sharded",
                                                 "fp8_blocks"};
  return names;
}

inline at::Tensor json_to_long(const Json& rows) {
  std::vector<int64_t> flat;
  for (const auto& row : rows)
    for (const auto& v : row)
      flat.push_back(v.get<int64_t>());
  return at::tensor(flat, at::kLong).view({static_cast<int64_t>(rows.size()), -1});
}

inline model::ForwardInput fixture_inputs(const std::string& name) {
  const Json j = read_json_file(model_fixture(name) + "/inputs.json");
  model::ForwardInput in;
  in.input_ids = json_to_long(j["input_ids"]);
  in.attention_mask = json_to_long(j["attention_mask"]);
  in.position_ids = json_to_long(j["position_ids"]);
  return in;
}

// Max |a - b| over the positions where mask [B, T] is 1; a, b [B, T, V].
inline double masked_max_diff(const at::Tensor& a, const at::Tensor& b, const at::Tensor& mask) {
  const at::Tensor keep = mask.to(at::kBool).unsqueeze(-1).expand_as(a);
  return (a.to(at::kFloat) - b.to(at::kFloat)).abs().masked_select(keep).max().item<double>();
}

// A small fp32 model: a dense layer, then a MoE layer of 4 routed experts (128 wide: one FP8 block) + 1
// shared.
inline model::ModelConfig two_layer_moe_config() {
  model::ModelConfig c;
  c.vocab_size = 48;
  c.hidden_size = 128;
  c.intermediate_size = 384;
  c.moe_intermediate_size = 128;
  c.num_hidden_layers = 2;
  c.first_k_dense_replace = 1;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 4;
  c.n_routed_experts = 4;
  c.n_shared_experts = 1;
  c.num_experts_per_tok = 2;
  c.n_group = 1;
  c.topk_group = 1;
  c.routed_scaling_factor = 1.0;
  c.kv_lora_rank = 32;
  c.q_lora_rank = std::nullopt;
  c.qk_rope_head_dim = 16;
  c.qk_nope_head_dim = 32;
  c.v_head_dim = 32;
  c.max_position_embeddings = 256;
  c.num_nextn_predict_layers = 0;
  c.torch_dtype = "float32";
  return c;
}

}  // namespace aha::test
