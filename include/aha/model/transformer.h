// The DeepSeek-V3 causal language model: embeddings, decoder layers (MLA + dense MLP or MoE), final norm,
// lm_head.
//
// Submodules carry HF's names, so `named_parameters()` yields checkpoint keys directly
// ("model.layers.3.self_attn.kv_b_proj.weight"), except the experts, which are held fused (see moe.h).
// Left-padded batches: pass attention_mask (1 = token, 0 = padding); positions then default to cumsum(mask) -
// 1, and padded keys are masked with the dtype's lowest value (not -inf) so no NaN can arise in padded rows.
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/pimpl.h>

#include <memory>

#include "aha/model/config.h"
#include "aha/model/kv_cache.h"
#include "aha/model/layer_runner.h"
#include "aha/model/mla.h"
#include "aha/model/moe.h"
#include "aha/model/norm.h"
#include "aha/model/rope.h"

namespace aha::model {

class DecoderLayerImpl : public torch::nn::Module {
 public:
  DecoderLayerImpl(const ModelConfig& c, int64_t layer_index);
  // h [B, T, D] -> [B, T, D]; `stats` is filled by MoE layers. With `prefix`, h is a prefix batch's flat
  // run of tokens (mla.h) and `mask` is unused.
  at::Tensor forward(const at::Tensor& h, const at::Tensor& cos, const at::Tensor& sin,
                     const at::Tensor& mask, const Rope& rope, MoeStats* stats = nullptr,
                     const PrefixLayout* prefix = nullptr);

  RMSNorm input_layernorm{nullptr};
  Mla self_attn{nullptr};
  RMSNorm post_attention_layernorm{nullptr};
  Mlp dense{nullptr};  // registered as "mlp" in dense layers
  Moe moe{nullptr};    // registered as "mlp" in MoE layers
};
TORCH_MODULE(DecoderLayer);

// A multi-token-prediction module (DeepSeek-V3, depth k): from the main model's hidden state h_i (before the
// final norm) and the embedding of token t_{i+k}, x_i = eh_proj([enorm(emb(t_{i+k})) ; hnorm(h_i)]), then one
// more decoder layer, then shared_head (norm, head) predicts t_{i+k+1}. Keys: model.layers.{num_hidden_layers
// + k - 1}.* (transformers ignores them; aha loads them when present).
class MtpLayerImpl : public DecoderLayerImpl {
 public:
  MtpLayerImpl(const ModelConfig& c, int64_t layer_index);
  torch::nn::Embedding embed_tokens{nullptr};
  RMSNorm enorm{nullptr}, hnorm{nullptr};
  Linear eh_proj{nullptr};
  std::shared_ptr<torch::nn::Module> shared_head;  // holds "norm" and "head"
  RMSNorm head_norm{nullptr};
  Linear head{nullptr};
};
TORCH_MODULE(MtpLayer);

// HF's `model.`: embeddings, layers, final norm.
class BackboneImpl : public torch::nn::Module {
 public:
  BackboneImpl(const ModelConfig& c, int64_t mtp_layers);
  torch::nn::Embedding embed_tokens{nullptr};
  torch::nn::ModuleList layers{nullptr};
  RMSNorm norm{nullptr};
};
TORCH_MODULE(Backbone);

struct ForwardInput {
  at::Tensor input_ids;       // [B, T] int64
  at::Tensor attention_mask;  // [B, T], 1 = token, 0 = padding; undefined: every position is a token
  at::Tensor position_ids;    // [B, T]; undefined: cumsum(attention_mask) - 1, clamped at 0
  bool compute_logits = true;
  double balance_alpha = 0.0;  // > 0: compute the sequence-wise balance loss (summed over MoE layers)
  bool compute_mtp = false;    // also run the multi-token-prediction modules (when the model has them)
};

// Rows that share a prefix (the G completions of one GRPO prompt), for forward_prefix_batch: each prefix
// runs once and its keys and values serve every row that continues it.
struct PrefixBatchInput {
  at::Tensor prefix_ids, prefix_mask;  // [P, Lp] int64, right-padded (mask 1 = token; >= 1 token each)
  at::Tensor suffix_ids, suffix_mask;  // [N, Ls] int64, right-padded; Ls >= 1
  at::Tensor prefix_of;                // [N] int64: the prefix row n continues
};

struct ForwardOutput {
  at::Tensor logits;        // [B, T, V], in the model's dtype
  at::Tensor hidden;        // [B, T, D], after the final norm
  at::Tensor expert_load;   // [num MoE layers, E] int64: tokens routed to each expert in this pass
  at::Tensor balance_loss;  // scalar, when balance_alpha > 0
  // Per MTP depth k (1-based index k-1): logits [B, T-k, V]; row i predicts token i + k + 1.
  std::vector<at::Tensor> mtp_logits;
};

class TransformerImpl : public torch::nn::Module {
 public:
  // Builds the MTP modules when `with_mtp` (and the config asks for them).
  explicit TransformerImpl(const ModelConfig& c, bool with_mtp = true);

