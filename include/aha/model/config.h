// ModelConfig: the DeepSeek-V3 architecture, field for field as HF `config.json` names it, with HF's
// defaults.
//
// `from_hf_json` reads a config.json as transformers writes it (5.x `rope_parameters`, or the older
// `rope_theta` + `rope_scaling`; `num_mtp_layers` or `num_nextn_predict_layers`; eos as a number or a list),
// ignores keys that do not describe the architecture (`architectures`, `transformers_version`, ...), and
// checks types and ranges. `validate` checks what must hold between fields, each error naming the field(s).
// Facts: ../shared/spec/deepseek-v3-model.md.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "aha/core/config_json.h"

namespace aha::model {

// YaRN context extension (rope_type "yarn"); absent means plain RoPE.
struct RopeScaling {
  std::string rope_type = "yarn";
  double factor = 1.0;
  int64_t original_max_position_embeddings = 4096;
  double beta_fast = 32;
  double beta_slow = 1;
  std::optional<double> mscale;
  std::optional<double> mscale_all_dim;
  std::optional<double> attention_factor;  // overrides the value derived from mscale / mscale_all_dim
  bool truncate = true;                    // floor/ceil the correction range, as HF does by default

  template <class V>
  void visit(V& v) {
    v("rope_type", rope_type, "RoPE scaling type", Constraint::one_of({"yarn"}));
    v("factor", factor, "context extension factor", Constraint::at_least(1));
    v("original_max_position_embeddings", original_max_position_embeddings, "pretraining context length",
      Constraint::at_least(1));
    v("beta_fast", beta_fast, "YaRN correction range bound (fast rotations)", Constraint::greater_than(0));
    v("beta_slow", beta_slow, "YaRN correction range bound (slow rotations)", Constraint::greater_than(0));
    v("mscale", mscale, "YaRN mscale of the cos/sin attention factor");
    v("mscale_all_dim", mscale_all_dim, "YaRN mscale applied to the softmax scale (squared)");
    v("attention_factor", attention_factor, "explicit cos/sin scaling (default: derived from mscale)");
    v("truncate", truncate, "round the correction range to whole dimensions");
  }
};

struct ModelConfig {
  int64_t vocab_size = 129280;
  int64_t hidden_size = 7168;
  int64_t intermediate_size = 18432;
  int64_t moe_intermediate_size = 2048;
  int64_t num_hidden_layers = 61;
  int64_t num_attention_heads = 128;
  int64_t num_key_value_heads = 128;
  int64_t n_shared_experts = 1;
  int64_t n_routed_experts = 256;
  double routed_scaling_factor = 2.5;
  int64_t kv_lora_rank = 512;
  std::optional<int64_t> q_lora_rank = 1536;
  int64_t qk_rope_head_dim = 64;
  int64_t v_head_dim = 128;
  int64_t qk_nope_head_dim = 128;
  int64_t n_group = 8;
  int64_t topk_group = 4;
  int64_t num_experts_per_tok = 8;
  int64_t first_k_dense_replace = 3;
  bool norm_topk_prob = true;
  std::string hidden_act = "silu";
  int64_t max_position_embeddings = 4096;
  double initializer_range = 0.02;
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000;
  std::optional<RopeScaling> rope_scaling;
  bool rope_interleave = true;
  bool attention_bias = false;
  double attention_dropout = 0.0;
  bool tie_word_embeddings = false;
  int64_t num_nextn_predict_layers = 1;
  std::optional<int64_t> pad_token_id;
  std::optional<int64_t> bos_token_id = 0;
  std::vector<int64_t> eos_token_id = {1};
  std::string torch_dtype = "bfloat16";  // dtype the checkpoint's weights are stored in
  Json quantization_config =
      nullptr;  // {"quant_method": "fp8", "weight_block_size": [128, 128], ...} or null

