#include "aha/rl/policy_update.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include <algorithm>
#include <chrono>
#include <cmath>

#include "aha/dist/process_group.h"

namespace aha::rl {

namespace {

// What a forward computes beyond the tokens' log-probabilities: the entropy per position, and whether it
// carries a gradient (the entropy bonus).
enum class Entropy { none, logged, in_loss };

// A teacher-forced forward of `m` over rows `rows` of the batch: log-probabilities [B, T] of their completion
// tokens (T the longest completion), the mask, the entropy per position when asked, the routed load and the
// balance loss.
struct Forward {
  at::Tensor logp, entropy, mask, expert_load, balance_loss;  // entropy [B, T] when asked
  int64_t positions = 0, padding = 0;  // positions run through the model, and how many of them are padding
};

at::Tensor to_device(std::vector<int64_t>& v, at::IntArrayRef shape, const at::Device& dev) {
  return at::from_blob(v.data(), shape, at::TensorOptions().dtype(at::kLong)).to(dev, false, true);
}

// The hidden states [B, T, D] that predict each row's completion tokens, each row as prompt + completion
// (padded to the longest).
at::Tensor hidden_by_rows(model::TransformerImpl& m, const Rollouts& b, const std::vector<size_t>& rows,
                          int64_t T, double balance_alpha, int64_t pad_id, const at::Device& dev,
                          Forward& f) {
  const auto B = static_cast<int64_t>(rows.size());
  int64_t L = 0;
  for (size_t r : rows) {
    const auto& c = b.completions[r];
    L = std::max<int64_t>(
        L, static_cast<int64_t>(b.prompt_ids[static_cast<size_t>(c.prompt)].size() + c.tokens.size()));
  }
  f.positions = B * L;
  std::vector<int64_t> ids(static_cast<size_t>(B * L), pad_id), attn(static_cast<size_t>(B * L), 0);
  std::vector<int64_t> pos(static_cast<size_t>(B * T), 0);
  for (int64_t i = 0; i < B; ++i) {
    const auto& c = b.completions[rows[static_cast<size_t>(i)]];
    const auto& p = b.prompt_ids[static_cast<size_t>(c.prompt)];
    const auto P = static_cast<int64_t>(p.size());
    for (int64_t t = 0; t < P; ++t)
      ids[static_cast<size_t>(i * L + t)] = p[static_cast<size_t>(t)];
    for (size_t t = 0; t < c.tokens.size(); ++t)
      ids[static_cast<size_t>(i * L + P) + t] = c.tokens[t];
    for (int64_t t = 0; t < P + static_cast<int64_t>(c.tokens.size()); ++t)
      attn[static_cast<size_t>(i * L + t)] = 1;
    for (int64_t t = 0; t < T; ++t)
      pos[static_cast<size_t>(i * T + t)] = std::min(L - 1, P - 1 + t);
  }
  model::ForwardInput in;
  in.input_ids = to_device(ids, {B, L}, dev);
  in.attention_mask = to_device(attn, {B, L}, dev);
  in.compute_logits = false;
  in.balance_alpha = balance_alpha;
  model::ForwardOutput out = m.forward(in);
  f.expert_load = out.expert_load;
  f.balance_loss = out.balance_loss;
  const at::Tensor gather = to_device(pos, {B, T}, dev);
  return out.hidden.gather(1, gather.unsqueeze(-1).expand({B, T, out.hidden.size(2)}));
}

// The same states with each prompt run once for all its rows in `rows` (forward_prefix_batch): the rows'
// completions without their last token continue it.
at::Tensor hidden_by_prompts(model::TransformerImpl& m, const Rollouts& b, const std::vector<size_t>& rows,
                             int64_t T, int64_t pad_id, const at::Device& dev, Forward& f) {
  const auto B = static_cast<int64_t>(rows.size());
  std::vector<int64_t> prompts, prefix_of;  // the distinct prompts in order of first use; each row's
  for (size_t r : rows) {
    const int64_t p = b.completions[r].prompt;
    const auto it = std::find(prompts.begin(), prompts.end(), p);
    prefix_of.push_back(it - prompts.begin());
    if (it == prompts.end()) prompts.push_back(p);
  }
  const auto P = static_cast<int64_t>(prompts.size());
  int64_t Lp = 0;
  for (int64_t p : prompts)
    Lp = std::max<int64_t>(Lp, static_cast<int64_t>(b.prompt_ids[static_cast<size_t>(p)].size()));
  const int64_t Ls = T - 1;
  std::vector<int64_t> pids(static_cast<size_t>(P * Lp), pad_id), pmask(static_cast<size_t>(P * Lp), 0);
  std::vector<int64_t> sids(static_cast<size_t>(B * Ls), pad_id), smask(static_cast<size_t>(B * Ls), 0);
  int64_t real = 0;
  for (int64_t i = 0; i < P; ++i) {
    const auto& p = b.prompt_ids[static_cast<size_t>(prompts[static_cast<size_t>(i)])];
    for (size_t t = 0; t < p.size(); ++t) {
      pids[static_cast<size_t>(i * Lp) + t] = p[t];
      pmask[static_cast<size_t>(i * Lp) + t] = 1;
    }
    real += static_cast<int64_t>(p.size());
  }
  for (int64_t i = 0; i < B; ++i) {
    const auto& c = b.completions[rows[static_cast<size_t>(i)]];
    const auto n = static_cast<int64_t>(c.tokens.size()) - 1;
    for (int64_t t = 0; t < n; ++t) {
      sids[static_cast<size_t>(i * Ls + t)] = c.tokens[static_cast<size_t>(t)];
      smask[static_cast<size_t>(i * Ls + t)] = 1;
    }
    real += std::max<int64_t>(n, 0);
  }
  f.positions = P * Lp + B * Ls;
  f.padding = f.positions - real;
  model::PrefixBatchInput in;
  in.prefix_ids = to_device(pids, {P, Lp}, dev);
  in.prefix_mask = to_device(pmask, {P, Lp}, dev);
  in.suffix_ids = to_device(sids, {B, Ls}, dev);
  in.suffix_mask = to_device(smask, {B, Ls}, dev);
  in.prefix_of = to_device(prefix_of, {B}, dev);
  model::ForwardOutput out = m.forward_prefix_batch(in);
  f.expert_load = out.expert_load;
  return out.hidden;  // [B, 1 + Ls, D] = [B, T, D]
}

Forward forward(model::TransformerImpl& m, const Rollouts& b, const std::vector<size_t>& rows,
                Entropy entropy, double balance_alpha, int64_t pad_id, double temperature,
                const at::Device& dev) {
  const auto B = static_cast<int64_t>(rows.size());
  int64_t T = 1, real = 0;
  for (size_t r : rows) {
    const auto& c = b.completions[r];
    T = std::max<int64_t>(T, static_cast<int64_t>(c.tokens.size()));
    real += static_cast<int64_t>(b.prompt_ids[static_cast<size_t>(c.prompt)].size() + c.tokens.size());
  }
  std::vector<int64_t> tgt(static_cast<size_t>(B * T), 0);
  std::vector<float> mask(static_cast<size_t>(B * T), 0.0f);
  for (int64_t i = 0; i < B; ++i) {
    const auto& c = b.completions[rows[static_cast<size_t>(i)]];
    for (size_t t = 0; t < c.tokens.size(); ++t) {
      tgt[static_cast<size_t>(i * T) + t] = c.tokens[t];
      mask[static_cast<size_t>(i * T) + t] = 1.0f;
    }
  }
  Forward f;
  // A prompt's G completions share its positions: run them once (not with the sequence-wise balance loss,
  // whose sequences are whole rows).
  at::Tensor h;
  if (balance_alpha == 0 && T >= 2) {
    h = hidden_by_prompts(m, b, rows, T, pad_id, dev, f);
  } else {
    h = hidden_by_rows(m, b, rows, T, balance_alpha, pad_id, dev, f);
    f.padding = f.positions - real;
  }
  const at::Tensor target = to_device(tgt, {B, T}, dev);
  f.mask = at::from_blob(mask.data(), {B, T}, at::TensorOptions().dtype(at::kFloat)).to(dev, false, true);
  const at::Tensor logits = m.logits(h);
  if (entropy == Entropy::in_loss) {
    // One log-softmax over the vocabulary serves the tokens' log-probabilities and the entropy's gradient.
    const at::Tensor log_probs = tempered_log_softmax(logits, temperature);
    f.logp = log_probs.gather(-1, target.unsqueeze(-1)).squeeze(-1);
    f.entropy = entropy_of_log_probs(log_probs);
  } else if (entropy == Entropy::logged) {
    TokenLogprobs t = token_logprobs_and_entropy(logits, target, temperature);
    f.logp = t.logp;
    f.entropy = t.entropy;
  } else {
    f.logp = token_logprobs(logits, target, temperature);
  }
  return f;
}

// Seconds since the last call (or construction).
struct Lap {
  std::chrono::steady_clock::time_point t = std::chrono::steady_clock::now();
  double operator()() {
    const auto now = std::chrono::steady_clock::now();
    const double s = std::chrono::duration<double>(now - t).count();
    t = now;
    return s;
  }
};

// The micro-batch of a rank out of rows while others still have some (lockstep): one padding token whose loss
// is multiplied by 0, so it runs the same collectives as a real one and adds nothing.
Rollouts padding_batch(int64_t pad_id) {
  Rollouts d;
  d.prompts.resize(1);
  d.prompt_ids = {{pad_id}};
  rollout::Completion c;
  c.tokens = {pad_id};
  c.logprobs = {0.0f};
  d.completions = {c};
  return d;
}

}  // namespace

UpdateStats policy_update(ParallelPolicy& pp, const Rollouts& batch, const Advantages& adv,
                          const UpdateOptions& o, double lr) {
  const auto t0 = std::chrono::steady_clock::now();
  UpdateStats s;
  Policy& policy = pp.policy();
  model::Transformer& ref = pp.reference();
  dist::World& world = pp.world();
  const int64_t pad_id = policy.tokenizer->special_tokens().pad.value_or(0);
  const bool with_ref = o.loss.beta > 0;
  pp.set_lr(lr);
  const auto& rows_in_loss = adv.loss_rows;
  const auto mb = static_cast<size_t>(o.micro_batch);
  // Micro-batches per pass: every rank runs as many as the rank with the most rows when collectives run
  // inside the passes (the others pad with empty ones).
  const size_t micro_batches = pp.micro_batches((rows_in_loss.size() + mb - 1) / mb);
  const auto run = [&](model::TransformerImpl& m, const Rollouts& b, const std::vector<size_t>& rows,
                       Entropy entropy, double alpha) {
    return forward(m, b, rows, entropy, alpha, pad_id, o.temperature, policy.device);
  };
  const Rollouts padding = padding_batch(pad_id);
  // The advantages on the host once (read row by row below; no sync per row).
  const at::Tensor adv_host =
      adv.values.defined() ? adv.values.to(at::kFloat).cpu().contiguous() : at::Tensor();
  if (adv.global_loss_rows > 0) pp.begin_update();
  for (int64_t pass = 0; pass < o.mu && adv.global_loss_rows > 0; ++pass) {
    pp.begin_pass(pass);
    double pass_loss = 0;
    for (size_t k = 0; k < micro_batches; ++k) {
      const size_t start = k * mb;
      const bool last = k + 1 == micro_batches;
      if (start >= rows_in_loss.size()) {
        Forward f = run(*policy.model, padding, {0}, Entropy::none, o.balance_alpha);
        at::Tensor loss = f.logp.sum() * 0.0;
        if (f.balance_loss.defined()) loss = loss + f.balance_loss * 0.0;
        if (with_ref) {
          c10::NoGradGuard no_grad;
          run(*ref, padding, {0}, Entropy::none, 0);
        }
        if (last) pp.arm(loss);
        loss.backward();
        pp.after_backward();
        continue;
      }
      Lap lap;
      std::vector<size_t> rows(
          rows_in_loss.begin() + static_cast<std::ptrdiff_t>(start),
          rows_in_loss.begin() + static_cast<std::ptrdiff_t>(std::min(rows_in_loss.size(), start + mb)));
      const Entropy entropy = o.loss.entropy_coef > 0 ? Entropy::in_loss
                              : pass == 0             ? Entropy::logged
                                                      : Entropy::none;
      Forward f = run(*policy.model, batch, rows, entropy, o.balance_alpha);
      LossInput li;
      li.logp = f.logp;
      li.mask = f.mask;
      if (entropy == Entropy::in_loss) li.entropy = f.entropy;
      {
        const auto B = static_cast<int64_t>(rows.size());
        const int64_t T = f.logp.size(1);
        std::vector<float> old(static_cast<size_t>(B * T), 0.0f), a(static_cast<size_t>(B));
        for (int64_t r = 0; r < B; ++r) {
          const auto& c = batch.completions[rows[static_cast<size_t>(r)]];
          for (size_t t = 0; t < c.logprobs.size(); ++t)
            old[static_cast<size_t>(r * T) + t] = c.logprobs[t];
          a[static_cast<size_t>(r)] = adv_host.data_ptr<float>()[rows[static_cast<size_t>(r)]];
        }
        li.old_logp = at::from_blob(old.data(), {B, T}, at::TensorOptions().dtype(at::kFloat))
                          .to(policy.device, false, true);
        li.advantages = at::from_blob(a.data(), {B}, at::TensorOptions().dtype(at::kFloat))
                            .to(policy.device, false, true);
      }
      s.forward_seconds += lap();
      if (with_ref) {
        c10::NoGradGuard no_grad;
        li.ref_logp = run(*ref, batch, rows, Entropy::none, 0).logp;
        s.ref_seconds += lap();
      }
      LossOutput lout = policy_loss(li, o.loss, adv.denominators);
      at::Tensor loss = lout.loss;
      if (f.balance_loss.defined())
        loss = loss + f.balance_loss * (static_cast<double>(rows.size()) / adv.global_loss_rows);
      // The last micro-batch's backward pass completes the gradients: reduce buckets as they fill.
      if (last) pp.arm(loss);
      s.forward_seconds += lap();
      loss.backward();
      pp.after_backward();
      s.backward_seconds += lap();
      pass_loss += loss.item<double>();
      if (pass == 0) {
        s.first_pass.clipped_low += lout.stats.clipped_low;
        s.first_pass.clipped_high += lout.stats.clipped_high;
        s.first_pass.dual_clipped += lout.stats.dual_clipped;
        s.first_pass.kl += lout.stats.kl;
        s.first_pass.ratio += lout.stats.ratio;
        s.first_pass.tokens += lout.stats.tokens;
        const at::Tensor ent = f.entropy.detach();
        s.entropy_sum += (ent * f.mask).sum().item<double>();
        at::Tensor load = f.expert_load.defined() ? f.expert_load.cpu() : at::Tensor();
        if (load.defined()) s.expert_load = s.expert_load.defined() ? s.expert_load + load : load;
        s.positions += f.positions;
        s.padding += f.padding;
        // Before any step of this batch the policy is the sampler's: any difference is numerics.
        const at::Tensor d = (f.logp.detach().to(at::kDouble) - li.old_logp.to(at::kDouble)) * f.mask;
        s.logprob_max_abs = std::max(s.logprob_max_abs, d.abs().max().item<double>());
        s.logprob_abs_sum += d.abs().sum().item<double>();
        s.logprob_kl_sum += ((at::exp(d) - 1 - d) * f.mask).sum().item<double>();
      }
      s.tokens += f.mask.sum().item<int64_t>();
    }
    Lap lap;
    pp.end_pass(pass);
    s.loss = world.all_reduce(std::vector<double>{pass_loss})[0];
    s.sync_seconds += lap();
    if (!std::isfinite(s.loss)) {
      s.finite = false;
      break;
    }
    s.grad_norm = pp.clip(o.grad_clip);
    if (!std::isfinite(s.grad_norm)) {
      s.finite = false;
      break;
    }
    pp.step(pass);
    s.optimizer_seconds += lap();
  }
  pp.end_update();
  // Expert loads of the whole batch (a rank without rows has none: zeros of the others' shape).
  std::vector<double> shape = {0, 0};
  if (s.expert_load.defined() && s.expert_load.dim() == 2)
    shape = {static_cast<double>(s.expert_load.size(0)), static_cast<double>(s.expert_load.size(1))};
  shape = world.all_reduce(shape, dist::ReduceOp::max);
  if (shape[0] > 0) {
    if (!s.expert_load.defined())
      s.expert_load = at::zeros({static_cast<int64_t>(shape[0]), static_cast<int64_t>(shape[1])}, at::kLong);
    world.all_reduce(s.expert_load);
  }
  if (s.finite && o.bias_update_speed > 0 && s.expert_load.defined() && s.expert_load.numel() > 0)
    pp.update_routing_bias(s.expert_load, o.bias_update_speed);
  s.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return s;
}

}  // namespace aha::rl
