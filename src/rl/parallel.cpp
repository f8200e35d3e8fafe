#include "aha/rl/parallel.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include <map>

#include "aha/core/error.h"
#include "aha/dist/process_group.h"
#include "aha/model/moe.h"
#include "aha/rl/optimizer.h"

namespace aha::rl {

ParallelLayout make_parallel_layout(std::shared_ptr<dist::World> world, int64_t n, int64_t routed_experts) {
  ParallelLayout l;
  l.world = std::move(world);
  l.expert_parallel = n;
  if (n == 1) return l;
  const int64_t w = l.world->size();
  AHA_CHECK(n > 0 && w % n == 0, "dist.expert_parallel ", n, " must divide the world size ", w,
            " (each group of ", n, " ranks holds every expert once)");
  AHA_CHECK(routed_experts > 0 && routed_experts % n == 0, "dist.expert_parallel ", n,
            " must divide the model's number of routed experts (n_routed_experts ", routed_experts, ")");
  const int64_t r = l.world->rank();
  l.experts = l.world->split(r / n, "expert-parallel group " + std::to_string(r / n));
  l.replicas = l.world->split(r % n, "replicas of expert block " + std::to_string(r % n));
  l.exchange = std::make_shared<dist::GroupExpertComm>(l.experts);
  return l;
}

void split_experts(model::TransformerImpl& model, const ParallelLayout& layout) {
  if (layout.expert_parallel == 1) return;
  for (const auto& m : model.modules())
    if (auto* experts = dynamic_cast<model::ExpertsImpl*>(m.get()))
      experts->set_expert_parallel(layout.exchange);
}

std::vector<std::pair<std::string, at::Tensor>> gather_experts(model::TransformerImpl& model,
                                                               const ParallelLayout& layout) {
  std::vector<std::pair<std::string, at::Tensor>> out;
  if (layout.expert_parallel == 1) return out;
  c10::NoGradGuard no_grad;
  for (const auto& p : model.named_parameters()) {
    if (!is_routed_expert(p.key())) continue;
    std::vector<int64_t> shape = p.value().sizes().vec();
    shape[0] *= layout.experts->size();
    at::Tensor whole = at::empty(shape, p.value().options());
    layout.experts->all_gather(p.value().detach().contiguous(), whole);
    if (layout.world->rank() == 0) out.emplace_back(p.key(), whole);
  }
  return out;
}

bool is_routed_expert(const std::string& name) {
  return name.find(".mlp.experts.") != std::string::npos;
}

std::vector<dist::ShardUnit> shard_units(model::TransformerImpl& model, const ParallelLayout& layout) {
  std::vector<dist::ShardUnit> units(1);
  units[0].name = "root";
  std::map<int64_t, size_t> of_layer;
  static const std::string kLayers = "model.layers.";
  for (const auto& item : model.named_parameters(true)) {
    const std::string& name = item.key();
    dist::ShardParam p;
    p.name = name;
    p.tensor = item.value();
    p.decay = decays(name, item.value());
    p.keep_fp32 = name.find(".mlp.gate.weight") != std::string::npos;  // the router, as TransformerImpl::cast
    size_t u = 0;
    if (name.rfind(kLayers, 0) == 0) {
      const int64_t layer = std::stoll(name.substr(kLayers.size()));
      auto it = of_layer.find(layer);
      if (it == of_layer.end()) {
        it = of_layer.emplace(layer, units.size()).first;
        units.emplace_back();
        units.back().name = "layer " + std::to_string(layer);
        units.back().layer = layer;
      }
      u = it->second;
      if (layout.expert_parallel > 1 && is_routed_expert(name)) {
        p.group = layout.replicas;
        p.split_over = layout.experts;
      }
    }
    units[u].params.push_back(std::move(p));
  }
  return units;
}

}  // namespace aha::rl
