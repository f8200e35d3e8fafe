#include "aha/model/transformer.h"

#include <ATen/ATen.h>
#include <torch/nn/init.h>
#include <torch/utils.h>

#include <limits>

#include "aha/core/error.h"

namespace aha::model {

DecoderLayerImpl::DecoderLayerImpl(const ModelConfig& c, int64_t layer_index) {
  self_attn = register_module("self_attn", Mla(c));
  if (c.is_moe_layer(layer_index)) {
    moe = register_module("mlp", Moe(c));
  } else {
    dense = register_module("mlp", Mlp(c.hidden_size, c.intermediate_size));
  }
  input_layernorm = register_module("input_layernorm", RMSNorm(c.hidden_size, c.rms_norm_eps));
  post_attention_layernorm =
      register_module("post_attention_layernorm", RMSNorm(c.hidden_size, c.rms_norm_eps));
}

at::Tensor DecoderLayerImpl::forward(const at::Tensor& h, const at::Tensor& cos, const at::Tensor& sin,
                                     const at::Tensor& mask, const Rope& rope, at::Tensor* load) {
  const at::Tensor a = h + self_attn(input_layernorm(h), cos, sin, mask, rope);
  const at::Tensor x = post_attention_layernorm(a);
  return a + (moe ? moe(x, load) : dense(x));
}

BackboneImpl::BackboneImpl(const ModelConfig& c) {
  embed_tokens = register_module("embed_tokens", torch::nn::Embedding(c.vocab_size, c.hidden_size));
  layers = register_module("layers", torch::nn::ModuleList());
  for (int64_t i = 0; i < c.num_hidden_layers; ++i)
    layers->push_back(DecoderLayer(c, i));
  norm = register_module("norm", RMSNorm(c.hidden_size, c.rms_norm_eps));
}

TransformerImpl::TransformerImpl(const ModelConfig& c) : config_(c), rope_(c) {
  validate(c, "model config");
  model = register_module("model", Backbone(c));
  if (!c.tie_word_embeddings)
    lm_head = register_module("lm_head", Linear(c.hidden_size, c.vocab_size, false));
  init_weights(0);
}

at::Tensor causal_mask(const at::Tensor& attention_mask, int64_t batch, int64_t length, at::ScalarType dtype,
                       const at::Device& device) {
  const auto opts = at::TensorOptions().device(device);
  at::Tensor allowed = at::ones({length, length}, opts.dtype(at::kBool)).tril().view({1, 1, length, length});
  if (attention_mask.defined()) {
    AHA_CHECK(
        attention_mask.dim() == 2 && attention_mask.size(0) == batch && attention_mask.size(1) == length,
        "attention_mask must be [", batch, ", ", length, "], got ", attention_mask.sizes());
    allowed = allowed & attention_mask.to(device).to(at::kBool).view({batch, 1, 1, length});
  } else {
    allowed = allowed.expand({batch, 1, length, length});
  }
  const double lowest = dtype == at::kBFloat16 ? -3.3895313892515355e38
                        : dtype == at::kHalf   ? -65504.0
                        : dtype == at::kDouble ? std::numeric_limits<double>::lowest()
                                               : std::numeric_limits<float>::lowest();
  return at::zeros({batch, 1, length, length}, opts.dtype(dtype)).masked_fill(allowed.logical_not(), lowest);
}

at::Tensor default_positions(const at::Tensor& attention_mask, int64_t batch, int64_t length,
                             const at::Device& device) {
  if (!attention_mask.defined())
    return at::arange(length, at::TensorOptions().dtype(at::kLong).device(device))
        .unsqueeze(0)
        .expand({batch, length});
  return (attention_mask.to(device).to(at::kLong).cumsum(1) - 1).clamp_min(0);
}

ForwardOutput TransformerImpl::forward(const ForwardInput& in) {
  AHA_CHECK(in.input_ids.defined() && in.input_ids.dim() == 2, "input_ids must be [batch, length], got ",
            in.input_ids.defined() ? in.input_ids.sizes() : at::IntArrayRef{});
  const int64_t b = in.input_ids.size(0), t = in.input_ids.size(1);
  const at::Device device = model->embed_tokens->weight.device();
  const at::Tensor ids = in.input_ids.to(device);
  const int64_t max_id = t > 0 ? ids.max().item<int64_t>() : 0,
                min_id = t > 0 ? ids.min().item<int64_t>() : 0;
  AHA_CHECK(min_id >= 0 && max_id < config_.vocab_size, "token id out of range [0, ", config_.vocab_size,
            "): min ", min_id, ", max ", max_id);
  const at::Tensor positions = in.position_ids.defined() ? in.position_ids.to(device)
                                                         : default_positions(in.attention_mask, b, t, device);
  auto [cos, sin] = rope_.cos_sin(positions);
  at::Tensor h = model->embed_tokens(ids);
  const at::Tensor mask = causal_mask(in.attention_mask, b, t, h.scalar_type(), device);

  ForwardOutput out;
  out.expert_load = at::zeros({num_moe_layers(), config_.n_routed_experts}, at::kLong);
  int64_t moe_index = 0;
  for (size_t i = 0; i < model->layers->size(); ++i) {
    auto layer = model->layers[i]->as<DecoderLayerImpl>();
    if (layer->moe) {
      at::Tensor load = out.expert_load[moe_index++];
      h = layer->forward(h, cos, sin, mask, rope_, &load);
    } else {
      h = layer->forward(h, cos, sin, mask, rope_);
    }
  }
  out.hidden = model->norm(h);
  if (in.compute_logits) out.logits = logits(out.hidden);
  return out;
}

at::Tensor TransformerImpl::logits(const at::Tensor& hidden) {
  return lm_head ? lm_head(hidden) : at::linear(hidden, model->embed_tokens->weight);
}

void TransformerImpl::init_weights(uint64_t seed) {
  torch::NoGradGuard no_grad;
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  const double std = config_.initializer_range;
  for (auto& p : named_parameters()) {
    const std::string& name = p.key();
    at::Tensor& t = p.value();
    const bool is_norm = name.find("norm.weight") != std::string::npos;
    const bool is_bias = name.size() >= 5 && name.compare(name.size() - 5, 5, ".bias") == 0;
    at::Tensor value;
    if (is_norm) {
      value = at::ones(t.sizes(), at::kFloat);
    } else if (is_bias) {
      value = at::zeros(t.sizes(), at::kFloat);
    } else {
      value = at::normal(0.0, std, t.sizes(), gen, at::kFloat);
    }
    t.copy_(value);
  }
  for (auto& b : named_buffers())
    b.value().zero_();
}

void TransformerImpl::cast(at::ScalarType dtype) {
  AHA_CHECK(dtype == at::kFloat || dtype == at::kBFloat16 || dtype == at::kHalf,
            "the model computes in float32, bfloat16 or float16, not ", dtype);
  torch::NoGradGuard no_grad;
  for (auto& p : named_parameters()) {
    const bool router = p.key().find(".mlp.gate.weight") != std::string::npos;
    at::Tensor& t = p.value();
    const at::ScalarType want = router ? at::kFloat : dtype;
    if (t.scalar_type() != want) t.set_data(t.to(want));
  }
}

at::ScalarType TransformerImpl::dtype() const {
  return model->embed_tokens->weight.scalar_type();
}

}  // namespace aha::model
