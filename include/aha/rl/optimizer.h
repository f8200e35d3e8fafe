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

// AdamW over the trainable parameters of `model`; `trainable` receives them (for gradient clipping).
std::unique_ptr<torch::optim::AdamW> make_adamw(torch::nn::Module& model, const OptimSection& optim,
                                                std::vector<at::Tensor>* trainable);

// The learning rate of step `step` (0-based) of a run of `total_steps`.
double scheduled_lr(const OptimSection& optim, int64_t step, int64_t total_steps);

// The optimizer's state (Adam moments, step counts) to and from a file (written atomically).
void save_optimizer(torch::optim::AdamW& optimizer, const std::string& path);
void load_optimizer(torch::optim::AdamW& optimizer, const std::string& path);

// Sets the learning rate of every parameter group.
void set_lr(torch::optim::AdamW& optimizer, double lr);

}  // namespace aha::rl
