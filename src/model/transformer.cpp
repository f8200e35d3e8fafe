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
                                     const at::Tensor& mask, const Rope& rope, MoeStats* stats,
                                     const PrefixLayout* prefix) {
  const at::Tensor n = input_layernorm(h);
  const at::Tensor a = h + (prefix ? self_attn->forward_prefix(n, cos, sin, *prefix, rope)
                                   : self_attn(n, cos, sin, mask, rope));
  const at::Tensor x = post_attention_layernorm(a);
  return a + (moe ? moe(x, stats) : dense(x));
}

MtpLayerImpl::MtpLayerImpl(const ModelConfig& c, int64_t layer_index) : DecoderLayerImpl(c, layer_index) {
  embed_tokens = register_module("embed_tokens", torch::nn::Embedding(c.vocab_size, c.hidden_size));
  enorm = register_module("enorm", RMSNorm(c.hidden_size, c.rms_norm_eps));
  hnorm = register_module("hnorm", RMSNorm(c.hidden_size, c.rms_norm_eps));
  eh_proj = register_module("eh_proj", Linear(2 * c.hidden_size, c.hidden_size, false));
  shared_head = register_module("shared_head", std::make_shared<torch::nn::Module>());
  head_norm = shared_head->register_module("norm", RMSNorm(c.hidden_size, c.rms_norm_eps));
  head = shared_head->register_module("head", Linear(c.hidden_size, c.vocab_size, false));
}

BackboneImpl::BackboneImpl(const ModelConfig& c, int64_t mtp_layers) {
  embed_tokens = register_module("embed_tokens", torch::nn::Embedding(c.vocab_size, c.hidden_size));
  layers = register_module("layers", torch::nn::ModuleList());
  for (int64_t i = 0; i < c.num_hidden_layers; ++i)
    layers->push_back(DecoderLayer(c, i));
  for (int64_t k = 0; k < mtp_layers; ++k)
    layers->push_back(MtpLayer(c, c.num_hidden_layers + k));
  norm = register_module("norm", RMSNorm(c.hidden_size, c.rms_norm_eps));
}

TransformerImpl::TransformerImpl(const ModelConfig& c, bool with_mtp)
    : config_(c), rope_(c), mtp_layers_(with_mtp ? c.num_nextn_predict_layers : 0) {
  validate(c, "model config");
  model = register_module("model", Backbone(c, mtp_layers_));
  if (!c.tie_word_embeddings)
    lm_head = register_module("lm_head", Linear(c.hidden_size, c.vocab_size, false));
  init_weights(0);
}

double lowest_value(at::ScalarType dtype) {
  switch (dtype) {
    case at::kBFloat16:
      return -3.3895313892515355e38;
    case at::kHalf:
      return -65504.0;
    case at::kDouble:
      return std::numeric_limits<double>::lowest();
    default:
      return std::numeric_limits<float>::lowest();
  }
}

