#include <ATen/ATen.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "aha/core/log.h"
#include "aha/dist/process_group.h"
#include "aha/model/balance.h"
#include "aha/rl/optimizer.h"
#include "aha/rl/tasks.h"
#include "trainer_state.h"

namespace aha::rl {

namespace {

std::string format_duration(double s) {
  if (!(s >= 0) || s > 1e7) return "?";
  const auto t = static_cast<int64_t>(s + 0.5);
  char buf[32];
  if (t >= 3600) {
    std::snprintf(buf, sizeof buf, "%lldh%02lldm", static_cast<long long>(t / 3600),
                  static_cast<long long>(t % 3600 / 60));
  } else if (t >= 60) {
    std::snprintf(buf, sizeof buf, "%lldm%02llds", static_cast<long long>(t / 60),
                  static_cast<long long>(t % 60));
  } else {
    std::snprintf(buf, sizeof buf, "%llds", static_cast<long long>(t));
  }
  return buf;
}

struct MeanStd {
  double mean = 0, std = 0;
};

MeanStd mean_std(const std::vector<double>& v) {
  MeanStd m;
  if (v.empty()) return m;
  for (double x : v)
    m.mean += x;
  m.mean /= static_cast<double>(v.size());
  if (v.size() > 1) {
    for (double x : v)
      m.std += (x - m.mean) * (x - m.mean);
    m.std = std::sqrt(m.std / static_cast<double>(v.size() - 1));
  }
  return m;
}

// The config's settings of a step, parsed once (enums, not strings re-read each step).

}  // namespace

StepOptions step_options(const Config& c) {
  StepOptions o;
  rollout::SamplingParams& sp = o.rollout.params;
  sp.temperature = c.rollout.temperature;
  sp.top_k = c.rollout.top_k;
  sp.top_p = c.rollout.top_p;
  sp.min_p = c.rollout.min_p;
  sp.max_new_tokens = c.rollout.max_new_tokens;
  sp.stop_strings = c.rollout.stop;
  sp.n = c.rollout.num_generations;
  o.rollout.reward_threads = c.reward.threads;
  o.rollout_seed = c.rollout.seed ^ c.train.seed;
  o.prompts_per_step = c.train.prompts_per_step;
  o.dynamic = c.grpo.dynamic_sampling;
  o.max_rounds = c.grpo.max_resample_rounds;
  o.advantages.kind = parse_advantage(c.grpo.advantage);
  o.advantages.std_eps = c.grpo.std_eps;
  o.advantages.mask_truncated = c.grpo.mask_truncated;
  o.advantages.max_length = static_cast<double>(c.rollout.max_new_tokens);
  o.advantages.group_by_length = c.train.group_by_length;
  LossOptions& lo = o.update.loss;
  lo.aggregation = parse_aggregation(c.grpo.loss_aggregation);
  lo.ratio = parse_ratio_level(c.grpo.ratio);
  lo.epsilon_low = c.grpo.epsilon_low;
  lo.epsilon_high = c.grpo.epsilon_high;
  lo.dual_clip = c.grpo.dual_clip;
  lo.beta = c.grpo.beta;
  lo.kl = parse_kl_estimator(c.grpo.kl_estimator);
  lo.entropy_coef = c.grpo.entropy_coef;
  o.update.mu = c.grpo.mu;
  o.update.micro_batch = c.train.micro_batch_size;
  o.update.temperature = c.rollout.temperature;
  o.update.balance_alpha = c.train.balance_alpha;
  o.update.grad_clip = c.optim.grad_clip;
  o.update.bias_update_speed = c.train.bias_update_speed;
  o.eval.sampling = o.rollout;
  o.eval.k = c.train.eval_k;
  o.eval.seed = c.train.seed;
  return o;
}

// ---- 1-2. sample and score, refilling zero-variance groups (dynamic sampling)
// ------------------------------------------------------------------------------------------------------

Rollouts Trainer::State::collect_batch(StepMetrics& sm, int64_t& rounds, int64_t& kept,
                                       double& zero_std_frac) {
  rollout_seconds = reward_seconds = 0;
  const int64_t P = o.prompts_per_step;
  Rollouts batch;
  batch.group = o.rollout.params.n;
  int64_t groups_seen = 0, groups_zero = 0;
  double seconds = 0;
  // Every rank records the same figures, also one whose share of every round is empty.
  sm.sum("correct", 0);
  sm.sum("scored", 0);
  policy->gather_weights();
  for (int64_t round = 0;; ++round) {
    // Every rank draws the same prompts and samples its contiguous share of them.
    std::vector<Prompt> drawn = prompts->next(round == 0 ? P : P - kept);
    const size_t n_all = drawn.size(), W = static_cast<size_t>(world->size()),
                 me = static_cast<size_t>(world->rank());
    const size_t lo = n_all * me / W, hi = n_all * (me + 1) / W;
    std::vector<Prompt> mine(std::make_move_iterator(drawn.begin() + static_cast<std::ptrdiff_t>(lo)),
                             std::make_move_iterator(drawn.begin() + static_cast<std::ptrdiff_t>(hi)));
    GenerationSpec spec = o.rollout;
    spec.params.seed = item_seed(o.rollout_seed, static_cast<uint64_t>(step), static_cast<uint64_t>(round));
    spec.first_index = lo;
    const Rollouts r = generate_and_score(*engine, tokenizer(), *rewards, std::move(mine), spec);
    seconds += r.seconds;
    reward_seconds += r.reward_seconds;
    sm.sum("rollout_tokens", static_cast<double>(r.decode_tokens));
    rounds = round + 1;
    std::vector<double> totals;
    for (size_t i = 0; i < r.size(); ++i) {
      if (r.scores.total[i]) totals.push_back(*r.scores.total[i]);
      sm.sum("correct", roles.correct(r.scores, i));
      sm.sum("scored", 1);
    }
    sm.gather("totals", totals);
    groups_zero += filter_groups(r, lo, n_all, o.dynamic, P, kept, batch, *world);
    groups_seen += static_cast<int64_t>(n_all);
    if (kept >= P || !o.dynamic || round >= o.max_rounds) break;
  }
  policy->release_weights();
  sm.max("rollout_seconds", seconds);
  rollout_seconds = seconds;
  zero_std_frac = groups_seen ? static_cast<double>(groups_zero) / static_cast<double>(groups_seen) : 0.0;
  if (batch.scores.names.empty()) {  // this rank kept no group
    batch.scores.names = rewards->names();
    batch.scores.per_reward.resize(batch.scores.names.size());
  }
  return batch;
}

// ---- one step: the stages in order
// ------------------------------------------------------------------------------------------------------

Json Trainer::State::step_once() {
  const auto t_step = Clock::now();
  StepMetrics sm;
  policy->reset_timing();
  int64_t rounds = 0, kept = 0;
  double zero_std_frac = 0;
  const Rollouts batch = collect_batch(sm, rounds, kept, zero_std_frac);
  const Advantages adv = compute_advantages(batch, o.advantages, *world);
  const double lr = scheduled_lr(cfg.optim, step, cfg.train.steps);
  const UpdateStats up = policy_update(*policy, batch, adv, o.update, lr);
  if (!up.finite) {
    ++bad_steps;
    log::warn("step ", step + 1, ": the loss or the gradient is not finite (loss ", up.loss, ", grad norm ",
              up.grad_norm, "); the update is skipped (", bad_steps, " in a row)");
  } else {
    bad_steps = 0;
  }
  if (cfg.grpo.ref_reset_every > 0 && policy->reference() && (step + 1) % cfg.grpo.ref_reset_every == 0)
    policy->reset_reference();
  // Figures of the whole batch: this rank's, reduced over the ranks once.
  int64_t len_max = 0;
  sm.sum("len_sum", 0);
  sm.sum("truncated", 0);
  for (size_t i = 0; i < batch.size(); ++i) {
    const auto& c = batch.completions[i];
    sm.sum("len_sum", static_cast<double>(c.tokens.size()));
    sm.sum("truncated", c.finish == rollout::FinishReason::length);
    len_max = std::max<int64_t>(len_max, static_cast<int64_t>(c.tokens.size()));
  }
  sm.sum("rows", static_cast<double>(batch.size()));
  sm.max("len_max", static_cast<double>(len_max));
  for (size_t r = 0; r < batch.scores.names.size(); ++r) {
    std::vector<double> v;
    for (const auto& x : batch.scores.per_reward[r])
      if (x) v.push_back(*x);
    sm.gather("rewards/" + batch.scores.names[r], v);
  }
  sm.sum("clipped_low", up.first_pass.clipped_low);
  sm.sum("clipped_high", up.first_pass.clipped_high);
  sm.sum("dual_clipped", up.first_pass.dual_clipped);
  sm.sum("kl", up.first_pass.kl);
  sm.sum("ratio", up.first_pass.ratio);
  sm.sum("loss_tokens", up.first_pass.tokens);
  sm.sum("entropy", up.entropy_sum);
  sm.sum("train_tokens", static_cast<double>(up.tokens));
  sm.sum("positions", static_cast<double>(up.positions));
  sm.sum("padding", static_cast<double>(up.padding));
  sm.max("logprob_max_abs", up.logprob_max_abs);
  sm.sum("logprob_abs", up.logprob_abs_sum);
  sm.sum("logprob_kl", up.logprob_kl_sum);
  sm.reduce(*world);
  Json m = step_metrics(sm, batch, up, lr, rounds, kept, zero_std_frac, t_step);
  if (main()) write_samples(batch, adv.values);
  return m;
}

Json Trainer::State::step_metrics(const StepMetrics& sm, const Rollouts& batch, const UpdateStats& up,
                                  double lr, int64_t rounds, int64_t kept, double zero_std_frac,
                                  Clock::time_point t_step) const {
  Json m;
  m["step"] = step + 1;
  const MeanStd rew = mean_std(sm.all("totals"));
  m["loss"] = up.finite ? up.loss : std::nan("");
  m["reward"] = rew.mean;
  m["reward_std"] = rew.std;
  for (const auto& name : batch.scores.names) {
    const MeanStd ms = mean_std(sm.all("rewards/" + name));
    m["rewards/" + name] = ms.mean;
    m["rewards/" + name + "_std"] = ms.std;
  }
  const double scored = sm.total("scored"), rows = sm.total("rows");
  m["accuracy"] = scored > 0 ? sm.total("correct") / scored : 0.0;
  m["zero_std_frac"] = zero_std_frac;
  m["completion_len"] = rows > 0 ? sm.total("len_sum") / rows : 0.0;
  m["completion_len_max"] = static_cast<int64_t>(sm.largest("len_max"));
  m["truncated_frac"] = rows > 0 ? sm.total("truncated") / rows : 0.0;
  const double tok = std::max(1.0, sm.total("loss_tokens"));
  m["kl"] = sm.total("kl") / tok;
  m["entropy"] = sm.total("entropy") / tok;
  m["clip_low"] = sm.total("clipped_low") / tok;
  m["clip_high"] = sm.total("clipped_high") / tok;
  if (cfg.grpo.dual_clip > 1) m["dual_clip"] = sm.total("dual_clipped") / tok;
  m["ratio"] = sm.total("ratio") / tok;
  // Sampling-time against first-pass training log-probabilities, per token in the loss (numerics only).
  m["logprob_mismatch/max_abs"] = sm.largest("logprob_max_abs");
  m["logprob_mismatch/mean_abs"] = sm.total("logprob_abs") / tok;
  m["logprob_mismatch/kl"] = sm.total("logprob_kl") / tok;
  m["grad_norm"] = up.grad_norm;
  m["lr"] = lr;
  m["groups"] = kept;
  if (o.dynamic) m["sampling_rounds"] = rounds;
  if (up.expert_load.defined() && up.expert_load.numel() > 0)
    m["expert_imbalance"] = model::load_imbalance(up.expert_load).mean().item<double>();
  const double rollout_seconds = sm.largest("rollout_seconds");
  m["rollout_tok_s"] = rollout_seconds > 0 ? sm.total("rollout_tokens") / rollout_seconds : 0.0;
  m["train_tok_s"] = up.seconds > 0 ? sm.total("train_tokens") / up.seconds : 0.0;
  // Share of the training forward's positions that are padding (train.group_by_length lowers it).
  const double positions = sm.total("positions");
  m["train_pad_frac"] = positions > 0 ? sm.total("padding") / positions : 0.0;
  m["step_s"] = seconds_since(t_step);
  // Where this rank's step went: generating, scoring, the update's parts, and the rest (advantages, metrics,
  // samples; with dist.shard full also weight_sync_s).
  const std::pair<const char*, double> parts[] = {{"time/rollout_s", rollout_seconds},
                                                  {"time/reward_s", reward_seconds},
                                                  {"time/ref_s", up.ref_seconds},
                                                  {"time/forward_s", up.forward_seconds},
                                                  {"time/backward_s", up.backward_seconds},
                                                  {"time/sync_s", up.sync_seconds},
                                                  {"time/optimizer_s", up.optimizer_seconds}};
  double accounted = 0;
  for (const auto& [name, seconds] : parts) {
    m[name] = seconds;
    accounted += seconds;
  }
  m["time/other_s"] = std::max(0.0, m["step_s"].get<double>() - accounted);
  if (policy->frees_weights()) m["weight_sync_s"] = policy->weight_sync_seconds();
  if (const auto& exchange = policy->layout().exchange) {
    // This rank's time in the MoE layers' token all-to-alls (rollout and training, both directions).
    m["expert_exchange_s"] = exchange->seconds();
    m["expert_exchanges"] = exchange->exchanges();
  }
  // This rank's live bytes of weights (module and fp32 masters), of gradients (at their peak) and of the
  // optimizer's state: what dist.shard divides (aha plan predicts them).
  m["mem/params"] = policy->param_bytes();
  if (policy->grad_bytes() > 0) m["mem/grads"] = policy->grad_bytes();
  m["mem/optimizer"] = policy->optimizer_bytes();
  const ParallelPolicy::GradSync sync = policy->grad_sync();
  if (sync.passes > 0 && sync.buckets > 0) {
    // This rank's: seconds from the end of the backward passes to summed gradients, and the share of buckets
    // whose all-reduce the last backward pass started (the rest waited for it to end).
    m["grad_sync_s"] = sync.seconds;
    m["grad_overlap"] = static_cast<double>(sync.during_backward) / static_cast<double>(sync.buckets);
  }
  if (rows == 0) {
    // No completion left to train on (dynamic sampling kept no group): figures of the trained batch do not
    // exist, so they are left out (the plot skips the step) instead of reading 0.
    for (const char* k : {"completion_len", "completion_len_max", "truncated_frac", "kl", "entropy",
                          "clip_low", "clip_high", "dual_clip", "ratio", "grad_norm", "train_pad_frac",
                          "logprob_mismatch/max_abs", "logprob_mismatch/mean_abs", "logprob_mismatch/kl"})
      m.erase(k);
    for (const auto& name : batch.scores.names) {
      m.erase("rewards/" + name);
      m.erase("rewards/" + name + "_std");
    }
  }
  return m;
}

// ---- evaluation
// ------------------------------------------------------------------------------------------------------

EvalResult Trainer::State::evaluate() {
  const auto& eval = prompts->eval();
  if (eval.empty()) return EvalResult{};
  policy->gather_weights();
  EvalResult r = rl::evaluate(*engine, tokenizer(), *rewards, eval, roles, o.eval, *world);
  policy->release_weights();
  if (opts.on_eval) opts.on_eval(r);
  return r;
}

void Trainer::State::add_eval(Json& m, const EvalResult& e) const {
  m["eval/accuracy"] = e.accuracy;
  if (roles.format >= 0) m["eval/format"] = e.format;
  m["eval/completion_len"] = e.mean_length;
  if (o.eval.k > 0) {
    m["eval/mean@" + std::to_string(o.eval.k)] = e.mean_at_k;
    m["eval/pass@" + std::to_string(o.eval.k)] = e.pass_at_k;
  }
}

// ---- what rank 0 writes and prints
// ------------------------------------------------------------------------------------------------------

void Trainer::State::write_samples(const Rollouts& b, const at::Tensor& adv) {
  const int64_t want = cfg.log.samples_per_step;
  const auto n = static_cast<int64_t>(b.size());
  if (want <= 0 || n == 0) return;
  const int64_t stride = std::max<int64_t>(1, n / want);
  for (int64_t k = 0, i = 0; k < want && i < n; ++k, i += stride) {
    const auto& c = b.completions[static_cast<size_t>(i)];
    const Prompt& p = b.prompts[static_cast<size_t>(c.prompt)];
    Json rec;
    rec["step"] = step + 1;
    rec["prompt"] = p.text;
    rec["completion"] = b.texts[static_cast<size_t>(i)];
    if (p.fields.contains("answer")) rec["answer"] = p.fields["answer"];
    Json scores = Json::object();
    for (size_t r = 0; r < b.scores.names.size(); ++r) {
      const auto& v = b.scores.per_reward[r][static_cast<size_t>(i)];
      scores[b.scores.names[r]] = v ? Json(*v) : Json(nullptr);
    }
    rec["rewards"] = scores;
    const auto& t = b.scores.total[static_cast<size_t>(i)];
    rec["total"] = t ? Json(*t) : Json(nullptr);
    rec["advantage"] = adv[i].item<double>();
    rec["finish"] = std::string(rollout::finish_reason_name(c.finish));
    rec["tokens"] = static_cast<int64_t>(c.tokens.size());
    samples->write(rec);
  }
}

void Trainer::State::console_line(const Json& m) {
  if (!opts.console) return;
  const int64_t s = m["step"].get<int64_t>();
  if (s % cfg.log.every != 0 && s != cfg.train.steps) return;
  const double elapsed = seconds_since(started);
  const double per_step = steps_this_process > 0 ? elapsed / static_cast<double>(steps_this_process) : 0;
  char buf[256];
  std::snprintf(buf, sizeof buf, "step %lld/%lld | reward %.3f ± %.3f | acc %5.1f%% | ",
                static_cast<long long>(s), static_cast<long long>(cfg.train.steps), m["reward"].get<double>(),
                m["reward_std"].get<double>(), 100 * m["accuracy"].get<double>());
  std::string line = buf;
  if (m.contains("completion_len")) {
    std::snprintf(buf, sizeof buf, "len %5.1f | kl %.4f | ent %.3f | clip %.3f | gnorm %.3f",
                  m["completion_len"].get<double>(), m["kl"].get<double>(), m["entropy"].get<double>(),
                  m["clip_low"].get<double>() + m["clip_high"].get<double>(), m["grad_norm"].get<double>());
    line += buf;
  } else {
    line += "no group with differing rewards: nothing trained";
  }
  std::snprintf(buf, sizeof buf, " | %.2f s/step | ETA %s", m["step_s"].get<double>(),
                format_duration(per_step * static_cast<double>(cfg.train.steps - s)).c_str());
  line += buf;
  // Where the step went, in percent (parts under 1% left out).
  const double total = m["step_s"].get<double>();
  std::string split;
  for (const auto& [key, label] : {std::pair{"time/rollout_s", "roll"},
                                   {"time/reward_s", "rew"},
                                   {"time/ref_s", "ref"},
                                   {"time/forward_s", "fwd"},
                                   {"time/backward_s", "bwd"},
                                   {"time/sync_s", "sync"},
                                   {"time/optimizer_s", "opt"},
                                   {"time/other_s", "other"}}) {
    const double share = total > 0 && m.contains(key) ? 100 * m[key].get<double>() / total : 0;
    if (share < 1) continue;
    std::snprintf(buf, sizeof buf, "%s%s %.0f%%", split.empty() ? "" : " ", label, share);
    split += buf;
  }
  if (!split.empty()) line += " | " + split;
  if (m.contains("eval/accuracy"))
    line += " | eval acc " +
            std::to_string(static_cast<int>(std::lround(100 * m["eval/accuracy"].get<double>()))) + "%";
  log::info(line);
}

}  // namespace aha::rl