  ForwardOutput forward(const ForwardInput& in);
  // forward() of the rows prefix + suffix without running a shared prefix once per row: the same values up
  // to fp32 rounding, with (Lp + Ls) N positions cut to Lp P + Ls N. out.hidden [N, 1 + Ls, D] (after the
  // final norm): index 0 is the state after the row's prefix (it predicts suffix token 0), 1 + t the state
  // after suffix token t. out.expert_load counts a prefix token once per row that continues it and no
  // padding. No logits, MTP or balance loss.
  ForwardOutput forward_prefix_batch(const PrefixBatchInput& in);

  // Incremental decoding with the absorbed attention: runs `ids` [B, Tn] (token mask `mask` [B, Tn],
  // undefined: all real) after what `cache` holds, writes their latents into it, and returns their logits [B,
  // Tn, V]. A prompt's prefill is a call with its (left-padded) ids; each sampling step is a call with Tn
  // = 1.
  ForwardOutput decode(const at::Tensor& ids, const at::Tensor& mask, KvCache& cache);
  KvCache make_cache(int64_t batch, int64_t capacity) const;
  at::Tensor logits(const at::Tensor& hidden);  // [.., D] -> [.., V]

  // HF's initialisation: N(0, initializer_range) for every matrix, ones for norms, zeros for biases and the
  // routing bias. Deterministic for a seed.
  void init_weights(uint64_t seed);
  // Casts to `dtype` (fp32/bf16/fp16), keeping the router's weight and bias in fp32 as HF does.
  void cast(at::ScalarType dtype);
  at::ScalarType dtype() const;

  // Who runs the decoder layers in forward() (layer_runner.h); null: the layers are called directly.
  // decode() always calls them directly (the sampler runs on whole weights).
  void set_layer_runner(std::shared_ptr<LayerRunner> runner) { runner_ = std::move(runner); }
  const std::shared_ptr<LayerRunner>& layer_runner() const { return runner_; }

  const ModelConfig& config() const { return config_; }
  const Rope& rope() const { return rope_; }
  int64_t num_moe_layers() const { return config_.num_hidden_layers - config_.first_k_dense_replace; }
  int64_t num_mtp_layers() const { return mtp_layers_; }  // MTP modules built (0 when none)

  Backbone model{nullptr};
  Linear lm_head{nullptr};  // null when tie_word_embeddings: logits use model.embed_tokens.weight

 private:
  // Layer `index` on `h` (through the runner when there is one).
  LayerOutput run_layer(int64_t index, const at::Tensor& h, const LayerBody& body);

  ModelConfig config_;
  Rope rope_;
  int64_t mtp_layers_ = 0;
  std::shared_ptr<LayerRunner> runner_;
};
TORCH_MODULE(Transformer);

// The most negative finite value of `dtype`: masked scores get it (not -inf, so fully masked rows stay
// finite).
double lowest_value(at::ScalarType dtype);

// Additive attention mask [B, 1, T, T] in `dtype`: 0 where key k may be seen by query q (k <= q and k is a
// token), the dtype's lowest value elsewhere. `attention_mask` [B, T] may be undefined (no padding).
at::Tensor causal_mask(const at::Tensor& attention_mask, int64_t batch, int64_t length, at::ScalarType dtype,
                       const at::Device& device);

// The multi-token-prediction loss of DeepSeek-V3: lambda / D * sum over depths k of the mean cross-entropy of
// out.mtp_logits[k-1][:, i] against token i + k + 1, over positions whose input and target tokens are both
// real. `ids`, `attention_mask` [B, T] (mask may be undefined). Needs a forward with compute_mtp.
at::Tensor mtp_loss(const ForwardOutput& out, const at::Tensor& ids, const at::Tensor& attention_mask,
                    double lambda);

// Positions for left-padded rows: cumsum(mask) - 1, clamped at 0; arange(T) per row without a mask.
at::Tensor default_positions(const at::Tensor& attention_mask, int64_t batch, int64_t length,
                             const at::Device& device);

}  // namespace aha::model