// Every id in [0, vocab): the error names the range and the offending extremes.
void check_token_ids(const at::Tensor& ids, int64_t vocab) {
  const int64_t max_id = ids.numel() > 0 ? ids.max().item<int64_t>() : 0,
                min_id = ids.numel() > 0 ? ids.min().item<int64_t>() : 0;
  AHA_CHECK(min_id >= 0 && max_id < vocab, "token id out of range [0, ", vocab, "): min ", min_id, ", max ",
            max_id);
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
  return at::zeros({batch, 1, length, length}, opts.dtype(dtype))
      .masked_fill(allowed.logical_not(), lowest_value(dtype));
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
  check_token_ids(ids, config_.vocab_size);
  const at::Tensor positions = in.position_ids.defined() ? in.position_ids.to(device)
                                                         : default_positions(in.attention_mask, b, t, device);
  auto [cos, sin] = rope_.cos_sin(positions);
  at::Tensor h = model->embed_tokens(ids);
  const at::Tensor mask = causal_mask(in.attention_mask, b, t, h.scalar_type(), device);

  ForwardOutput out;
  out.expert_load = at::zeros({num_moe_layers(), config_.n_routed_experts}, at::kLong);
  int64_t moe_index = 0;
  at::Tensor balance;
  const double alpha = in.balance_alpha;
  const at::Tensor token_mask = in.attention_mask;
  for (int64_t i = 0; i < config_.num_hidden_layers; ++i) {
    auto layer = model->layers->ptr<DecoderLayerImpl>(i);
    // Captured by value: a runner may call the body again in the backward pass, after forward() returned.
    const at::Tensor load = layer->moe ? out.expert_load[moe_index++] : at::Tensor();
    const LayerBody body = [layer, load, alpha, token_mask, cos, sin, mask, this](const at::Tensor& x,
                                                                                  bool recompute) {
      if (!layer->moe) return LayerOutput{layer->forward(x, cos, sin, mask, rope_), at::Tensor()};
      MoeStats stats{recompute ? at::Tensor() : load, alpha, token_mask, at::Tensor()};
      at::Tensor y = layer->forward(x, cos, sin, mask, rope_, &stats);
      return LayerOutput{y, stats.balance_loss};
    };
    LayerOutput o = run_layer(i, h, body);
    h = o.hidden;
    if (o.aux.defined()) balance = balance.defined() ? balance + o.aux : o.aux;
  }
  out.balance_loss = balance;
  out.hidden = model->norm(h);
  if (in.compute_logits) out.logits = logits(out.hidden);
  // MTP depth k: position i combines h^{k-1}_i with the embedding of token i + k.
  at::Tensor prev = h;
  for (int64_t k = 1; in.compute_mtp && k <= mtp_layers_ && k < t; ++k) {
    const int64_t index = config_.num_hidden_layers + k - 1;
    auto mtp = model->layers->ptr<MtpLayerImpl>(index);
    const int64_t len = t - k;
    at::Tensor real;
    if (in.attention_mask.defined()) {
      const at::Tensor m = in.attention_mask.to(device).to(at::kBool);
      real = (m.slice(1, 0, len) & m.slice(1, k)).to(at::kLong);
    }
    const at::Tensor next_ids = ids.slice(1, k);
    const at::Tensor mtp_mask = causal_mask(real, b, len, h.scalar_type(), device);
    const at::Tensor c = cos.slice(1, 0, len), s = sin.slice(1, 0, len);
    // The whole module (its embedding, projections and head included) runs as one layer.
    const LayerBody body = [mtp, next_ids, mtp_mask, c, s, len, this](const at::Tensor& hp, bool) {
      const at::Tensor x = mtp->eh_proj(
          at::cat({mtp->enorm(mtp->embed_tokens(next_ids)), mtp->hnorm(hp.slice(1, 0, len))}, -1));
      const at::Tensor y = mtp->forward(x, c, s, mtp_mask, rope_);
      return LayerOutput{y, mtp->head(mtp->head_norm(y))};
    };
    LayerOutput o = run_layer(index, prev, body);
    prev = o.hidden;
    out.mtp_logits.push_back(o.aux);
  }
  return out;
}

