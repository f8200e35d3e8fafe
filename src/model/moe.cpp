#include "aha/model/moe.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <limits>

#include "aha/core/error.h"
#include "aha/kernels/fp8_grouped_linear.h"
#include "aha/model/cpu_decode.h"
#include "aha/model/cpu_experts_grad.h"
#include "aha/model/expert_parallel.h"

namespace aha::model {

MlpImpl::MlpImpl(int64_t hidden, int64_t intermediate) {
  gate_proj = register_module("gate_proj", Linear(hidden, intermediate, false));
  up_proj = register_module("up_proj", Linear(hidden, intermediate, false));
  down_proj = register_module("down_proj", Linear(intermediate, hidden, false));
}

at::Tensor MlpImpl::forward(const at::Tensor& x) {
  return down_proj(at::silu(gate_proj(x)) * up_proj(x));
}

RouterImpl::RouterImpl(const ModelConfig& c)
    : experts_(c.n_routed_experts),
      groups_(c.n_group),
      topk_group_(c.topk_group),
      k_(c.num_experts_per_tok),
      norm_topk_prob_(c.norm_topk_prob),
      scaling_(c.routed_scaling_factor) {
  weight = register_parameter("weight", at::zeros({experts_, c.hidden_size}, at::kFloat));
  e_score_correction_bias = register_buffer("e_score_correction_bias", at::zeros({experts_}, at::kFloat));
}

Routing RouterImpl::forward(const at::Tensor& x) {
  const int64_t n = x.size(0);
  const at::Tensor scores = at::sigmoid(at::linear(x.to(at::kFloat), weight.to(at::kFloat)));  // [N, E]
  at::Tensor choice = scores + e_score_correction_bias;
  if (groups_ > 1) {
    const at::Tensor group_scores =
        std::get<0>(choice.view({n, groups_, experts_ / groups_}).topk(2, -1)).sum(-1);  // [N, groups]
    const at::Tensor keep_groups = std::get<1>(group_scores.topk(topk_group_, -1, true, false));
    const at::Tensor group_mask = at::zeros_like(group_scores).scatter_(1, keep_groups, 1.0);
    const at::Tensor expert_mask =
        group_mask.unsqueeze(-1).expand({n, groups_, experts_ / groups_}).reshape({n, experts_});
    choice = choice.masked_fill(expert_mask.logical_not(), -std::numeric_limits<float>::infinity());
  }
  const at::Tensor idx = std::get<1>(choice.topk(k_, -1, true, false));
  at::Tensor w = scores.gather(1, idx);
  if (norm_topk_prob_) w = w / (w.sum(-1, true) + 1e-20);
  return {w * scaling_, idx, scores};
}

ExpertsImpl::ExpertsImpl(int64_t experts, int64_t hidden, int64_t intermediate) : experts_(experts) {
  gate_up_proj = register_parameter("gate_up_proj", at::empty({experts, 2 * intermediate, hidden}));
  down_proj = register_parameter("down_proj", at::empty({experts, hidden, intermediate}));
}

at::Tensor ExpertsImpl::forward(const at::Tensor& x, const Routing& routing, at::Tensor* load) {
  if (!comm_ && !fp8_ && cpu_routed_experts_supported(x, gate_up_proj, down_proj) &&
      routing.weights.scalar_type() == at::kFloat) {
    // Inference on the CPU (no autograd): one kernel runs each active expert's tokens on one thread, instead
    // of a dozen operators per expert (cpu_decode.h), whatever the token count (a decode step or a prefill).
    if (c10::InferenceMode::is_enabled())
      return cpu_routed_experts(x, routing.experts, routing.weights, gate_up_proj, down_proj, load);
    // Training (and no-grad evaluation) on the CPU: one autograd function (cpu_experts_grad.h).
    return cpu_routed_experts_grad(x, routing.experts, routing.weights, gate_up_proj, down_proj, load);
  }
  return forward_aten(x, routing, load);
}

at::Tensor ExpertsImpl::forward_aten(const at::Tensor& x, const Routing& routing, at::Tensor* load) {
  const ExpertDispatch d = dispatch(x, routing, experts_, comm_.get(), load);
  return combine(run_local(d.rows, d.counts), d, x, comm_.get());
}

at::Tensor ExpertsImpl::run_local(const at::Tensor& rows, const std::vector<int64_t>& counts) {
  const auto local = static_cast<int64_t>(counts.size());
  // No tokens here (an expert-parallel rank can get none): an empty result still tied to `rows`, so that
  // the backward pass runs the same exchanges on every rank.
  if (rows.size(0) == 0) return rows * 0.0;
  if (fp8_) {
    // FP8: both projections as grouped block-scaled GEMMs over all experts, whatever the token count.
    const kernels::Fp8LinearOptions o{ue8m0_, kernels::Fp8Backend::kAuto};
    const at::Tensor gate_up = kernels::fp8_grouped_linear(rows, gate_up_proj, counts, fp8_gate_up(), o);
    const int64_t im = gate_up.size(-1) / 2;
    const at::Tensor h = at::silu(gate_up.slice(-1, 0, im)) * gate_up.slice(-1, im);
    return kernels::fp8_grouped_linear(h.contiguous(), down_proj, counts, fp8_down(), o);
  }
  // Every expert's tokens form one contiguous run of `rows`. Many tokens per expert (prefill, training): one
  // grouped GEMM per projection covers all experts. A handful per expert (decoding): the CPU grouped GEMM is
  // slow on the transposed weights, so each expert with tokens runs its own two small GEMMs.
  if (rows.size(0) >= 16 * local) {
    const at::Tensor offsets = at::tensor(counts, at::kLong).cumsum(0).to(at::kInt).to(rows.device());
    at::Tensor gate_up = at::_grouped_mm(rows, gate_up_proj.transpose(1, 2), offsets);  // [M, 2 * Im]
    // The CPU grouped GEMM's backward needs a dense incoming gradient (an expanded one, as from a sum,
    // fails).
    if (gate_up.requires_grad()) gate_up.register_hook([](const at::Tensor& g) { return g.contiguous(); });
    const int64_t im = gate_up.size(-1) / 2;
    const at::Tensor h = at::silu(gate_up.slice(-1, 0, im)) * gate_up.slice(-1, im);
    at::Tensor y = at::_grouped_mm(h, down_proj.transpose(1, 2), offsets);  // [M, D]
    if (y.requires_grad()) y.register_hook([](const at::Tensor& g) { return g.contiguous(); });
    return y;
  }
  // unbind once: indexing the stacked weights per expert would give each a full-size gradient in backward.
  const std::vector<at::Tensor> w_gate_up = gate_up_proj.unbind(0), w_down = down_proj.unbind(0);
  std::vector<at::Tensor> parts;
  int64_t begin = 0;
  for (int64_t e = 0; e < local; ++e) {
    const int64_t n = counts[static_cast<size_t>(e)];
    if (n == 0) continue;
    const at::Tensor gate_up = at::linear(rows.slice(0, begin, begin + n), w_gate_up[e]);
    const int64_t im = gate_up.size(-1) / 2;
    parts.push_back(at::linear(at::silu(gate_up.slice(-1, 0, im)) * gate_up.slice(-1, im), w_down[e]));
    begin += n;
  }
  return at::cat(parts, 0);
}

void ExpertsImpl::set_expert_parallel(std::shared_ptr<ExpertComm> comm) {
  AHA_CHECK(!comm_, "set_expert_parallel: the experts are split already");
  if (!comm || comm->size() == 1) return;
  const int64_t n = comm->size(), local = experts_ / n;
  AHA_CHECK(experts_ % n == 0, "expert parallelism: ", experts_, " routed experts do not split over ", n,
            " ranks");
  AHA_CHECK(gate_up_proj.size(0) == experts_, "set_expert_parallel: expected all ", experts_,
            " experts, the module holds ", gate_up_proj.size(0));
  torch::NoGradGuard no_grad;
  const int64_t first = comm->rank() * local;
  gate_up_proj.set_data(gate_up_proj.narrow(0, first, local).clone());
  down_proj.set_data(down_proj.narrow(0, first, local).clone());
  gate_up_q_ = {};
  down_q_ = {};
  comm_ = std::move(comm);
}

void ExpertsImpl::set_fp8_weights(kernels::Fp8Tensor gate_up_q, kernels::Fp8Tensor down_q) {
  auto install = [](CachedFp8& cache, kernels::Fp8Tensor q, const at::Tensor& weight, const char* name) {
    if (!q.data.defined()) return;
    AHA_CHECK(q.data.sizes() == weight.sizes() && q.data.scalar_type() == at::kFloat8_e4m3fn &&
                  q.block_rows == kernels::kFp8BlockSize,
              "set_fp8_weights: ", name, " expects E4M3 data of the weight's shape ", weight.sizes(),
              " with 128x128 block scales");
    cache.q = std::move(q);
    cache.version = static_cast<int64_t>(weight._version());
  };
  install(gate_up_q_, std::move(gate_up_q), gate_up_proj, "gate_up_proj");
  install(down_q_, std::move(down_q), down_proj, "down_proj");
}

kernels::Fp8Tensor ExpertsImpl::cached_fp8(CachedFp8& cache, const at::Tensor& weight) {
  if (!cache.q.data.defined() || cache.version != static_cast<int64_t>(weight._version())) {
    // A normal tensor even when made under the sampler's InferenceMode (the training pass reuses it).
    c10::InferenceMode normal_tensors(false);
    cache.q = kernels::quantize_fp8_blocks_grouped(weight.detach(), ue8m0_);
    cache.version = static_cast<int64_t>(weight._version());
  } else if (cache.q.data.device() != weight.device()) {
    cache.q.data = cache.q.data.to(weight.device());
    cache.q.scale = cache.q.scale.to(weight.device());
  }
  return cache.q;
}

kernels::Fp8Tensor ExpertsImpl::fp8_gate_up() {
  return cached_fp8(gate_up_q_, gate_up_proj);
}

kernels::Fp8Tensor ExpertsImpl::fp8_down() {
  return cached_fp8(down_q_, down_proj);
}

int64_t enable_fp8_experts(torch::nn::Module& model, bool ue8m0) {
  int64_t switched = 0;
  for (const auto& item : model.modules()) {
    auto* experts = dynamic_cast<ExpertsImpl*>(item.get());
    if (!experts) continue;
    experts->set_fp8(true, ue8m0);
    ++switched;
  }
  return switched;
}

MoeImpl::MoeImpl(const ModelConfig& c) {
  experts = register_module("experts", Experts(c.n_routed_experts, c.hidden_size, c.moe_intermediate_size));
  gate = register_module("gate", Router(c));
  if (c.n_shared_experts > 0)
    shared_experts =
        register_module("shared_experts", Mlp(c.hidden_size, c.moe_intermediate_size * c.n_shared_experts));
}

at::Tensor sequence_balance_loss(const at::Tensor& experts, const at::Tensor& scores,
                                 const at::Tensor& token_mask, double alpha) {
  const int64_t b = scores.size(0), t = scores.size(1), e = scores.size(2), k = experts.size(2);
  const at::Tensor mask = token_mask.defined() ? token_mask.to(scores.device()).to(at::kFloat)
                                               : at::ones({b, t}, scores.options());
  const at::Tensor tokens = mask.sum(1).clamp_min(1);  // [B]
  at::Tensor chosen = at::zeros({b, t, e}, scores.options()).scatter_(2, experts, 1.0);
  const at::Tensor f =
      (chosen * mask.unsqueeze(-1)).sum(1) * (static_cast<double>(e) / k) / tokens.unsqueeze(-1);
  const at::Tensor affinity = scores / scores.sum(-1, true);
  const at::Tensor p = (affinity * mask.unsqueeze(-1)).sum(1) / tokens.unsqueeze(-1);  // [B, E]
  return alpha * (f.detach() * p).sum(-1).mean();
}

at::Tensor MoeImpl::forward(const at::Tensor& x, MoeStats* stats) {
  const auto shape = x.sizes().vec();
  const at::Tensor flat = x.reshape({-1, x.size(-1)});
  const Routing routing = gate(flat);
  if (stats && stats->balance_alpha > 0 && x.dim() == 3) {
    const int64_t b = x.size(0), t = x.size(1);
    at::Tensor loss = sequence_balance_loss(routing.experts.view({b, t, -1}), routing.scores.view({b, t, -1}),
                                            stats->token_mask, stats->balance_alpha);
    stats->balance_loss = stats->balance_loss.defined() ? stats->balance_loss + loss : loss;
  }
  at::Tensor* load = stats && stats->load.defined() ? &stats->load : nullptr;
  if (load && stats->token_weight.defined()) {
    const at::Tensor w = stats->token_weight.to(load->device()).repeat_interleave(routing.experts.size(1));
    load->index_add_(0, routing.experts.reshape({-1}).to(load->device()), w);
    load = nullptr;
  }
  at::Tensor y = experts(flat, routing, load).view(shape);
  if (shared_experts) y = y + shared_experts(x);
  return y;
}

}  // namespace aha::model
