#include "aha/model/balance.h"

#include <ATen/ATen.h>
#include <torch/utils.h>

#include "aha/core/error.h"

namespace aha::model {

void update_routing_bias(TransformerImpl& model, const at::Tensor& expert_load, double gamma) {
  AHA_CHECK(expert_load.dim() == 2 && expert_load.size(0) == model.num_moe_layers() &&
                expert_load.size(1) == model.config().n_routed_experts,
            "expert_load must be [", model.num_moe_layers(), ", ", model.config().n_routed_experts, "], got ",
            expert_load.sizes());
  torch::NoGradGuard no_grad;
  int64_t moe_index = 0;
  for (int64_t i = 0; i < model.config().num_hidden_layers; ++i) {
    auto layer = model.model->layers[i]->as<DecoderLayerImpl>();
    if (!layer->moe) continue;
    at::Tensor& bias = layer->moe->gate->e_score_correction_bias;
    const at::Tensor load = expert_load[moe_index++].to(at::kFloat).to(bias.device());
    bias.add_(gamma * at::sign(load.mean() - load));
  }
}

at::Tensor load_imbalance(const at::Tensor& expert_load) {
  const at::Tensor load = expert_load.to(at::kFloat);
  return std::get<0>(load.max(1)) / load.mean(1).clamp_min(1e-12);
}

}  // namespace aha::model