ForwardOutput TransformerImpl::forward_prefix_batch(const PrefixBatchInput& in) {
  const at::Device device = model->embed_tokens->weight.device();
  const auto lng = at::TensorOptions().dtype(at::kLong).device(device);
  AHA_CHECK(
      in.prefix_ids.defined() && in.prefix_ids.dim() == 2 && in.prefix_mask.sizes() == in.prefix_ids.sizes(),
      "forward_prefix_batch: prefix_ids and prefix_mask must be [P, Lp]");
  AHA_CHECK(in.suffix_ids.defined() && in.suffix_ids.dim() == 2 &&
                in.suffix_mask.sizes() == in.suffix_ids.sizes() && in.suffix_ids.size(1) >= 1,
            "forward_prefix_batch: suffix_ids and suffix_mask must be [N, Ls] with Ls >= 1");
  AHA_CHECK(
      in.prefix_of.defined() && in.prefix_of.dim() == 1 && in.prefix_of.size(0) == in.suffix_ids.size(0),
      "forward_prefix_batch: prefix_of must be [N]");
  PrefixLayout l;
  l.prefixes = in.prefix_ids.size(0);
  l.prefix_len = in.prefix_ids.size(1);
  l.rows = in.suffix_ids.size(0);
  l.suffix_len = in.suffix_ids.size(1);
  l.prefix_of = in.prefix_of.to(lng);
  const at::Tensor pmask = in.prefix_mask.to(lng), smask = in.suffix_mask.to(lng);
  const at::Tensor prefix_tokens = pmask.sum(1);  // [P]
  AHA_CHECK(l.prefixes == 0 || prefix_tokens.min().item<int64_t>() >= 1,
            "forward_prefix_batch: every prefix needs a token");
  const int64_t pmin = l.prefix_of.numel() ? l.prefix_of.min().item<int64_t>() : 0,
                pmax = l.prefix_of.numel() ? l.prefix_of.max().item<int64_t>() : 0;
  AHA_CHECK(pmin >= 0 && pmax < std::max<int64_t>(l.prefixes, 1),
            "forward_prefix_batch: prefix_of outside [0, ", l.prefixes, ")");
  const at::Tensor ids = at::cat({in.prefix_ids.to(lng).reshape({-1}), in.suffix_ids.to(lng).reshape({-1})});
  check_token_ids(ids, config_.vocab_size);
  // Positions: a prefix from 0, a suffix after its prefix's tokens.
  const at::Tensor prefix_pos = (pmask.cumsum(1) - 1).clamp_min(0);
  const at::Tensor suffix_pos =
      prefix_tokens.index_select(0, l.prefix_of).unsqueeze(1) + (smask.cumsum(1) - 1).clamp_min(0);
  auto [cos, sin] = rope_.cos_sin(at::cat({prefix_pos.reshape({-1}), suffix_pos.reshape({-1})}).unsqueeze(0));
  at::Tensor h = model->embed_tokens(ids.unsqueeze(0));
  const at::ScalarType dtype = h.scalar_type();
  l.prefix_mask = causal_mask(pmask, l.prefixes, l.prefix_len, dtype, device);
  const at::Tensor seen = pmask.index_select(0, l.prefix_of).to(at::kBool).view({l.rows, 1, 1, l.prefix_len});
  l.suffix_mask = at::cat({at::zeros({l.rows, 1, l.suffix_len, l.prefix_len}, h.options())
                               .masked_fill(seen.logical_not(), lowest_value(dtype)),
                           causal_mask(smask, l.rows, l.suffix_len, dtype, device)},
                          -1);
  // Each token's weight in the expert loads: a prefix token stands for the rows that continue it.
  const at::Tensor uses = at::zeros({l.prefixes}, lng).index_add_(0, l.prefix_of, at::ones({l.rows}, lng));
  const at::Tensor token_weight =
      at::cat({(pmask * uses.unsqueeze(1)).reshape({-1}), smask.reshape({-1})}).cpu();

  ForwardOutput out;
  out.expert_load = at::zeros({num_moe_layers(), config_.n_routed_experts}, at::kLong);
  int64_t moe_index = 0;
  for (int64_t i = 0; i < config_.num_hidden_layers; ++i) {
    auto layer = model->layers->ptr<DecoderLayerImpl>(i);
    const at::Tensor load = layer->moe ? out.expert_load[moe_index++] : at::Tensor();
    const LayerBody body = [layer, load, token_weight, cos, sin, l, this](const at::Tensor& x,
                                                                          bool recompute) {
      MoeStats stats;
      stats.load = recompute ? at::Tensor() : load;
      stats.token_weight = token_weight;
      return LayerOutput{layer->forward(x, cos, sin, at::Tensor(), rope_, layer->moe ? &stats : nullptr, &l),
                         at::Tensor()};
    };
    h = run_layer(i, h, body).hidden;
  }
  h = model->norm(h).squeeze(0);  // [P Lp + N Ls, D]
  const int64_t split = l.prefixes * l.prefix_len;
  // The state after each row's prefix: its prefix's last token.
  const at::Tensor last = l.prefix_of * l.prefix_len + prefix_tokens.index_select(0, l.prefix_of) - 1;
  out.hidden = at::cat(
      {h.index_select(0, last).unsqueeze(1), h.slice(0, split).view({l.rows, l.suffix_len, h.size(-1)})}, 1);
  return out;
}

