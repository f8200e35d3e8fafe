// HF-format checkpoints in and out: a directory with config.json and safetensors (one file, or shards with
// model.safetensors.index.json), as transformers reads and writes them.
//
// Loading accepts experts per expert (`mlp.experts.{e}.gate_proj.weight`, ...: what save_pretrained writes)
// or fused
// (`mlp.experts.gate_up_proj` [E, 2*Im, D], `mlp.experts.down_proj` [E, D, Im]); F32/BF16/F16 weights, and
// FP8 E4M3 weights with `<name>_scale_inv` [ceil(out/128), ceil(in/128)] (dequantised exactly per 128x128
// block, partial edge blocks included; an E4M3 weight of a Linear layer is also handed to the layer as it is,
// so that FP8 compute uses the shipped bits and scales: LinearImpl::set_fp8_weight; the routed experts' E4M3
// weights likewise go to ExpertsImpl::set_fp8_weights, down_proj always, the fused gate_up_proj when gate's
// rows end on a 128-row block boundary, moe_intermediate_size % 128 == 0). The keys of
// multi-token-prediction layers (index >=
// num_hidden_layers) are skipped. A missing key, an unexpected key and a shape mismatch are errors naming the
// key (and both shapes). Saving writes per-expert keys, the dtype asked for, and transformers' config.json.
#pragma once

#include <ATen/core/Tensor.h>

#include <optional>
#include <string>
#include <vector>

#include "aha/io/safetensors.h"
#include "aha/model/transformer.h"

namespace aha::model {

struct LoadOptions {
  at::ScalarType dtype = at::kFloat;  // compute dtype (the router stays fp32)
  at::Device device = at::kCPU;
};

// Reads config.json and the weights of `dir`.
Transformer load_pretrained(const std::string& dir, const LoadOptions& options = {});

// Copies the tensors of `checkpoint` into `model` (see the top of this file for what is accepted).
void load_weights(TransformerImpl& model, const io::Checkpoint& checkpoint, const std::string& source);

// W_q [out, in] (E4M3) times its 128x128 block scales [ceil(out/128), ceil(in/128)], in fp32.
at::Tensor dequantize_fp8_blocks(const at::Tensor& weight, const at::Tensor& scale_inv);

// The model's tensors under HF checkpoint keys (experts per expert), converted to `dtype` when given.
std::vector<io::NamedTensor> hf_state_dict(TransformerImpl& model, std::optional<at::ScalarType> dtype = {});

struct SaveOptions {
  std::optional<at::ScalarType> dtype;  // default: the model's dtype
  uint64_t max_shard_bytes = 5'000'000'000ull;
};

// Writes config.json and the weights into `dir` (created if missing).
void save_pretrained(TransformerImpl& model, const std::string& dir, const SaveOptions& options = {});
// The same from tensors under the module's names (fused experts as the module holds them, whole: a sharded
// or expert-parallel run gathers them first; dist/sharding.h).
std::vector<io::NamedTensor> hf_state_dict(const std::vector<io::NamedTensor>& tensors,
                                           std::optional<at::ScalarType> dtype = {});
void save_pretrained(const ModelConfig& config, const std::vector<io::NamedTensor>& tensors,
                     const std::string& dir, const SaveOptions& options = {});

}  // namespace aha::model
