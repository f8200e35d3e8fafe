#include <iomanip>
#include <iostream>

#include "aha/core/build_info.h"
#include "aha/model/summary.h"
#include "commands.h"

namespace aha::cli {
namespace {

std::string billions(int64_t n) {
  std::ostringstream os;
  os << std::fixed << std::setprecision(n >= 1'000'000'000 ? 2 : 3)
     << (n >= 1'000'000'000 ? n / 1e9 : n / 1e6) << (n >= 1'000'000'000 ? " B" : " M");
  return os.str();
}

void print_model(const std::string& dir) {
  const model::ModelConfig c = model::load_hf_config(dir + "/config.json");
  const model::ModelSummary s = model::summarize(c);
  std::cout << "model " << dir << "\n"
            << "  parameters: " << billions(s.total_parameters) << " total, " << billions(s.active_parameters)
            << " active per token";
  if (s.mtp_parameters)
    std::cout << " (+ " << billions(s.mtp_parameters) << " in " << c.num_nextn_predict_layers
              << " MTP module(s))";
  std::cout << "\n  layers: " << c.num_hidden_layers << " (" << s.dense_layers << " dense, " << s.moe_layers
            << " MoE with " << c.n_routed_experts << " routed experts, " << c.num_experts_per_tok
            << " per token, " << c.n_shared_experts << " shared)\n"
            << "  layer map: " << s.layer_map << "\n"
            << "  attention: MLA, " << c.num_attention_heads << " heads, kv_lora_rank " << c.kv_lora_rank
            << ", q_lora_rank " << (c.q_lora_rank ? std::to_string(*c.q_lora_rank) : std::string("none"))
            << (c.rope_scaling ? ", YaRN" : ", RoPE") << "\n"
            << "  KV cache per token: " << s.kv_cache_values_per_token
            << " values = " << s.kv_cache_values_per_token * 2 << " bytes in bf16\n";
}

}  // namespace

void add_info_command(CLI::App& app) {
  auto* cmd =
      app.add_subcommand("info", "print the build (versions, CUDA kernels, GPUs), or a model's sizes");
  auto model = std::make_shared<std::string>();
  cmd->add_option("--model", *model, "HF-format model directory: parameter counts, layer map, KV-cache cost");
  cmd->callback([model] {
    if (!model->empty()) {
      print_model(*model);
      return;
    }
    const BuildInfo b = build_info();
    std::cout << "aha " << b.aha_version << "\n"
              << "torch " << b.torch_version << "\n"
              << "cuda kernels (sm_90a): " << (b.cuda_kernels ? "built" : "not built") << "\n"
              << "cuda available: " << (b.cuda_available ? "yes" : "no") << "\n";
    for (size_t i = 0; i < b.gpus.size(); ++i)
      std::cout << "gpu " << i << ": " << b.gpus[i] << "\n";
  });
}

}  // namespace aha::cli
