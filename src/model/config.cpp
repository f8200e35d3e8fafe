#include "aha/model/config.h"

#include <set>

#include "aha/io/file.h"

namespace aha::model {
namespace {

struct KeyCollector {
  std::set<std::string> keys;
  template <class F>
  void operator()(const char* key, F&, const char*, const Constraint& = {}) {
    keys.insert(key);
  }
};

}  // namespace

void validate(const ModelConfig& c, const std::string& source) {
  auto fail = [&](const std::string& field, const std::string& why) {
    throw Error(why, source + ": " + field);
  };
  if (c.num_key_value_heads != c.num_attention_heads)
    fail("num_key_value_heads",
         "multi-head latent attention needs num_key_value_heads == num_attention_heads (" +
             std::to_string(c.num_attention_heads) + "), got " + std::to_string(c.num_key_value_heads));
  if (c.qk_rope_head_dim % 2 != 0) fail("qk_rope_head_dim", "must be even (rotary dimensions come in pairs)");
  if (c.n_routed_experts % c.n_group != 0)
    fail("n_group", "n_routed_experts (" + std::to_string(c.n_routed_experts) +
                        ") is not divisible by n_group (" + std::to_string(c.n_group) + ")");
  if (c.topk_group > c.n_group)
    fail("topk_group", "topk_group (" + std::to_string(c.topk_group) + ") is greater than n_group (" +
                           std::to_string(c.n_group) + ")");
  const int64_t per_group = c.n_routed_experts / c.n_group;
  if (c.n_group > 1 && per_group < 2)
    fail("n_group",
         "group scores sum the top 2 experts of each group: need at least 2 experts per group, got " +
             std::to_string(per_group));
  if (c.num_experts_per_tok > c.topk_group * per_group)
    fail("num_experts_per_tok",
         "num_experts_per_tok (" + std::to_string(c.num_experts_per_tok) +
             ") exceeds the experts in the kept groups (topk_group * experts per group = " +
             std::to_string(c.topk_group * per_group) + ")");
  if (c.first_k_dense_replace > c.num_hidden_layers)
    fail("first_k_dense_replace",
         "is greater than num_hidden_layers (" + std::to_string(c.num_hidden_layers) + ")");
  for (int64_t id : c.eos_token_id)
    if (id < 0 || id >= c.vocab_size)
      fail("eos_token_id", "token id " + std::to_string(id) + " outside the vocabulary");
  if (!c.quantization_config.is_null()) {
    const Json& q = c.quantization_config;
    if (!q.is_object() || q.value("quant_method", "") != "fp8")
      fail("quantization_config", "only {\"quant_method\": \"fp8\"} block quantisation is supported");
    if (q.contains("weight_block_size") && q["weight_block_size"] != Json::array({128, 128}))
      fail("quantization_config.weight_block_size",
           "only [128, 128] blocks are supported, got " + q["weight_block_size"].dump());
    if (q.contains("fmt") && q["fmt"] != "e4m3")
      fail("quantization_config.fmt", "only e4m3 is supported, got " + q["fmt"].dump());
  }
}

ModelConfig from_hf_json(const Json& in, const std::string& source) {
  if (!in.is_object()) throw Error("config.json must be a JSON object", source);
  if (in.contains("model_type") && in["model_type"].is_string() && in["model_type"] != "deepseek_v3")
    throw Error("model_type is " + in["model_type"].dump() + ", aha implements \"deepseek_v3\"", source);
  Json j = in;
  // transformers 5.x: rope_parameters {rope_type, rope_theta, factor, ...}; older: rope_theta + rope_scaling.
  if (j.contains("rope_parameters") && j["rope_parameters"].is_object()) {
    Json rp = j["rope_parameters"];
    if (rp.contains("rope_theta")) j["rope_theta"] = rp["rope_theta"];
    rp.erase("rope_theta");
    rp.erase("partial_rotary_factor");
    const std::string type = rp.value("rope_type", rp.value("type", "default"));
    if (type == "default") {
      j["rope_scaling"] = nullptr;
    } else if (!j.contains("rope_scaling") || j["rope_scaling"].is_null()) {
      j["rope_scaling"] = rp;
    }
  }
  if (j.contains("rope_scaling") && j["rope_scaling"].is_object()) {
    Json& rs = j["rope_scaling"];
    if (rs.contains("type") && !rs.contains("rope_type")) rs["rope_type"] = rs["type"];
    rs.erase("type");
    if (rs.value("rope_type", "") == "default") j["rope_scaling"] = nullptr;
  }
  if (j.contains("num_mtp_layers") && !j.contains("num_nextn_predict_layers"))
    j["num_nextn_predict_layers"] = j["num_mtp_layers"];
  if (j.contains("eos_token_id") && j["eos_token_id"].is_number_integer())
    j["eos_token_id"] = Json::array({j["eos_token_id"]});
  if (j.contains("eos_token_id") && j["eos_token_id"].is_null()) j["eos_token_id"] = Json::array();
  if (j.contains("dtype") && !j.contains("torch_dtype")) j["torch_dtype"] = j["dtype"];
  if (j.contains("num_key_value_heads") && j["num_key_value_heads"].is_null()) j.erase("num_key_value_heads");

  // Only the architecture's keys are read; the rest (architectures, transformers_version, use_cache, ...) is
  // not ours to interpret.
  ModelConfig c;
  KeyCollector known;
  c.visit(known);
  Json filtered = Json::object();
  for (auto it = j.begin(); it != j.end(); ++it)
    if (known.keys.count(it.key())) filtered[it.key()] = it.value();
  if (!filtered.contains("num_key_value_heads") && filtered.contains("num_attention_heads"))
    filtered["num_key_value_heads"] = filtered["num_attention_heads"];
  from_json(filtered, c, source);
  validate(c, source);
  return c;
}

ModelConfig load_hf_config(const std::string& path) {
  return from_hf_json(read_json_file(path), path);
}

Json to_hf_json(const ModelConfig& c) {
  Json j = to_json(c);
  Json out = Json::object();
  out["architectures"] = Json::array({"DeepseekV3ForCausalLM"});
  out["model_type"] = "deepseek_v3";
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string& k = it.key();
    if (k == "rope_scaling" || k == "rope_theta" || k == "quantization_config" || k == "torch_dtype")
      continue;
    out[k] = it.value();
  }
  out["dtype"] = c.torch_dtype;  // transformers 5.x's name for it
  out["eos_token_id"] = c.eos_token_id.size() == 1 ? Json(c.eos_token_id[0]) : Json(c.eos_token_id);
  Json rp = Json::object();
  rp["rope_theta"] = c.rope_theta;
  if (c.rope_scaling) {
    const Json scaling = to_json(*c.rope_scaling);  // a named value: items() of a temporary would dangle
    for (auto [k, v] : scaling.items())
      if (!v.is_null()) rp[k] = v;
  } else {
    rp["rope_type"] = "default";
  }
  out["rope_parameters"] = rp;
  if (!c.quantization_config.is_null()) out["quantization_config"] = c.quantization_config;
  return out;
}

}  // namespace aha::model