LayerOutput TransformerImpl::run_layer(int64_t index, const at::Tensor& h, const LayerBody& body) {
  return runner_ ? runner_->run(index, h, body) : body(h, false);
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

at::Tensor mtp_loss(const ForwardOutput& out, const at::Tensor& ids, const at::Tensor& attention_mask,
                    double lambda) {
  AHA_CHECK(!out.mtp_logits.empty(),
            "mtp_loss needs a forward pass with compute_mtp on a model with MTP modules");
  const int64_t depth = static_cast<int64_t>(out.mtp_logits.size()), t = ids.size(1);
  at::Tensor total;
  for (int64_t k = 1; k <= depth; ++k) {
    const at::Tensor& logits = out.mtp_logits[k - 1];  // [B, T-k, V]; row i predicts token i + k + 1
    const int64_t n = t - k - 1;
    if (n <= 0) continue;
    const at::Tensor target = ids.to(logits.device()).slice(1, k + 1);
    at::Tensor nll =
        at::cross_entropy_loss(logits.slice(1, 0, n).reshape({-1, logits.size(-1)}).to(at::kFloat),
                               target.reshape({-1}), {}, at::Reduction::None)
            .view({ids.size(0), n});
    at::Tensor loss;
    if (attention_mask.defined()) {
      const at::Tensor m = attention_mask.to(logits.device()).to(at::kFloat);
      const at::Tensor real = m.slice(1, 0, n) * m.slice(1, k + 1);  // first input token and target are real
      loss = (nll * real).sum() / real.sum().clamp_min(1);
    } else {
      loss = nll.mean();
    }
    total = total.defined() ? total + loss : loss;
  }
  AHA_CHECK(total.defined(), "mtp_loss: sequences of ", t, " tokens are too short for MTP depth ", depth);
  return total * (lambda / depth);
}

KvCache KvCache::create(const ModelConfig& c, int64_t batch, int64_t capacity, at::ScalarType dtype,
                        const at::Device& device) {
  KvCache k;
  const auto opts = at::TensorOptions().device(device);
  k.latent =
      at::zeros({c.num_hidden_layers, batch, capacity, c.kv_cache_values_per_token()}, opts.dtype(dtype));
  k.valid = at::zeros({batch, capacity}, opts.dtype(at::kBool));
  k.positions = at::zeros({batch}, opts.dtype(at::kLong));
  return k;
}

KvCache KvCache::select_rows(const at::Tensor& index) const {
  KvCache k;
  const at::Tensor i = index.to(latent.device());
  k.latent = latent.index_select(1, i);
  k.valid = valid.index_select(0, i);
  k.positions = positions.index_select(0, i);
  k.length = length;
  return k;
}

KvCache TransformerImpl::make_cache(int64_t batch, int64_t capacity) const {
  return KvCache::create(config_, batch, capacity, model->embed_tokens->weight.scalar_type(),
                         model->embed_tokens->weight.device());
}

ForwardOutput TransformerImpl::decode(const at::Tensor& ids_in, const at::Tensor& mask_in, KvCache& cache) {
  AHA_CHECK(ids_in.dim() == 2 && ids_in.size(0) == cache.batch(), "decode: ids must be [", cache.batch(),
            ", tokens], got ", ids_in.sizes());
  const at::Device device = model->embed_tokens->weight.device();
  const int64_t b = ids_in.size(0), tn = ids_in.size(1), start = cache.length, end = start + tn;
  AHA_CHECK(end <= cache.capacity(), "decode: the cache holds ", cache.capacity(), " positions, ", end,
            " needed");
  const at::Tensor ids = ids_in.to(device);
  const at::Tensor real = mask_in.defined() ? mask_in.to(device).to(at::kBool)
                                            : at::ones({b, tn}, ids.options().dtype(at::kBool));
  // RoPE positions continue each row's count of real tokens.
  const at::Tensor positions = (cache.positions.unsqueeze(1) + real.to(at::kLong).cumsum(1) - 1).clamp_min(0);
  cache.valid.slice(1, start, end).copy_(real);
  cache.positions += real.to(at::kLong).sum(1);
  auto [cos, sin] = rope_.cos_sin(positions);
  at::Tensor h = model->embed_tokens(ids);
  // Query i (cache index start + i) sees valid keys at indices <= start + i.
  const auto opts = at::TensorOptions().device(device);
  const at::Tensor causal = at::arange(end, opts.dtype(at::kLong)).view({1, end}) <=
                            at::arange(start, end, opts.dtype(at::kLong)).view({tn, 1});
  const at::Tensor allowed = causal.view({1, 1, tn, end}) & cache.valid.slice(1, 0, end).view({b, 1, 1, end});
  const at::Tensor mask = at::zeros({b, 1, tn, end}, opts.dtype(h.scalar_type()))
                              .masked_fill(allowed.logical_not(), lowest_value(h.scalar_type()));
  ForwardOutput out;
  out.expert_load = at::zeros({num_moe_layers(), config_.n_routed_experts}, at::kLong);
  int64_t moe_index = 0;
  for (int64_t i = 0; i < config_.num_hidden_layers; ++i) {
    auto layer = model->layers[i]->as<DecoderLayerImpl>();
    at::Tensor layer_cache = cache.latent[i];
    const at::Tensor a = h + layer->self_attn->forward_absorbed(layer->input_layernorm(h), cos, sin, mask,
                                                                rope_, layer_cache, start);
    const at::Tensor x = layer->post_attention_layernorm(a);
    if (layer->moe) {
      MoeStats stats;
      stats.load = out.expert_load[moe_index++];
      h = a + layer->moe(x, &stats);
    } else {
      h = a + layer->dense(x);
    }
  }
  cache.length = end;
  out.hidden = model->norm(h);
  out.logits = logits(out.hidden);
  return out;
}

}  // namespace aha::model
