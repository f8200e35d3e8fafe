#include "aha/rl/optimizer.h"

#include <torch/nn/module.h>
#include <torch/optim/adamw.h>
#include <torch/serialize/archive.h>

#include <cmath>
#include <sstream>

#include "aha/io/file.h"

namespace aha::rl {

bool decays(const std::string& name, const at::Tensor& param) {
  return param.dim() >= 2 && name.find("embed_tokens") == std::string::npos;
}

std::unique_ptr<torch::optim::AdamW> make_adamw(torch::nn::Module& model, const OptimSection& o,
                                                std::vector<at::Tensor>* trainable) {
  std::vector<at::Tensor> decay, no_decay;
  for (const auto& item : model.named_parameters(true)) {
    if (!item.value().requires_grad()) continue;
    (decays(item.key(), item.value()) ? decay : no_decay).push_back(item.value());
    if (trainable) trainable->push_back(item.value());
  }
  return make_adamw(std::move(decay), std::move(no_decay), o);
}

std::unique_ptr<torch::optim::AdamW> make_adamw(std::vector<at::Tensor> decay,
                                                std::vector<at::Tensor> no_decay, const OptimSection& o) {
  auto opt = torch::optim::AdamWOptions(o.lr)
                 .betas({o.adam_beta1, o.adam_beta2})
                 .eps(o.adam_eps)
                 .weight_decay(o.weight_decay);
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(decay, std::make_unique<torch::optim::AdamWOptions>(opt));
  auto exempt = std::make_unique<torch::optim::AdamWOptions>(opt);
  exempt->weight_decay(0);
  groups.emplace_back(no_decay, std::move(exempt));
  return std::make_unique<torch::optim::AdamW>(groups, opt);
}

double scheduled_lr(const OptimSection& o, int64_t step, int64_t total_steps) {
  if (o.warmup_steps > 0 && step < o.warmup_steps)
    return o.lr * static_cast<double>(step + 1) / static_cast<double>(o.warmup_steps);
  if (o.schedule == "cosine") {
    const double span = static_cast<double>(std::max<int64_t>(1, total_steps - o.warmup_steps));
    const double progress = std::min(1.0, static_cast<double>(step - o.warmup_steps) / span);
    return o.lr * (o.min_lr_ratio + (1 - o.min_lr_ratio) * 0.5 * (1 + std::cos(M_PI * progress)));
  }
  return o.lr;
}

void save_optimizer(torch::optim::AdamW& optimizer, const std::string& path) {
  torch::serialize::OutputArchive ar;
  optimizer.save(ar);
  std::ostringstream os;
  ar.save_to(os);
  io::write_file_atomic(path, os.str());
}

void load_optimizer(torch::optim::AdamW& optimizer, const std::string& path) {
  torch::serialize::InputArchive ar;
  ar.load_from(path);
  optimizer.load(ar);
}

AdamMoments adam_moments(torch::optim::AdamW& optimizer, const at::Tensor& param) {
  auto& state = optimizer.state();
  const auto it = state.find(param.unsafeGetTensorImpl());
  if (it == state.end()) return {};
  const auto& s = static_cast<const torch::optim::AdamWParamState&>(*it->second);
  return {s.exp_avg(), s.exp_avg_sq(), s.step()};
}

void set_adam_moments(torch::optim::AdamW& optimizer, const at::Tensor& param, const AdamMoments& m) {
  auto s = std::make_unique<torch::optim::AdamWParamState>();
  s->step(m.step);
  s->exp_avg(m.exp_avg.to(param.device()).clone());
  s->exp_avg_sq(m.exp_avg_sq.to(param.device()).clone());
  optimizer.state()[param.unsafeGetTensorImpl()] = std::move(s);
}

int64_t optimizer_state_bytes(torch::optim::AdamW& optimizer) {
  int64_t bytes = 0;
  for (const auto& [key, state] : optimizer.state()) {
    const auto& s = static_cast<const torch::optim::AdamWParamState&>(*state);
    for (const at::Tensor& t : {s.exp_avg(), s.exp_avg_sq(), s.max_exp_avg_sq()})
      if (t.defined()) bytes += static_cast<int64_t>(t.numel()) * static_cast<int64_t>(t.element_size());
  }
  return bytes;
}

void set_lr(torch::optim::AdamW& optimizer, double lr) {
  for (auto& group : optimizer.param_groups())
    static_cast<torch::optim::AdamWOptions&>(group.options()).lr(lr);
}

}  // namespace aha::rl
