// The policy a run trains: the model, its tokenizer, and where they live. Shared by `aha train`, `aha
// pretrain` and `aha eval`.
//
// model.path names an HF checkpoint directory (config.json + safetensors, tokenizer.json beside it); when it
// is empty, a fresh model is built from model.architecture (a built-in preset, or the path of an HF
// config.json) with the vocabulary size of the tokenizer and initialised from model.init_seed. The tokenizer
// is model.tokenizer when set, else the checkpoint's tokenizer.json, else the built-in task vocabulary
// (tasks.h).
//
// Built-in architecture presets:
//   tiny   a DeepSeek-V3-style model small enough for a laptop CPU: 4 layers (the first dense), hidden 128,
//          MLA with kv_lora_rank 32 and 4 heads, 8 routed experts (top 2) + 1 shared, one MTP module; about
//          1 M parameters with the task vocabulary.
#pragma once

#include <ATen/core/Tensor.h>

#include <memory>
#include <string>

#include "aha/core/config.h"
#include "aha/model/transformer.h"
#include "aha/text/tokenizer.h"

namespace aha::rl {

struct Policy {
  model::Transformer model{nullptr};
  std::unique_ptr<text::Tokenizer> tokenizer;
  std::string tokenizer_json;  // the tokenizer file's text, written beside saved checkpoints
  at::Device device = at::kCPU;
  at::ScalarType dtype = at::kFloat;
};

// The ModelConfig of a preset with `vocab_size` and the special ids of `tokenizer`; throws naming unknown
// presets.
model::ModelConfig architecture_preset(const std::string& name, const text::Tokenizer& tokenizer);
std::vector<std::string> architecture_presets();

// Builds (or loads) the policy described by `model` (+ `data`, for the task vocabulary). With `on_host` the
// model stays on the CPU (policy.device still names where it will compute: full sharding moves it there in
// slices, dist/sharding.h).
Policy make_policy(const ModelSection& model, const DataSection& data, bool on_host = false);

// Copies every parameter and buffer of `src` into `dst` (same architecture).
void copy_weights(torch::nn::Module& dst, torch::nn::Module& src);

// Saves the model in HF format (fp32 master weights) and its tokenizer.json into `dir`.
void save_policy(Policy& policy, const std::string& dir);

// The device named by model.device ("auto": cuda when available).
at::Device resolve_device(const std::string& name);
at::ScalarType resolve_dtype(const std::string& precision);

}  // namespace aha::rl
