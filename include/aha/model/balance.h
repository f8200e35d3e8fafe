// Auxiliary-loss-free load balancing (DeepSeek-V3): after each optimizer step, every MoE layer nudges its
// routing bias, b_i += gamma * sign(mean load - load_i), so overloaded experts get picked less and
// underloaded ones more. The bias only steers selection (moe.h); it never scales an expert's output and
// receives no gradient. The complementary sequence-wise balance loss is `sequence_balance_loss` in moe.h
// (ForwardInput::balance_alpha).
#pragma once

#include <ATen/core/Tensor.h>

#include "aha/model/transformer.h"

namespace aha::model {

// `expert_load` [num MoE layers, E]: tokens per expert, summed over the step (and over ranks in distributed
// runs).
void update_routing_bias(TransformerImpl& model, const at::Tensor& expert_load, double gamma);

// max load / mean load per MoE layer ([num MoE layers] float): 1 is perfect balance.
at::Tensor load_imbalance(const at::Tensor& expert_load);

}  // namespace aha::model