  template <class V>
  void visit(V& v) {
    auto pos = Constraint::at_least(1);
    v("vocab_size", vocab_size, "vocabulary size V", pos);
    v("hidden_size", hidden_size, "model width D", pos);
    v("intermediate_size", intermediate_size, "width of the dense layers' MLP", pos);
    v("moe_intermediate_size", moe_intermediate_size, "width of one expert", pos);
    v("num_hidden_layers", num_hidden_layers, "decoder layers (MTP layers not counted)", pos);
    v("num_attention_heads", num_attention_heads, "attention heads H", pos);
    v("num_key_value_heads", num_key_value_heads, "must equal num_attention_heads for MLA", pos);
    v("n_shared_experts", n_shared_experts,
      "shared experts per MoE layer (their MLP is this many experts wide)", Constraint::at_least(0));
    v("n_routed_experts", n_routed_experts, "routed experts per MoE layer E", pos);
    v("routed_scaling_factor", routed_scaling_factor, "multiplier of the routed experts' weights",
      Constraint::greater_than(0));
    v("kv_lora_rank", kv_lora_rank, "compressed KV width r (the latent cached per token)", pos);
    v("q_lora_rank", q_lora_rank, "query low-rank width; null: a plain q_proj", pos);
    v("qk_rope_head_dim", qk_rope_head_dim, "rotary part of each query/key head", pos);
    v("v_head_dim", v_head_dim, "value head width", pos);
    v("qk_nope_head_dim", qk_nope_head_dim, "non-rotary part of each query/key head", pos);
    v("n_group", n_group, "expert groups for group-limited routing", pos);
    v("topk_group", topk_group, "groups kept per token", pos);
    v("num_experts_per_tok", num_experts_per_tok, "routed experts per token K", pos);
    v("first_k_dense_replace", first_k_dense_replace, "layers before this index use a dense MLP",
      Constraint::at_least(0));
    v("norm_topk_prob", norm_topk_prob, "normalise the K routing weights to sum to 1");
    v("hidden_act", hidden_act, "MLP activation", Constraint::one_of({"silu"}));
    v("max_position_embeddings", max_position_embeddings, "longest context", pos);
    v("initializer_range", initializer_range, "std of the initial weights of a fresh model",
      Constraint::at_least(0));
    v("rms_norm_eps", rms_norm_eps, "RMSNorm epsilon", Constraint::greater_than(0));
    v("rope_theta", rope_theta, "RoPE base", Constraint::greater_than(0));
    v("rope_scaling", rope_scaling, "YaRN parameters, or null for plain RoPE");
    v("rope_interleave", rope_interleave,
      "rotary pairs are interleaved (x0,x1),(x2,x3)... as DeepSeek stores them");
    v("attention_bias", attention_bias, "biases on q_a_proj, kv_a_proj_with_mqa and o_proj");
    v("attention_dropout", attention_dropout, "attention dropout (training only)", Constraint::range(0, 1));
    v("tie_word_embeddings", tie_word_embeddings, "lm_head shares the embedding matrix");
    v("num_nextn_predict_layers", num_nextn_predict_layers, "multi-token-prediction depth (0: none)",
      Constraint::at_least(0));
    v("pad_token_id", pad_token_id, "padding token id");
    v("bos_token_id", bos_token_id, "beginning-of-sequence token id");
    v("eos_token_id", eos_token_id, "end-of-sequence token id(s)");
    v("torch_dtype", torch_dtype, "dtype of the stored weights",
      Constraint::one_of({"float32", "bfloat16", "float16"}));
    v("quantization_config", quantization_config, "FP8 block quantisation of the stored weights, or null");
  }

  int64_t qk_head_dim() const { return qk_nope_head_dim + qk_rope_head_dim; }
  bool is_moe_layer(int64_t layer) const { return layer >= first_k_dense_replace; }
  // Bytes of compressed KV cache per token per layer at `bytes_per_value` (kv_lora_rank + qk_rope_head_dim
  // values).
  int64_t kv_cache_values_per_token() const { return kv_lora_rank + qk_rope_head_dim; }
};

// Checks between fields (heads, groups, experts); throws aha::Error naming `source` and the field.
void validate(const ModelConfig& c, const std::string& source);

// Reads an HF config.json object (see the top of this file). `source` names it in errors.
ModelConfig from_hf_json(const Json& j, const std::string& source);
ModelConfig load_hf_config(const std::string& path_to_config_json);

// The config.json transformers 5.x writes for this config (model_type, architectures, rope_parameters, ...).
Json to_hf_json(const ModelConfig& c);

}  // namespace aha::model
