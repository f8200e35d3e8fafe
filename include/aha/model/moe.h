// The feed-forward blocks: the dense MLP of the first layers, and the mixture of experts of the rest.
//
// Router (HF order, all in fp32): s = sigmoid(x W_g^T); s' = s + e_score_correction_bias (selection only);
// group score = sum of the top-2 s' in each of n_group contiguous groups; keep topk_group groups (others
// -inf); idx = topk(s', K); w = s[idx] (unbiased), normalised to sum 1 when norm_topk_prob, times
// routed_scaling_factor. Experts are stored fused as HF holds them in memory: gate_up_proj [E, 2*Im, D] (gate
// rows first), down_proj [E, D, Im]. Dispatch sorts the (token, slot) pairs by expert and runs each expert
// once on its tokens. With set_fp8(true) the experts' GEMMs run block-scaled in FP8
// (kernels/fp8_grouped_linear.h); the fused weights stay the fp32 masters.
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include <memory>
#include <vector>

#include "aha/kernels/fp8.h"
#include "aha/model/config.h"
#include "aha/model/linear.h"

namespace aha::model {

// down(silu(gate(x)) * up(x)): the dense layers' MLP and the shared experts.
class MlpImpl : public torch::nn::Module {
 public:
  MlpImpl(int64_t hidden, int64_t intermediate);
  at::Tensor forward(const at::Tensor& x);
  Linear gate_proj{nullptr}, up_proj{nullptr}, down_proj{nullptr};
};
TORCH_MODULE(Mlp);

struct Routing {
  at::Tensor weights;  // [N, K] float32: the experts' output weights
  at::Tensor experts;  // [N, K] int64: the chosen experts
  at::Tensor scores;   // [N, E] float32: sigmoid affinities (before the bias), for the balance loss
};

// What a MoE layer reports besides its output. The caller owns it and passes it down the layers.
struct MoeStats {
  at::Tensor load;             // [E] int64, accumulated: tokens routed to each expert
  double balance_alpha = 0.0;  // > 0: accumulate the sequence-wise balance loss
  at::Tensor token_mask;       // [B, T] (1 = token) for the balance loss; undefined: every position counts
  at::Tensor balance_loss;     // scalar, accumulated over layers when balance_alpha > 0
  at::Tensor token_weight;     // [N] int64: how many tokens each of x's stands for in `load`; undefined: 1
};

// DeepSeek-V3's complementary sequence-wise balance loss of one layer, averaged over sequences:
// alpha * sum_i f_i P_i with f_i = E / (K T) * #{t : i in topk(t)} and P_i = mean_t s_it / sum_j s_jt
// (T counting real tokens only). `experts` [B, T, K], `scores` [B, T, E], `token_mask` [B, T] or undefined.
at::Tensor sequence_balance_loss(const at::Tensor& experts, const at::Tensor& scores,
                                 const at::Tensor& token_mask, double alpha);

class RouterImpl : public torch::nn::Module {
 public:
  explicit RouterImpl(const ModelConfig& c);
  Routing forward(const at::Tensor& x);  // x [N, D]

  at::Tensor weight;                   // [E, D], float32 always
  at::Tensor e_score_correction_bias;  // [E] float32 buffer: steers selection, not trained by gradients

 private:
  int64_t experts_, groups_, topk_group_, k_;
  bool norm_topk_prob_;
  double scaling_;
};
TORCH_MODULE(Router);

class ExpertComm;  // expert_parallel.h

class ExpertsImpl : public torch::nn::Module {
 public:
  ExpertsImpl(int64_t experts, int64_t hidden, int64_t intermediate);
  // x [N, D], routing of each token -> [N, D]; adds per-expert token counts into `load` [E] (int64) when
  // defined.
  at::Tensor forward(const at::Tensor& x, const Routing& routing, at::Tensor* load = nullptr);
  // forward() through ATen operators only (dispatch, grouped GEMMs, combine), on any device: what the CPU
  // float32 kernels forward() takes instead (cpu_decode.h, cpu_experts_grad.h) are tested against.
  at::Tensor forward_aten(const at::Tensor& x, const Routing& routing, at::Tensor* load = nullptr);
  // The local experts on `rows` [M, D] grouped by local expert (`counts` rows each) -> [M, D].
  at::Tensor run_local(const at::Tensor& rows, const std::vector<int64_t>& counts);

  // Expert parallelism (expert_parallel.h): keeps only this rank's block of the experts (rank r of N: experts
  // [r E/N, (r+1) E/N)) and exchanges tokens with the other ranks through `comm` in forward(). A group of one
  // changes nothing.
  void set_expert_parallel(std::shared_ptr<ExpertComm> comm);
  const std::shared_ptr<ExpertComm>& expert_comm() const { return comm_; }
  int64_t num_experts() const { return experts_; }  // all of them, local or not

  // FP8 compute for forward() (and its backward); ue8m0: power-of-two scales.
  void set_fp8(bool on, bool ue8m0 = false) {
    fp8_ = on;
    ue8m0_ = ue8m0;
  }
  bool fp8() const { return fp8_; }
  // Installs the grouped 128x128-block quantisation of the current gate_up_proj / down_proj (an FP8
  // checkpoint's own bits); an undefined one is left as it is.
  void set_fp8_weights(kernels::Fp8Tensor gate_up_q, kernels::Fp8Tensor down_q);
  // The quantised weights forward() uses in FP8 (quantised now when stale: the weight's version moved).
  kernels::Fp8Tensor fp8_gate_up();
  kernels::Fp8Tensor fp8_down();

  at::Tensor gate_up_proj;  // [E, 2 * Im, D] (E / N of them under expert parallelism)
  at::Tensor down_proj;     // [E, D, Im]

 private:
  struct CachedFp8 {
    kernels::Fp8Tensor q;
    int64_t version = -1;
  };
  kernels::Fp8Tensor cached_fp8(CachedFp8& cache, const at::Tensor& weight);
  int64_t experts_;
  std::shared_ptr<ExpertComm> comm_;
  bool fp8_ = false, ue8m0_ = false;
  CachedFp8 gate_up_q_, down_q_;
};
TORCH_MODULE(Experts);

// Switches the routed experts of every MoE layer to FP8; returns how many expert modules were switched.
int64_t enable_fp8_experts(torch::nn::Module& model, bool ue8m0 = false);

class MoeImpl : public torch::nn::Module {
 public:
  explicit MoeImpl(const ModelConfig& c);
  // x [B, T, D] -> [B, T, D]; fills `stats` when non-null.
  at::Tensor forward(const at::Tensor& x, MoeStats* stats = nullptr);

  Router gate{nullptr};
  Experts experts{nullptr};
  Mlp shared_experts{nullptr};  // null when n_shared_experts == 0
};
TORCH_MODULE(Moe);

}  // namespace aha::model
