#include "aha/rl/grpo.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include <cmath>
#include <optional>

#include "aha/core/error.h"
#include "aha/kernels/cpu_entropy.h"
#include "aha/kernels/cpu_token_logprobs.h"

namespace aha::rl {

Advantage parse_advantage(const std::string& name) {
  if (name == "grpo") return Advantage::grpo;
  if (name == "dr_grpo") return Advantage::dr_grpo;
  if (name == "batch_std") return Advantage::batch_std;
  if (name == "rloo") return Advantage::rloo;
  AHA_FAIL("unknown advantage '", name, "' (choices: grpo, dr_grpo, batch_std, rloo)");
}

Aggregation parse_aggregation(const std::string& name) {
  if (name == "token-mean") return Aggregation::token_mean;
  if (name == "seq-mean-token-mean") return Aggregation::seq_mean_token_mean;
  if (name == "seq-mean-token-sum-norm") return Aggregation::seq_mean_token_sum_norm;
  if (name == "seq-mean-token-sum") return Aggregation::seq_mean_token_sum;
  AHA_FAIL("unknown loss aggregation '", name,
           "' (choices: token-mean, seq-mean-token-mean, seq-mean-token-sum-norm, seq-mean-token-sum)");
}

RatioLevel parse_ratio_level(const std::string& name) {
  if (name == "token") return RatioLevel::token;
  if (name == "sequence") return RatioLevel::sequence;
  AHA_FAIL("unknown ratio level '", name, "' (choices: token, sequence)");
}

KlEstimator parse_kl_estimator(const std::string& name) {
  if (name == "k1") return KlEstimator::k1;
  if (name == "k2") return KlEstimator::k2;
  if (name == "k3") return KlEstimator::k3;
  AHA_FAIL("unknown KL estimator '", name, "' (choices: k1, k2, k3)");
}

namespace {

struct Grouped {
  at::Tensor r;      // [N, G] float64, invalid entries 0
  at::Tensor v;      // [N, G] float64, 1 valid / 0 not
  at::Tensor count;  // [N, 1] valid per group
};

Grouped group(const at::Tensor& rewards, const at::Tensor& valid, int64_t group_size) {
  AHA_CHECK(group_size >= 1, "group size must be at least 1, got ", group_size);
  AHA_CHECK(rewards.dim() == 1, "rewards must be one-dimensional, got ", rewards.dim(), " dimensions");
  AHA_CHECK(rewards.size(0) % group_size == 0, "rewards hold ", rewards.size(0),
            " values, not a multiple of the group size ", group_size);
  at::Tensor v =
      valid.defined() ? valid.to(at::kDouble) : at::ones_like(rewards, rewards.options().dtype(at::kDouble));
  AHA_CHECK(v.sizes() == rewards.sizes(), "valid mask and rewards differ in shape");
  at::Tensor r = rewards.to(at::kDouble);
  r = at::where(v > 0, r, at::zeros_like(r));
  r = r.view({-1, group_size});
  v = v.view({-1, group_size});
  return {r, v, v.sum(1, true)};
}

}  // namespace

at::Tensor compute_advantages(const at::Tensor& rewards, const at::Tensor& valid, int64_t group_size,
                              Advantage kind, double eps) {
  Grouped g = group(rewards, valid, group_size);
  at::Tensor n = g.count.clamp_min(1);
  at::Tensor mean = g.r.sum(1, true) / n;
  at::Tensor centred = (g.r - mean) * g.v;
  at::Tensor a;
  switch (kind) {
    case Advantage::grpo: {
      at::Tensor var = (centred * centred).sum(1, true) / (g.count - 1).clamp_min(1);
      a = centred / (var.sqrt() + eps);
      break;
    }
    case Advantage::dr_grpo:
      a = centred;
      break;
    case Advantage::batch_std: {
      at::Tensor flat_v = g.v.flatten();
      const double count = flat_v.sum().item<double>();
      double std = 0;
      if (count > 1) {
        at::Tensor flat_r = g.r.flatten();
        const double m = (flat_r * flat_v).sum().item<double>() / count;
        at::Tensor d = (flat_r - m) * flat_v;
        std = std::sqrt((d * d).sum().item<double>() / (count - 1));
      }
      a = centred / (std + eps);
      break;
    }
    case Advantage::rloo: {
      // r_i - (sum - r_i) / (n - 1) = n / (n - 1) * (r_i - mean); a group with one valid reward gets 0.
      at::Tensor scale =
          at::where(g.count > 1, g.count / (g.count - 1).clamp_min(1), at::zeros_like(g.count));
      a = centred * scale;
      break;
    }
  }
  return (a * g.v).flatten().to(at::kFloat);
}

at::Tensor zero_variance_groups(const at::Tensor& rewards, const at::Tensor& valid, int64_t group_size) {
  Grouped g = group(rewards, valid, group_size);
  const double inf = std::numeric_limits<double>::infinity();
  at::Tensor hi = at::where(g.v > 0, g.r, at::full_like(g.r, -inf)).amax(1);
  at::Tensor lo = at::where(g.v > 0, g.r, at::full_like(g.r, inf)).amin(1);
  return (g.count.squeeze(1) < 2).logical_or(hi == lo);
}

at::Tensor kl_penalty(const at::Tensor& logp, const at::Tensor& ref_logp, KlEstimator kind) {
  at::Tensor d = (ref_logp - logp).clamp(-20, 20);
  switch (kind) {
    case KlEstimator::k1:
      return -d;
    case KlEstimator::k2:
      return 0.5 * d * d;
    case KlEstimator::k3:
      return (at::exp(d) - d - 1).clamp(-10, 10);
  }
  AHA_FAIL("unknown KL estimator");
}

LossOutput policy_loss(const LossInput& in, const LossOptions& o, const LossDenominators& den) {
  AHA_CHECK(in.logp.dim() == 2, "logp must be [B, T], got ", in.logp.sizes());
  AHA_CHECK(in.old_logp.sizes() == in.logp.sizes(), "old_logp ", in.old_logp.sizes(), " differs from logp ",
            in.logp.sizes());
  AHA_CHECK(in.mask.sizes() == in.logp.sizes(), "mask ", in.mask.sizes(), " differs from logp ",
            in.logp.sizes());
  AHA_CHECK(in.advantages.dim() == 1 && in.advantages.size(0) == in.logp.size(0), "advantages must be [",
            in.logp.size(0), "], got ", in.advantages.sizes());
  const bool use_kl = o.beta > 0;
  if (use_kl)
    AHA_CHECK(in.ref_logp.defined() && in.ref_logp.sizes() == in.logp.sizes(),
              "beta > 0 needs ref_logp of the same shape as logp");
  const bool use_entropy = o.entropy_coef > 0;
  if (use_entropy)
    AHA_CHECK(in.entropy.defined() && in.entropy.sizes() == in.logp.sizes(),
              "entropy_coef > 0 needs the per-token entropy of the same shape as logp");

  // Computed in logp's dtype (float32 from the trainer; float64 in the gradient checks).
  const auto dtype = in.logp.scalar_type();
  at::Tensor mask = in.mask.to(dtype);
  at::Tensor logp = in.logp;
  at::Tensor old_logp = in.old_logp.to(dtype).detach();
  at::Tensor adv = in.advantages.to(dtype).unsqueeze(1);  // [B, 1]
  at::Tensor lengths = mask.sum(1);                       // [B]

  at::Tensor log_ratio = (logp - old_logp) * mask;
  at::Tensor ratio;
  if (o.ratio == RatioLevel::token) {
    ratio = at::exp(log_ratio);
  } else {
    at::Tensor seq = log_ratio.sum(1, true) / lengths.clamp_min(1).unsqueeze(1);  // [B, 1]
    ratio = at::exp(seq).expand_as(logp);
  }
  at::Tensor unclipped = -adv * ratio;
  at::Tensor clipped_ratio = ratio.clamp(1 - o.epsilon_low, 1 + o.epsilon_high);
  at::Tensor loss = at::max(unclipped, -adv * clipped_ratio);
  at::Tensor dual_mask;
  if (o.dual_clip > 1) {
    at::Tensor cap = -adv * o.dual_clip;
    dual_mask = (adv < 0).logical_and(loss > cap);
    loss = at::where(adv < 0, at::min(loss, cap), loss);
  }
  at::Tensor kl;
  if (use_kl) {
    kl = kl_penalty(logp, in.ref_logp.to(dtype).detach(), o.kl);
    loss = loss + o.beta * kl;
  }
  if (use_entropy) loss = loss - o.entropy_coef * in.entropy.to(dtype);
  loss = loss * mask;

  at::Tensor total;
  switch (o.aggregation) {
    case Aggregation::token_mean:
      AHA_CHECK(den.tokens > 0, "token-mean needs the batch's token count, got ", den.tokens);
      total = loss.sum() / den.tokens;
      break;
    case Aggregation::seq_mean_token_mean:
      AHA_CHECK(den.sequences > 0, "seq-mean-token-mean needs the batch's sequence count");
      total = (loss.sum(1) / lengths.clamp_min(1)).sum() / den.sequences;
      break;
    case Aggregation::seq_mean_token_sum_norm:
      AHA_CHECK(den.sequences > 0 && den.max_length > 0,
                "seq-mean-token-sum-norm needs the batch's sequence count and L_max");
      total = loss.sum() / (den.sequences * den.max_length);
      break;
    case Aggregation::seq_mean_token_sum:
      AHA_CHECK(den.sequences > 0, "seq-mean-token-sum needs the batch's sequence count");
      total = loss.sum() / den.sequences;
      break;
  }

  LossOutput out;
  out.loss = total;
  {
    c10::NoGradGuard no_grad;
    at::Tensor r = ratio.detach();
    at::Tensor a = adv.expand_as(r);
    out.stats.clipped_low =
        ((r < 1 - o.epsilon_low).logical_and(a < 0).to(dtype) * mask).sum().item<double>();
    out.stats.clipped_high =
        ((r > 1 + o.epsilon_high).logical_and(a > 0).to(dtype) * mask).sum().item<double>();
    if (dual_mask.defined()) out.stats.dual_clipped = (dual_mask.to(dtype) * mask).sum().item<double>();
    if (kl.defined()) out.stats.kl = (kl.detach() * mask).sum().item<double>();
    out.stats.ratio = (r * mask).sum().item<double>();
    out.stats.tokens = mask.sum().item<double>();
  }
  return out;
}

at::Tensor tempered_log_softmax(const at::Tensor& logits, double temperature) {
  at::Tensor x = logits.to(at::kFloat);
  if (temperature > 0 && temperature != 1) x = x / temperature;
  return at::log_softmax(x, -1);
}

at::Tensor entropy_of_log_probs(const at::Tensor& log_probs) {
  // Without a gradient on the CPU (the logged entropy): one pass, no [..., V] temporaries.
  if (kernels::cpu_entropy_supported(log_probs)) return kernels::cpu_entropy(log_probs);
  return -(log_probs.exp() * log_probs).sum(-1);
}

namespace {

void check_token_shapes(const at::Tensor& logits, const at::Tensor& tokens) {
  AHA_CHECK(logits.dim() == 3 && tokens.dim() == 2 && logits.size(0) == tokens.size(0) &&
                logits.size(1) == tokens.size(1),
            "token_logprobs: logits ", logits.sizes(), " and tokens ", tokens.sizes(), " do not match");
}

}  // namespace

TokenLogprobs token_logprobs_and_entropy(const at::Tensor& logits, const at::Tensor& tokens,
                                         double temperature) {
  check_token_shapes(logits, tokens);
  if (kernels::cpu_token_logprobs_supported(logits, tokens)) {
    const kernels::TokenLogprobs k = kernels::cpu_token_logprobs(logits, tokens, temperature);
    return {k.logp, k.entropy};
  }
  const at::Tensor log_probs = tempered_log_softmax(logits, temperature);
  TokenLogprobs out{log_probs.gather(-1, tokens.unsqueeze(-1)).squeeze(-1), {}};
  c10::NoGradGuard no_grad;
  out.entropy = entropy_of_log_probs(log_probs.detach());
  return out;
}

at::Tensor token_logprobs(const at::Tensor& logits, const at::Tensor& tokens, double temperature) {
  check_token_shapes(logits, tokens);
  if (kernels::cpu_token_logprobs_supported(logits, tokens))
    return kernels::cpu_token_logprobs(logits, tokens, temperature).logp;
  return tempered_log_softmax(logits, temperature).gather(-1, tokens.unsqueeze(-1)).squeeze(-1);
}

at::Tensor token_entropy(const at::Tensor& logits, double temperature, bool with_grad) {
  std::optional<c10::NoGradGuard> no_grad;
  if (!with_grad) no_grad.emplace();
  return entropy_of_log_probs(tempered_log_softmax(with_grad ? logits : logits.detach(), temperature));
}

}  // namespace aha::rl
