// The optimizer and learning-rate schedule shared by `aha train` and `aha pretrain`: AdamW with decoupled
// weight decay on matrices only (norms, biases and embeddings are exempt), linear warmup, then constant or
// cosine down to optim.min_lr_ratio. Keeps torch/optim out of the callers' headers.
#pragma once

#include <ATen/core/Tensor.h>

#include <memory>
#include <string>
#include <vector>

#include "aha/core/config.h"

namespace torch::nn {
class Module;
}
namespace torch::optim {
class AdamW;
}

namespace aha::rl {

// Whether AdamW's weight decay applies to the parameter `name`: matrices only (norms, biases and the
// embeddings are exempt).
bool decays(const std::string& name, const at::Tensor& param);

// AdamW over the trainable parameters of `model`; `trainable` receives them (for gradient clipping).
std::unique_ptr<torch::optim::AdamW> make_adamw(torch::nn::Module& model, const OptimSection& optim,
                                                std::vector<at::Tensor>* trainable);
// AdamW over given tensors: `decay` with optim.weight_decay, `no_decay` without (sharded runs: the masters).
std::unique_ptr<torch::optim::AdamW> make_adamw(std::vector<at::Tensor> decay,
                                                std::vector<at::Tensor> no_decay, const OptimSection& optim);

// AdamW's state of one tensor (undefined moments before its first step).
struct AdamMoments {
  at::Tensor exp_avg, exp_avg_sq;
  int64_t step = 0;
};
AdamMoments adam_moments(torch::optim::AdamW& optimizer, const at::Tensor& param);
void set_adam_moments(torch::optim::AdamW& optimizer, const at::Tensor& param, const AdamMoments& moments);
// Bytes held by the optimizer's state tensors.
int64_t optimizer_state_bytes(torch::optim::AdamW& optimizer);

// The learning rate of step `step` (0-based) of a run of `total_steps`.
double scheduled_lr(const OptimSection& optim, int64_t step, int64_t total_steps);

// The optimizer's state (Adam moments, step counts) to and from a file (written atomically).
void save_optimizer(torch::optim::AdamW& optimizer, const std::string& path);
void load_optimizer(torch::optim::AdamW& optimizer, const std::string& path);

// Sets the learning rate of every parameter group.
void set_lr(torch::optim::AdamW& optimizer, double lr);

}  // namespace aha::rl
