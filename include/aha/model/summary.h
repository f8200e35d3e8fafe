// Sizes of a DeepSeek-V3 configuration, computed from the config alone (no weights allocated), so a 671B
// model can be described on a laptop: parameter counts, what each layer is, and the KV-cache cost per token.
#pragma once

#include <cstdint>
#include <string>

#include "aha/model/config.h"

namespace aha::model {

struct ModelSummary {
  int64_t total_parameters = 0;   // main model: embeddings, layers, final norm, lm_head (untied)
  int64_t active_parameters = 0;  // per token: all but the routed experts a token does not use (K of E)
  int64_t mtp_parameters = 0;     // multi-token-prediction modules, counted separately
  int64_t routed_expert_parameters = 0;      // of total_parameters: the routed experts' weights
  int64_t mtp_routed_expert_parameters = 0;  // of mtp_parameters: the routed experts' weights
  int64_t largest_layer_parameters = 0;      // the largest decoder layer (MTP modules included)
  int64_t root_parameters = 0;               // embeddings, final norm and lm_head
  int64_t dense_layers = 0, moe_layers = 0;
  int64_t kv_cache_values_per_token = 0;  // compressed latents over all layers
  std::string layer_map;                  // e.g. "D D D M M ... M" (D dense MLP, M mixture of experts)
};

ModelSummary summarize(const ModelConfig& c);

}  // namespace aha::model
