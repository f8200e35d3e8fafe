#include "aha/rl/policy.h"

#include <torch/cuda.h>

#include <filesystem>

#include "aha/core/error.h"
#include "aha/core/log.h"
#include "aha/io/file.h"
#include "aha/model/checkpoint.h"
#include "aha/model/config.h"
#include "aha/model/linear.h"
#include "aha/model/moe.h"
#include "aha/rl/tasks.h"
#include "aha/text/char_tokenizer.h"

namespace aha::rl {

namespace fs = std::filesystem;

std::vector<std::string> architecture_presets() {
  return {"tiny"};
}

model::ModelConfig architecture_preset(const std::string& name, const text::Tokenizer& tokenizer) {
  AHA_CHECK(name == "tiny", "unknown model.architecture '", name,
            "': a built-in preset (tiny) or the path of an HF config.json");
  model::ModelConfig c;
  c.vocab_size = tokenizer.vocab_size();
  c.hidden_size = 128;
  c.intermediate_size = 384;
  c.moe_intermediate_size = 128;
  c.num_hidden_layers = 4;
  c.first_k_dense_replace = 1;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 4;
  c.n_routed_experts = 8;
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
  c.max_position_embeddings = 1024;
  c.rope_scaling.reset();
  c.num_nextn_predict_layers = 1;
  c.torch_dtype = "float32";
  const auto special = tokenizer.special_tokens();
  c.bos_token_id = special.bos;
  c.pad_token_id = special.pad;
  c.eos_token_id.clear();
  if (special.eos) c.eos_token_id.push_back(*special.eos);
  model::validate(c, "preset " + name);
  return c;
}

at::Device resolve_device(const std::string& name) {
  if (name == "auto") return torch::cuda::is_available() ? at::Device(at::kCUDA, 0) : at::Device(at::kCPU);
  if (name == "cpu") return at::kCPU;
  if (name.rfind("cuda", 0) == 0) {
    AHA_CHECK(torch::cuda::is_available(), "model.device is ", name, " but no CUDA device is available");
    return at::Device(name);
  }
  AHA_FAIL("model.device must be auto, cpu, cuda or cuda:N, got \"", name, "\"");
}

at::ScalarType resolve_dtype(const std::string& precision) {
  if (precision == "fp32") return at::kFloat;
  if (precision == "bf16") return at::kBFloat16;
  // fp8: the attention and MLP linears compute in FP8 (enable_fp8_linears); the rest keeps fp32.
  if (precision == "fp8") return at::kFloat;
  AHA_FAIL("model.precision must be fp32, bf16 or fp8, got \"", precision, "\"");
}

Policy make_policy(const ModelSection& m, const DataSection& data, bool on_host) {
  Policy p;
  p.device = resolve_device(m.device);
  p.dtype = resolve_dtype(m.precision);
  std::string tok_path = m.tokenizer;
  if (tok_path.empty() && !m.path.empty() && fs::exists(fs::path(m.path) / "tokenizer.json"))
    tok_path = (fs::path(m.path) / "tokenizer.json").string();
  if (tok_path.empty() || tok_path == "task") {
    AHA_CHECK(m.path.empty() || data.source == "task", "model.path ", m.path,
              " has no tokenizer.json: set model.tokenizer");
    const Json j = task_tokenizer_json();
    p.tokenizer_json = j.dump(1);
    p.tokenizer =
        std::make_unique<text::CharTokenizer>(text::CharTokenizer::from_json(j, "the task vocabulary"));
  } else {
    p.tokenizer_json = io::read_file(tok_path);
    p.tokenizer = text::load_tokenizer(tok_path);
  }
  if (!m.path.empty()) {
    p.model = model::load_pretrained(m.path, {.dtype = at::kFloat, .device = at::kCPU});
    AHA_CHECK(p.model->config().vocab_size >= p.tokenizer->vocab_size(), "the tokenizer has ",
              p.tokenizer->vocab_size(), " tokens but the model at ", m.path, " only ",
              p.model->config().vocab_size);
  } else {
    model::ModelConfig c = fs::exists(m.architecture) ? model::load_hf_config(m.architecture)
                                                      : architecture_preset(m.architecture, *p.tokenizer);
    if (fs::exists(m.architecture))
      AHA_CHECK(c.vocab_size >= p.tokenizer->vocab_size(), m.architecture, ": vocab_size ", c.vocab_size,
                " is smaller than the tokenizer's ", p.tokenizer->vocab_size());
    p.model = model::Transformer(c);
    p.model->init_weights(m.init_seed);
  }
  // Master weights stay fp32; lower precisions are a compute concern (the model casts where it computes).
  if (m.precision == "fp8") {
    const bool ue8m0 = m.fp8_scales == "ue8m0";
    const int64_t n = model::enable_fp8_linears(*p.model, ue8m0);
    const int64_t e = model::enable_fp8_experts(*p.model, ue8m0);
    log::info("model.precision fp8: ", n, " linear layers and ", e,
              " routed-expert modules compute in FP8 (E4M3, 1x128 / 128x128 scales, ", m.fp8_scales, ")");
  }
  if (!on_host) p.model->to(p.device);
  return p;
}

void copy_weights(torch::nn::Module& dst, torch::nn::Module& src) {
  c10::NoGradGuard no_grad;
  auto d = dst.named_parameters(true);
  for (const auto& item : src.named_parameters(true))
    d[item.key()].copy_(item.value());
  auto db = dst.named_buffers(true);
  for (const auto& item : src.named_buffers(true))
    db[item.key()].copy_(item.value());
}

void save_policy(Policy& p, const std::string& dir) {
  model::save_pretrained(*p.model, dir, {.dtype = at::kFloat});
  if (!p.tokenizer_json.empty())
    io::write_file_atomic((fs::path(dir) / "tokenizer.json").string(), p.tokenizer_json);
}

}  // namespace aha::rl
