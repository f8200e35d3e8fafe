#include "aha/rl/trainer.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>
#include <torch/cuda.h>
#include <torch/nn/utils/clip_grad.h>
#include <torch/optim/adamw.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include "aha/core/error.h"
#include "aha/core/log.h"
#include "aha/dist/grad_reducer.h"
#include "aha/dist/process_group.h"
#include "aha/dist/sharding.h"
#include "aha/io/file.h"
#include "aha/io/jsonl.h"
#include "aha/io/safetensors.h"
#include "aha/model/balance.h"
#include "aha/model/checkpoint.h"
#include "aha/reward/reward_set.h"
#include "aha/rl/grpo.h"
#include "aha/rl/optimizer.h"
#include "aha/rl/parallel.h"
#include "aha/rl/policy.h"
#include "aha/rl/run_files.h"
#include "aha/rollout/sampler.h"

namespace aha::rl {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

std::atomic<int> g_stop{0};

extern "C" void aha_on_stop_signal(int) {
  if (g_stop.fetch_add(1) >= 1) std::_Exit(130);
}

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

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
  int64_t n = 0;
};

MeanStd mean_std(const std::vector<double>& v) {
  MeanStd m;
  m.n = static_cast<int64_t>(v.size());
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

std::vector<at::Tensor> grads_of(const std::vector<at::Tensor>& params) {
  std::vector<at::Tensor> g;
  for (const auto& p : params)
    g.push_back(p.grad());
  return g;
}

// Copies every parameter and buffer of `src` into `dst` (same architecture).
void copy_weights(torch::nn::Module& dst, torch::nn::Module& src) {
  c10::NoGradGuard no_grad;
  auto d = dst.named_parameters(true);
  for (const auto& item : src.named_parameters(true))
    d[item.key()].copy_(item.value());
  auto db = dst.named_buffers(true);
  for (const auto& item : src.named_buffers(true))
    db[item.key()].copy_(item.value());
}

const std::vector<std::string> kAccuracyLike = {"math_accuracy", "gsm8k", "countdown", "exact_match",
                                                "regex_match"};

}  // namespace

void request_stop() {
  g_stop.store(std::max(g_stop.load(), 1));
}
bool stop_requested() {
  return g_stop.load() > 0;
}
void clear_stop_request() {
  g_stop.store(0);
}
void install_stop_handlers() {
  std::signal(SIGINT, aha_on_stop_signal);
  std::signal(SIGTERM, aha_on_stop_signal);
}

// One batch of sampled, scored completions.
struct Batch {
  std::vector<Prompt> prompts;
  std::vector<std::vector<int64_t>> prompt_ids;
  std::vector<rollout::Completion> completions;  // prompt-major, G per prompt
  std::vector<std::string> texts;
  reward::BatchScores scores;
  int64_t group = 1;
  int64_t decode_tokens = 0;
  double seconds = 0;
};

struct Trainer::State {
  Config cfg;
  TrainerOptions opts;
  std::shared_ptr<dist::World> world;  // one process unless launched as a rank of several
  Policy policy;
  model::Transformer ref{nullptr};
  std::unique_ptr<PromptSource> prompts;
  std::unique_ptr<reward::RewardSet> rewards;
  std::vector<std::string> reward_names;
  int accuracy_index = -1;
  int format_index = -1;
  std::unique_ptr<torch::optim::AdamW> optim;
  std::vector<at::Tensor> trainable;
  // Sums `trainable`'s gradients over ranks (one process: idle); null with dist.shard grads or full, where
  // the sharding reduce-scatters them.
  std::unique_ptr<dist::GradReducer> grads;
  // Expert parallelism without gradient sharding: the routed experts' gradients, summed over their replicas.
  std::unique_ptr<dist::GradReducer> expert_grads;
  dist::ShardMode shard_mode = dist::ShardMode::none;
  ParallelLayout layout;
  // The policy's (and with dist.shard full the reference model's) sharded state and layer runner; null
  // without dist.shard and activation checkpointing.
  std::shared_ptr<dist::Sharding> sharding, ref_sharding;
  // Every rank must run the same number of forward and backward passes, because collectives run inside them
  // (per-layer gathers and gradient reduce-scatters): a rank out of rows runs `dummy` micro-batches.
  bool lockstep = false;
  Batch dummy;
  double weight_sync_seconds = 0;  // gathering whole weights for rollouts and evaluations, this step
  int64_t step = 0;
  int64_t bad_steps = 0;
  std::string run_dir;
  std::unique_ptr<io::JsonlWriter> metrics, samples;
  std::vector<Json> history;
  rollout::Sampler sampler;
  int64_t pad_id = 0;
  Clock::time_point started = Clock::now();
  int64_t steps_this_process = 0;

  bool main() const { return world->is_main(); }
  bool sharded() const { return shard_mode != dist::ShardMode::none; }
  bool frees_weights() const { return shard_mode == dist::ShardMode::full; }

  // Whole weights for the sampler (dist.shard full: gathered from the shards; the time is weight_sync_s).
  void gather_weights() {
    if (!frees_weights()) return;
    const auto t0 = Clock::now();
    sharding->gather_all();
    weight_sync_seconds += seconds_since(t0);
  }
  void release_weights() {
    if (frees_weights()) sharding->release_all();
  }

  // This rank's contiguous share [lo, hi) of n items (the first ranks take one more when n % W != 0).
  std::pair<size_t, size_t> shard(size_t n) const {
    const auto W = static_cast<size_t>(world->size()), r = static_cast<size_t>(world->rank());
    return {n * r / W, n * (r + 1) / W};
  }

  // ---- rollouts
  // ------------------------------------------------------------------------------------------------
  // `first_index`: the global index of prompts_in[0] (its seed is that of the same prompt in one process).
  Batch sample(std::vector<Prompt> prompts_in, int64_t group, double temperature, uint64_t seed,
               bool progress, size_t first_index = 0) {
    Batch b;
    b.prompts = std::move(prompts_in);
    b.group = group;
    rollout::SamplingParams sp;
    sp.temperature = temperature;
    sp.top_k = cfg.rollout.top_k;
    sp.top_p = cfg.rollout.top_p;
    sp.min_p = cfg.rollout.min_p;
    sp.max_new_tokens = cfg.rollout.max_new_tokens;
    sp.stop_strings = cfg.rollout.stop;
    sp.seed = seed;
    sp.n = group;
    rollout::GenerateOptions go;
    go.tokenizer = policy.tokenizer.get();
    go.pad_id = pad_id;
    if (layout.expert_parallel > 1) {
      // Every forward exchanges tokens within the expert-parallel group: its ranks call the model in step.
      go.lockstep = [this](bool mine) {
        return layout.experts->all_reduce({mine ? 1.0 : 0.0}, dist::ReduceOp::max)[0] > 0;
      };
    }
    if (b.prompts.empty()) {  // a rank whose share of a small refill is empty
      if (go.lockstep) sampler.generate(*policy.model, {}, sp, go);
      b.scores.names = rewards->names();
      b.scores.per_reward.resize(b.scores.names.size());
      return b;
    }
    for (const auto& p : b.prompts)
      b.prompt_ids.push_back(policy.tokenizer->encode(p.text, true));
    for (size_t i = 0; i < b.prompts.size(); ++i)
      go.prompt_seeds.push_back(item_seed(seed, first_index + i, 0x9A));
    const auto t0 = Clock::now();
    int64_t tokens = 0;
    auto last = t0;
    const bool bar = progress && opts.console && ::isatty(2);
    const int64_t budget = static_cast<int64_t>(b.prompts.size()) * group * cfg.rollout.max_new_tokens;
    if (bar) {
      go.on_token = [&](int64_t, int64_t) {
        ++tokens;
        const auto now = Clock::now();
        if (std::chrono::duration<double>(now - last).count() < 0.25 || seconds_since(t0) < 1.0) return;
        last = now;
        std::fprintf(stderr, "\r  rollout: %lld tokens (at most %lld), %.0f tok/s   ",
                     static_cast<long long>(tokens), static_cast<long long>(budget),
                     tokens / std::max(1e-9, seconds_since(t0)));
      };
    }
    rollout::GenerateResult gen = [&] {
      c10::InferenceMode guard;
      return sampler.generate(*policy.model, b.prompt_ids, sp, go);
    }();
    if (bar && seconds_since(t0) >= 1.0) std::fprintf(stderr, "\r%80s\r", "");
    b.seconds = seconds_since(t0);
    b.decode_tokens = gen.decode_tokens;
    b.completions = std::move(gen.completions);
    std::vector<reward::Sample> rs;
    b.texts.reserve(b.completions.size());
    for (const auto& c : b.completions)
      b.texts.push_back(policy.tokenizer->decode(c.tokens, true));
    for (size_t i = 0; i < b.completions.size(); ++i) {
      const auto& c = b.completions[i];
      const Prompt& p = b.prompts[static_cast<size_t>(c.prompt)];
      reward::Sample s;
      s.prompt = p.text;
      s.completion = b.texts[i];
      s.completion_tokens = static_cast<int64_t>(c.tokens.size());
      s.truncated = c.finish == rollout::FinishReason::length;
      s.fields = &p.fields;
      s.id = static_cast<int64_t>(i);
      rs.push_back(s);
    }
    b.scores = rewards->score(rs, cfg.reward.threads);
    return b;
  }

  bool correct(const Batch& b, size_t i) const {
    if (accuracy_index < 0) return false;
    const auto& v = b.scores.per_reward[static_cast<size_t>(accuracy_index)][i];
    return v && *v >= cfg.train.correct_threshold;
  }

  // ---- evaluation
  // ----------------------------------------------------------------------------------------------
  EvalResult evaluate() {
    EvalResult r;
    const auto& eval = prompts->eval();
    r.prompts = static_cast<int64_t>(eval.size());
    if (eval.empty()) return r;
    gather_weights();
    const int64_t chunk = 256;
    int64_t right = 0, formatted = 0, length = 0, k_right = 0, pass = 0;
    for (size_t start = 0; start < eval.size(); start += chunk) {
      // Each rank evaluates its share of the chunk, seeded as one process would seed it.
      const auto [lo, hi] = shard(std::min(eval.size(), start + chunk) - start);
      std::vector<Prompt> part(eval.begin() + static_cast<std::ptrdiff_t>(start + lo),
                               eval.begin() + static_cast<std::ptrdiff_t>(start + hi));
      Batch g = sample(part, 1, 0.0, item_seed(cfg.train.seed, start, 0xE1), true, lo);
      for (size_t i = 0; i < g.completions.size(); ++i) {
        right += correct(g, i);
        if (format_index >= 0) {
          const auto& v = g.scores.per_reward[static_cast<size_t>(format_index)][i];
          formatted += v && *v > 0;
        }
        length += static_cast<int64_t>(g.completions[i].tokens.size());
        if (r.examples.size() < 3) r.examples.push_back({g.prompts[i].text, g.texts[i]});
      }
      if (cfg.train.eval_k > 0) {
        Batch s = sample(part, cfg.train.eval_k, cfg.rollout.temperature,
                         item_seed(cfg.train.seed, start, 0xE2), true, lo);
        for (size_t p = 0; p < s.prompts.size(); ++p) {
          int64_t c = 0;
          for (int64_t j = 0; j < cfg.train.eval_k; ++j)
            c += correct(s, p * static_cast<size_t>(cfg.train.eval_k) + static_cast<size_t>(j));
          k_right += c;
          pass += c > 0;
        }
      }
    }
    release_weights();
    const std::vector<double> sums = world->all_reduce(
        {static_cast<double>(right), static_cast<double>(formatted), static_cast<double>(length),
         static_cast<double>(k_right), static_cast<double>(pass)});
    right = static_cast<int64_t>(sums[0]);
    formatted = static_cast<int64_t>(sums[1]);
    length = static_cast<int64_t>(sums[2]);
    k_right = static_cast<int64_t>(sums[3]);
    pass = static_cast<int64_t>(sums[4]);
    const double n = static_cast<double>(eval.size());
    r.accuracy = right / n;
    r.format = formatted / n;
    r.mean_length = length / n;
    if (cfg.train.eval_k > 0) {
      r.mean_at_k = k_right / (n * static_cast<double>(cfg.train.eval_k));
      r.pass_at_k = pass / n;
    }
    return r;
  }

  void add_eval(Json& m, const EvalResult& e) const {
    m["eval/accuracy"] = e.accuracy;
    if (format_index >= 0) m["eval/format"] = e.format;
    m["eval/completion_len"] = e.mean_length;
    if (cfg.train.eval_k > 0) {
      m["eval/mean@" + std::to_string(cfg.train.eval_k)] = e.mean_at_k;
      m["eval/pass@" + std::to_string(cfg.train.eval_k)] = e.pass_at_k;
    }
  }

  // ---- the update
  // ----------------------------------------------------------------------------------------------

  // Forward over rows `rows` of the batch; returns log-probs [B, T] of their completion tokens, the mask, the
  // completion tokens, and the routed load.
  struct Forward {
    at::Tensor logp, logits, mask, expert_load, balance_loss;
    int64_t positions = 0, padding = 0;  // [B, L] positions run through the model, and how many are padding
  };

  Forward forward(model::TransformerImpl& m, const Batch& b, const std::vector<size_t>& rows,
                  bool with_logits, double balance_alpha) {
    const auto B = static_cast<int64_t>(rows.size());
    int64_t L = 0, T = 0;
    for (size_t r : rows) {
      const auto& c = b.completions[r];
      const auto P = static_cast<int64_t>(b.prompt_ids[static_cast<size_t>(c.prompt)].size());
      L = std::max<int64_t>(L, P + static_cast<int64_t>(c.tokens.size()));
      T = std::max<int64_t>(T, static_cast<int64_t>(c.tokens.size()));
    }
    T = std::max<int64_t>(T, 1);
    Forward f;
    f.positions = B * L;
    f.padding = B * L;
    for (size_t r : rows)
      f.padding -= static_cast<int64_t>(b.prompt_ids[static_cast<size_t>(b.completions[r].prompt)].size() +
                                        b.completions[r].tokens.size());
    std::vector<int64_t> ids(static_cast<size_t>(B * L), pad_id), attn(static_cast<size_t>(B * L), 0);
    std::vector<int64_t> pos(static_cast<size_t>(B * T), 0), tgt(static_cast<size_t>(B * T), 0);
    std::vector<float> mask(static_cast<size_t>(B * T), 0.0f);
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
      for (int64_t t = 0; t < T; ++t) {
        const bool in = t < static_cast<int64_t>(c.tokens.size());
        pos[static_cast<size_t>(i * T + t)] = std::min(L - 1, P - 1 + t);
        tgt[static_cast<size_t>(i * T + t)] = in ? c.tokens[static_cast<size_t>(t)] : 0;
        mask[static_cast<size_t>(i * T + t)] = in ? 1.0f : 0.0f;
      }
    }
    const auto dev = policy.device;
    auto long_opts = at::TensorOptions().dtype(at::kLong);
    at::Tensor input = at::from_blob(ids.data(), {B, L}, long_opts).to(dev, false, true);
    at::Tensor am = at::from_blob(attn.data(), {B, L}, long_opts).to(dev, false, true);
    at::Tensor gather = at::from_blob(pos.data(), {B, T}, long_opts).to(dev, false, true);
    at::Tensor target = at::from_blob(tgt.data(), {B, T}, long_opts).to(dev, false, true);
    f.mask = at::from_blob(mask.data(), {B, T}, at::TensorOptions().dtype(at::kFloat)).to(dev, false, true);
    model::ForwardInput in;
    in.input_ids = input;
    in.attention_mask = am;
    in.compute_logits = false;
    in.balance_alpha = balance_alpha;
    model::ForwardOutput out = m.forward(in);
    at::Tensor h = out.hidden.gather(1, gather.unsqueeze(-1).expand({B, T, out.hidden.size(2)}));
    at::Tensor logits = m.logits(h);
    f.logp = token_logprobs(logits, target, cfg.rollout.temperature);
    if (with_logits) f.logits = logits;
    f.expert_load = out.expert_load;
    f.balance_loss = out.balance_loss;
    return f;
  }

  // A micro-batch of one padding token whose loss is multiplied by 0: it runs the same collectives as a real
  // one (lockstep) and adds nothing to the gradients.
  void dummy_pass(bool last) {
    Forward f = forward(*policy.model, dummy, {0}, false, cfg.train.balance_alpha);
    at::Tensor loss = f.logp.sum() * 0.0;
    if (f.balance_loss.defined()) loss = loss + f.balance_loss * 0.0;
    if (cfg.grpo.beta > 0) {
      c10::NoGradGuard no_grad;
      forward(*ref, dummy, {0}, false, 0);
    }
    if (cfg.dist.overlap && last) arm(loss);
    loss.backward();
    if (sharding) sharding->after_backward();
  }

  // The last micro-batch's backward pass completes the gradients: the reducers start as buckets fill.
  void arm(const at::Tensor& loss) {
    if (grads) grads->arm(loss);
    if (expert_grads) expert_grads->arm(loss);
  }

  // clip_grad_norm_ of an expert-parallel run without sharding: each rank holds its own block of the experts,
  // so their squares are summed over the expert-parallel group; the rest is the same on every rank.
  double clip_expert_parallel(double max_norm) {
    c10::NoGradGuard no_grad;
    double shared = 0, experts = 0;
    std::vector<at::Tensor> all;
    for (const auto& p : policy.model->named_parameters()) {
      const at::Tensor& g = p.value().grad();
      if (!g.defined()) continue;
      all.push_back(g);
      (is_routed_expert(p.key()) ? experts : shared) += g.to(at::kDouble).pow(2).sum().item<double>();
    }
    experts = layout.experts->all_reduce(std::vector<double>{experts})[0];
    const double norm = std::sqrt(shared + experts);
    if (max_norm > 0 && std::isfinite(norm)) {
      const double coef = std::min(1.0, max_norm / (norm + 1e-6));
      for (auto& g : all)
        g.mul_(coef);
    }
    return norm;
  }

  Json step_once();
  void find_reward_roles();
  void setup_parallel();
  void export_model(model::TransformerImpl& m, dist::Sharding* s, const std::string& dir);
  void write_samples(const Batch& b, const at::Tensor& adv);
  void console_line(const Json& m);
  void save_checkpoint();
  void check_replicas();
  void load_checkpoint(const std::string& dir);
  void write_plot();
};

Json Trainer::State::step_once() {
  const auto t_step = Clock::now();
  const int64_t G = cfg.rollout.num_generations;
  const int64_t P = cfg.train.prompts_per_step;
  // ---- 1-2. sample and score, refilling zero-variance groups (dynamic sampling)
  // --------------------------------
  Batch batch;
  batch.group = G;
  double rollout_seconds = 0;
  int64_t rollout_tokens = 0, rounds = 0, groups_seen = 0, groups_zero = 0;
  int64_t correct_count = 0, scored = 0;
  int64_t kept = 0;  // groups kept in the global batch (all ranks)
  std::vector<double> all_totals;
  weight_sync_seconds = 0;
  if (layout.exchange) layout.exchange->reset_timing();
  gather_weights();
  for (int64_t round = 0;; ++round) {
    const int64_t want = round == 0 ? P : P - kept;
    // Every rank draws the same prompts and samples its share of them.
    std::vector<Prompt> drawn = prompts->next(want);
    const auto n_all = static_cast<int64_t>(drawn.size());
    const auto [lo, hi] = shard(drawn.size());
    std::vector<Prompt> mine(std::make_move_iterator(drawn.begin() + static_cast<std::ptrdiff_t>(lo)),
                             std::make_move_iterator(drawn.begin() + static_cast<std::ptrdiff_t>(hi)));
    Batch b = sample(std::move(mine), G, cfg.rollout.temperature,
                     item_seed(cfg.rollout.seed ^ cfg.train.seed, static_cast<uint64_t>(step),
                               static_cast<uint64_t>(round)),
                     true, lo);
    rollout_seconds += b.seconds;
    rollout_tokens += b.decode_tokens;
    rounds = round + 1;
    const auto n = static_cast<int64_t>(b.prompts.size());
    std::vector<double> totals(b.completions.size(), 0.0);
    std::vector<uint8_t> valid(b.completions.size(), 0);
    for (size_t i = 0; i < b.completions.size(); ++i) {
      if (b.scores.total[i]) {
        totals[i] = *b.scores.total[i];
        valid[i] = 1;
        all_totals.push_back(totals[i]);
      }
      correct_count += correct(b, i);
      ++scored;
    }
    // Which of the drawn groups have rewards that all agree, as every rank sees it: the keep decisions below
    // are then the same on every rank and equal to one process's.
    std::vector<double> zero(static_cast<size_t>(n_all), 0.0);
    if (n > 0) {
      at::Tensor z =
          zero_variance_groups(at::tensor(totals, at::kDouble),
                               at::tensor(std::vector<int64_t>(valid.begin(), valid.end())).to(at::kBool), G);
      for (int64_t g = 0; g < n; ++g)
        zero[lo + static_cast<size_t>(g)] = z[g].item<bool>() ? 1.0 : 0.0;
    }
    zero = world->all_reduce(std::move(zero));
    groups_seen += n_all;
    for (double z : zero)
      groups_zero += z > 0;
    const bool last_round = !cfg.grpo.dynamic_sampling || round >= cfg.grpo.max_resample_rounds;
    for (int64_t gg = 0; gg < n_all; ++gg) {
      const bool keep = !cfg.grpo.dynamic_sampling || zero[static_cast<size_t>(gg)] == 0;
      if (!keep || kept >= P) continue;
      ++kept;
      if (gg < static_cast<int64_t>(lo) || gg >= static_cast<int64_t>(hi)) continue;
      const int64_t g = gg - static_cast<int64_t>(lo);
      const auto new_index = static_cast<int64_t>(batch.prompts.size());
      batch.prompts.push_back(b.prompts[static_cast<size_t>(g)]);
      batch.prompt_ids.push_back(b.prompt_ids[static_cast<size_t>(g)]);
      for (int64_t j = 0; j < G; ++j) {
        const auto i = static_cast<size_t>(g * G + j);
        rollout::Completion c = b.completions[i];
        c.prompt = new_index;
        batch.completions.push_back(std::move(c));
        batch.texts.push_back(b.texts[i]);
      }
      if (batch.scores.names.empty()) {
        batch.scores.names = b.scores.names;
        batch.scores.per_reward.resize(b.scores.per_reward.size());
      }
      for (int64_t j = 0; j < G; ++j) {
        const auto i = static_cast<size_t>(g * G + j);
        for (size_t r = 0; r < b.scores.per_reward.size(); ++r)
          batch.scores.per_reward[r].push_back(b.scores.per_reward[r][i]);
        batch.scores.total.push_back(b.scores.total[i]);
        batch.scores.extras.push_back(b.scores.extras[i]);
      }
    }
    if (kept >= P || last_round) break;
  }
  release_weights();
  if (batch.scores.names.empty()) {  // this rank kept no group
    batch.scores.names = rewards->names();
    batch.scores.per_reward.resize(batch.scores.names.size());
  }
  const auto N = static_cast<int64_t>(batch.completions.size());

  Json m;
  m["step"] = step + 1;
  // ---- 3. advantages and the loss mask
  // ---------------------------------------------------------------------------
  std::vector<double> totals(static_cast<size_t>(N), 0.0);
  std::vector<int64_t> valid(static_cast<size_t>(N), 0);
  for (int64_t i = 0; i < N; ++i) {
    const auto& t = batch.scores.total[static_cast<size_t>(i)];
    if (t) {
      totals[static_cast<size_t>(i)] = *t;
      valid[static_cast<size_t>(i)] = 1;
    }
  }
  at::Tensor adv;
  if (world->size() == 1) {
    adv = N > 0 ? compute_advantages(at::tensor(totals, at::kDouble), at::tensor(valid).to(at::kBool), G,
                                     parse_advantage(cfg.grpo.advantage), cfg.grpo.std_eps)
                : at::zeros({0});
  } else {
    // Over the whole batch (batch_std needs every rank's rewards), then this rank's rows. NaN: no reward.
    std::vector<double> mine(static_cast<size_t>(N));
    for (int64_t i = 0; i < N; ++i)
      mine[static_cast<size_t>(i)] =
          valid[static_cast<size_t>(i)] ? totals[static_cast<size_t>(i)] : std::nan("");
    size_t offset = 0;
    std::vector<double> all = world->all_gather(mine, &offset);
    std::vector<int64_t> all_valid(all.size());
    for (size_t i = 0; i < all.size(); ++i) {
      all_valid[i] = !std::isnan(all[i]);
      if (!all_valid[i]) all[i] = 0;
    }
    at::Tensor adv_all =
        all.empty() ? at::zeros({0}, at::kDouble)
                    : compute_advantages(at::tensor(all, at::kDouble), at::tensor(all_valid).to(at::kBool), G,
                                         parse_advantage(cfg.grpo.advantage), cfg.grpo.std_eps);
    adv = adv_all.narrow(0, static_cast<int64_t>(offset), N).clone();
  }
  std::vector<uint8_t> in_loss(static_cast<size_t>(N), 0);
  LossDenominators den;
  den.max_length = static_cast<double>(cfg.rollout.max_new_tokens);
  int64_t truncated = 0, len_sum = 0, len_max = 0;
  for (int64_t i = 0; i < N; ++i) {
    const auto& c = batch.completions[static_cast<size_t>(i)];
    const bool trunc = c.finish == rollout::FinishReason::length;
    truncated += trunc;
    len_sum += static_cast<int64_t>(c.tokens.size());
    len_max = std::max<int64_t>(len_max, static_cast<int64_t>(c.tokens.size()));
    const bool use =
        valid[static_cast<size_t>(i)] && !(trunc && cfg.grpo.mask_truncated) && !c.tokens.empty();
    in_loss[static_cast<size_t>(i)] = use;
    if (use) {
      den.tokens += static_cast<double>(c.tokens.size());
      den.sequences += 1;
    }
  }

  // ---- 4. mu passes over micro-batches
  // ---------------------------------------------------------------------------
  const auto t_train = Clock::now();
  LossOptions lo;
  lo.aggregation = parse_aggregation(cfg.grpo.loss_aggregation);
  lo.ratio = parse_ratio_level(cfg.grpo.ratio);
  lo.epsilon_low = cfg.grpo.epsilon_low;
  lo.epsilon_high = cfg.grpo.epsilon_high;
  lo.dual_clip = cfg.grpo.dual_clip;
  lo.beta = cfg.grpo.beta;
  lo.kl = parse_kl_estimator(cfg.grpo.kl_estimator);
  lo.entropy_coef = cfg.grpo.entropy_coef;
  const double lr = scheduled_lr(cfg.optim, step, cfg.train.steps);
  set_lr(*optim, lr);

  std::vector<size_t> loss_rows;
  for (int64_t i = 0; i < N; ++i)
    if (in_loss[static_cast<size_t>(i)]) loss_rows.push_back(static_cast<size_t>(i));
  if (cfg.train.group_by_length) {
    // Rows of similar length share a micro-batch, so little of it is padding; ties keep the batch order.
    const auto length = [&](size_t r) {
      const auto& c = batch.completions[r];
      return batch.prompt_ids[static_cast<size_t>(c.prompt)].size() + c.tokens.size();
    };
    std::stable_sort(loss_rows.begin(), loss_rows.end(),
                     [&](size_t a, size_t b) { return length(a) < length(b); });
  }
  // The normalisers of the whole batch: each rank's loss is then its share of the global loss.
  double global_loss_rows = static_cast<double>(loss_rows.size());
  {
    const std::vector<double> v = world->all_reduce({den.tokens, den.sequences, global_loss_rows});
    den.tokens = v[0];
    den.sequences = v[1];
    global_loss_rows = v[2];
  }
  LossStats total_stats;
  double loss_sum = 0, entropy_sum = 0, grad_norm = 0, grad_sync_seconds = 0;
  int64_t grad_syncs = 0;
  bool finite = true;
  at::Tensor expert_load;
  int64_t train_tokens = 0, train_positions = 0, train_padding = 0;
  int64_t grad_bytes = 0;
  const auto mb = static_cast<size_t>(cfg.train.micro_batch_size);
  // Micro-batches per pass: every rank runs as many as the rank with the most rows when collectives run
  // inside the passes (the others pad with dummy ones).
  size_t micro_batches = (loss_rows.size() + mb - 1) / mb;
  if (lockstep)
    micro_batches =
        static_cast<size_t>(world->all_reduce({static_cast<double>(micro_batches)}, dist::ReduceOp::max)[0]);
  if (frees_weights() && global_loss_rows > 0) {
    const auto t0 = Clock::now();
    sharding->gather_root();
    if (ref_sharding) ref_sharding->gather_root();
    weight_sync_seconds += seconds_since(t0);
  }
  for (int64_t iter = 0; iter < cfg.grpo.mu && global_loss_rows > 0; ++iter) {
    // The root's weights after the previous pass's optimizer step (the layers refresh theirs as they gather).
    if (iter > 0 && frees_weights()) sharding->gather_root();
    optim->zero_grad();
    double iter_loss = 0;
    for (size_t k = 0; k < micro_batches; ++k) {
      const size_t start = k * mb;
      const bool last = k + 1 == micro_batches;
      if (start >= loss_rows.size()) {
        dummy_pass(last);
        continue;
      }
      std::vector<size_t> rows(
          loss_rows.begin() + static_cast<std::ptrdiff_t>(start),
          loss_rows.begin() + static_cast<std::ptrdiff_t>(std::min(loss_rows.size(), start + mb)));
      Forward f = forward(*policy.model, batch, rows, iter == 0 || cfg.grpo.entropy_coef > 0,
                          cfg.train.balance_alpha);
      LossInput li;
      li.logp = f.logp;
      li.mask = f.mask;
      if (cfg.grpo.entropy_coef > 0) li.entropy = token_entropy(f.logits, cfg.rollout.temperature, true);
      {
        const auto B = static_cast<int64_t>(rows.size());
        const int64_t T = f.logp.size(1);
        std::vector<float> old(static_cast<size_t>(B * T), 0.0f), a(static_cast<size_t>(B));
        for (int64_t r = 0; r < B; ++r) {
          const auto& c = batch.completions[rows[static_cast<size_t>(r)]];
          for (size_t t = 0; t < c.logprobs.size(); ++t)
            old[static_cast<size_t>(r * T) + t] = c.logprobs[t];
          a[static_cast<size_t>(r)] = adv[static_cast<int64_t>(rows[static_cast<size_t>(r)])].item<float>();
        }
        li.old_logp = at::from_blob(old.data(), {B, T}, at::TensorOptions().dtype(at::kFloat))
                          .to(policy.device, false, true);
        li.advantages = at::from_blob(a.data(), {B}, at::TensorOptions().dtype(at::kFloat))
                            .to(policy.device, false, true);
      }
      if (cfg.grpo.beta > 0) {
        c10::NoGradGuard no_grad;
        li.ref_logp = forward(*ref, batch, rows, false, 0).logp;
      }
      LossOutput lout = policy_loss(li, lo, den);
      at::Tensor loss = lout.loss;
      if (f.balance_loss.defined())
        loss = loss + f.balance_loss * (static_cast<double>(rows.size()) / global_loss_rows);
      // The last micro-batch's backward pass completes the gradients: reduce buckets as they fill.
      if (cfg.dist.overlap && last) arm(loss);
      loss.backward();
      if (sharding) sharding->after_backward();
      iter_loss += loss.item<double>();
      if (iter == 0) {
        total_stats.clipped_low += lout.stats.clipped_low;
        total_stats.clipped_high += lout.stats.clipped_high;
        total_stats.dual_clipped += lout.stats.dual_clipped;
        total_stats.kl += lout.stats.kl;
        total_stats.ratio += lout.stats.ratio;
        total_stats.tokens += lout.stats.tokens;
        at::Tensor ent =
            li.entropy.defined() ? li.entropy.detach() : token_entropy(f.logits, cfg.rollout.temperature);
        entropy_sum += (ent * f.mask).sum().item<double>();
        at::Tensor load = f.expert_load.defined() ? f.expert_load.cpu() : at::Tensor();
        if (load.defined()) expert_load = expert_load.defined() ? expert_load + load : load;
      }
      train_tokens += f.mask.sum().item<int64_t>();
      if (iter == 0) {
        train_positions += f.positions;
        train_padding += f.padding;
      }
    }
    if (grads) {
      grads->finish();  // every rank, also one without micro-batches: collectives stay in step
      if (expert_grads) expert_grads->finish();
      grad_sync_seconds += grads->last().finish_seconds;
      ++grad_syncs;
    }
    if (shard_mode == dist::ShardMode::optimizer) {
      sharding->take_grads();                                // this rank's slices of the summed gradients
      if (iter == 0) grad_bytes = sharding->memory().grads;  // the peak: whole gradients and the slices
      policy.model->zero_grad();
    }
    if (world->size() > 1) iter_loss = world->all_reduce(std::vector<double>{iter_loss})[0];
    loss_sum = iter_loss;
    if (!std::isfinite(iter_loss)) {
      finite = false;
      break;
    }
    if (sharded()) {
      grad_norm = sharding->clip_grad_norm(cfg.optim.grad_clip);
    } else if (layout.expert_parallel > 1) {
      grad_norm = clip_expert_parallel(cfg.optim.grad_clip);
    } else {
      grad_norm = cfg.optim.grad_clip > 0
                      ? torch::nn::utils::clip_grad_norm_(trainable, cfg.optim.grad_clip)
                      : torch::nn::utils::clip_grad_norm_(trainable, std::numeric_limits<double>::infinity());
    }
    if (!std::isfinite(grad_norm)) {
      finite = false;
      break;
    }
    if (iter == 0 && shard_mode != dist::ShardMode::optimizer)
      grad_bytes = sharded() ? sharding->memory().grads : dist::storage_bytes(grads_of(trainable));
    optim->step();
    if (sharded()) sharding->after_step();
  }
  optim->zero_grad();
  if (sharded()) policy.model->zero_grad();
  if (frees_weights()) {
    sharding->release_root();
    if (ref_sharding) ref_sharding->release_root();
  }
  if (!finite) {
    ++bad_steps;
    log::warn("step ", step + 1, ": the loss or the gradient is not finite (loss ", loss_sum, ", grad norm ",
              grad_norm, "); the update is skipped (", bad_steps, " in a row)");
  } else {
    bad_steps = 0;
  }
  if (world->size() > 1) {
    // Expert loads of the whole batch (a rank without rows has none: zeros of the others' shape).
    std::vector<double> shape = {0, 0};
    if (expert_load.defined() && expert_load.dim() == 2)
      shape = {static_cast<double>(expert_load.size(0)), static_cast<double>(expert_load.size(1))};
    shape = world->all_reduce(shape, dist::ReduceOp::max);
    if (shape[0] > 0) {
      if (!expert_load.defined())
        expert_load = at::zeros({static_cast<int64_t>(shape[0]), static_cast<int64_t>(shape[1])}, at::kLong);
      world->all_reduce(expert_load);
    }
  }
  if (finite) {
    if (cfg.train.bias_update_speed > 0 && expert_load.defined() && expert_load.numel() > 0)
      model::update_routing_bias(*policy.model, expert_load.to(policy.device), cfg.train.bias_update_speed);
  }
  if (cfg.grpo.ref_reset_every > 0 && ref && (step + 1) % cfg.grpo.ref_reset_every == 0) {
    if (ref_sharding) {
      ref_sharding->copy_masters_from(*sharding);
    } else {
      copy_weights(*ref, *policy.model);
    }
  }
  const double train_seconds = seconds_since(t_train);

  // ---- metrics (of the whole batch: sums and gathers over ranks)
  // ---------------------------------------------------------------------------------------------------
  int64_t N_all = N, groups_all = static_cast<int64_t>(batch.prompts.size());
  if (world->size() > 1) {
    all_totals = world->all_gather(all_totals);
    const std::vector<double> sums = world->all_reduce(
        {static_cast<double>(correct_count), static_cast<double>(scored), static_cast<double>(len_sum),
         static_cast<double>(truncated), static_cast<double>(N), total_stats.clipped_low,
         total_stats.clipped_high, total_stats.dual_clipped, total_stats.kl, total_stats.ratio,
         total_stats.tokens, entropy_sum, static_cast<double>(train_tokens),
         static_cast<double>(rollout_tokens), static_cast<double>(train_positions),
         static_cast<double>(train_padding)});
    correct_count = static_cast<int64_t>(sums[0]);
    scored = static_cast<int64_t>(sums[1]);
    len_sum = static_cast<int64_t>(sums[2]);
    truncated = static_cast<int64_t>(sums[3]);
    N_all = static_cast<int64_t>(sums[4]);
    total_stats.clipped_low = sums[5];
    total_stats.clipped_high = sums[6];
    total_stats.dual_clipped = sums[7];
    total_stats.kl = sums[8];
    total_stats.ratio = sums[9];
    total_stats.tokens = sums[10];
    entropy_sum = sums[11];
    train_tokens = static_cast<int64_t>(sums[12]);
    rollout_tokens = static_cast<int64_t>(sums[13]);
    train_positions = static_cast<int64_t>(sums[14]);
    train_padding = static_cast<int64_t>(sums[15]);
    const std::vector<double> maxes =
        world->all_reduce({static_cast<double>(len_max), rollout_seconds}, dist::ReduceOp::max);
    len_max = static_cast<int64_t>(maxes[0]);
    rollout_seconds = maxes[1];
    groups_all = kept;
  }
  const MeanStd rew = mean_std(all_totals);
  m["loss"] = finite ? loss_sum : std::nan("");
  m["reward"] = rew.mean;
  m["reward_std"] = rew.std;
  for (size_t r = 0; r < batch.scores.names.size(); ++r) {
    std::vector<double> v;
    if (world->size() == 1) {
      for (const auto& x : batch.scores.per_reward[r])
        if (x) v.push_back(*x);
    } else {
      std::vector<double> mine;  // NaN: no score
      for (const auto& x : batch.scores.per_reward[r])
        mine.push_back(x ? *x : std::nan(""));
      for (double x : world->all_gather(mine))
        if (!std::isnan(x)) v.push_back(x);
    }
    const MeanStd ms = mean_std(v);
    m["rewards/" + batch.scores.names[r]] = ms.mean;
    m["rewards/" + batch.scores.names[r] + "_std"] = ms.std;
  }
  m["accuracy"] = scored ? static_cast<double>(correct_count) / static_cast<double>(scored) : 0.0;
  m["zero_std_frac"] =
      groups_seen ? static_cast<double>(groups_zero) / static_cast<double>(groups_seen) : 0.0;
  m["completion_len"] = N_all ? static_cast<double>(len_sum) / static_cast<double>(N_all) : 0.0;
  m["completion_len_max"] = len_max;
  m["truncated_frac"] = N_all ? static_cast<double>(truncated) / static_cast<double>(N_all) : 0.0;
  const double tok = std::max(1.0, total_stats.tokens);
  m["kl"] = total_stats.kl / tok;
  m["entropy"] = entropy_sum / tok;
  m["clip_low"] = total_stats.clipped_low / tok;
  m["clip_high"] = total_stats.clipped_high / tok;
  if (cfg.grpo.dual_clip > 1) m["dual_clip"] = total_stats.dual_clipped / tok;
  m["ratio"] = total_stats.ratio / tok;
  m["grad_norm"] = grad_norm;
  m["lr"] = lr;
  m["groups"] = groups_all;
  if (cfg.grpo.dynamic_sampling) m["sampling_rounds"] = rounds;
  if (expert_load.defined() && expert_load.numel() > 0)
    m["expert_imbalance"] = model::load_imbalance(expert_load).mean().item<double>();
  m["rollout_tok_s"] = rollout_seconds > 0 ? rollout_tokens / rollout_seconds : 0.0;
  m["train_tok_s"] = train_seconds > 0 ? train_tokens / train_seconds : 0.0;
  // Share of the training forward's positions that are padding (train.group_by_length lowers it).
  m["train_pad_frac"] =
      train_positions > 0 ? static_cast<double>(train_padding) / static_cast<double>(train_positions) : 0.0;
  m["step_s"] = seconds_since(t_step);
  if (frees_weights()) m["weight_sync_s"] = weight_sync_seconds;
  if (layout.exchange) {
    // This rank's time in the MoE layers' token all-to-alls (rollout and training, both directions).
    m["expert_exchange_s"] = layout.exchange->seconds();
    m["expert_exchanges"] = layout.exchange->exchanges();
  }
  // This rank's live bytes of weights (module and fp32 masters), of gradients (before the optimizer step)
  // and of the optimizer's state: what dist.shard divides (aha plan predicts them).
  m["mem/params"] =
      sharded() && sharding ? sharding->memory().params : dist::storage_bytes(policy.model->parameters());
  if (grad_bytes > 0) m["mem/grads"] = grad_bytes;
  m["mem/optimizer"] = optimizer_state_bytes(*optim);
  if (grads && grads->active() && grad_syncs > 0 && grads->last().buckets > 0) {
    // This rank's: seconds from the end of the backward passes to summed gradients, and the share of buckets
    // whose all-reduce the last backward pass started (the rest waited for it to end).
    m["grad_sync_s"] = grad_sync_seconds;
    m["grad_overlap"] =
        static_cast<double>(grads->last().during_backward) / static_cast<double>(grads->last().buckets);
  }
  if (N_all == 0) {
    // No completion left to train on (dynamic sampling kept no group): figures of the trained batch do not
    // exist, so they are left out (the plot skips the step) instead of reading 0.
    for (const char* k : {"completion_len", "completion_len_max", "truncated_frac", "kl", "entropy",
                          "clip_low", "clip_high", "dual_clip", "ratio", "grad_norm", "train_pad_frac"})
      m.erase(k);
    for (const auto& name : batch.scores.names) {
      m.erase("rewards/" + name);
      m.erase("rewards/" + name + "_std");
    }
  }
  if (main()) write_samples(batch, adv);
  return m;
}

void Trainer::State::write_samples(const Batch& b, const at::Tensor& adv) {
  const int64_t want = cfg.log.samples_per_step;
  const auto n = static_cast<int64_t>(b.completions.size());
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
  if (m.contains("eval/accuracy"))
    line += " | eval acc " +
            std::to_string(static_cast<int>(std::lround(100 * m["eval/accuracy"].get<double>()))) + "%";
  log::info(line);
}

void Trainer::State::write_plot() {
  write_run_plot(run_dir, history);
}

// ---- checkpoints
// -------------------------------------------------------------------------------------------------

void Trainer::State::check_replicas() {
  // Sharded ranks hold different slices by design; expert-parallel ones different experts.
  if (world->size() == 1 || sharded()) return;
  double sum = 0;
  {
    c10::NoGradGuard no_grad;
    for (const auto& p : policy.model->named_parameters())
      if (layout.expert_parallel == 1 || !is_routed_expert(p.key()))
        sum += p.value().to(at::kDouble).sum().item<double>();
  }
  const std::vector<double> v = world->all_reduce({sum, -sum}, dist::ReduceOp::max);
  AHA_CHECK(
      v[0] == -v[1], "at step ", step, " the ranks' parameters differ (checksums from ", -v[1], " to ", v[0],
      "): data-parallel replicas must stay identical, so the run stops rather than train diverged copies");
}

void Trainer::State::export_model(model::TransformerImpl& m, dist::Sharding* s, const std::string& dir) {
  // Whole fp32 weights: the module's own, or gathered from the shards (rank 0 receives them).
  std::vector<io::NamedTensor> gathered;
  if (s) {
    gathered = s->full_tensors();
  } else {
    gathered = gather_experts(m, layout);  // expert parallelism: each rank holds a block of the experts
  }
  if (!main()) return;
  std::map<std::string, at::Tensor> by_name(gathered.begin(), gathered.end());
  std::vector<io::NamedTensor> tensors;
  for (const auto& p : m.named_parameters()) {
    const auto it = by_name.find(p.key());
    tensors.emplace_back(p.key(), it != by_name.end() ? it->second : p.value());
  }
  for (const auto& b : m.named_buffers())
    tensors.emplace_back(b.key(), b.value());
  model::save_pretrained(m.config(), tensors, dir, {.dtype = at::kFloat});
}

void Trainer::State::save_checkpoint() {
  check_replicas();
  const std::string name = "step-" + std::to_string(step);
  const fs::path staging = fs::path(run_dir) / "checkpoints" / (".shards-" + name);
  const fs::path exported = fs::path(run_dir) / "checkpoints" / (".export-" + name);
  // Ranks that hold different state (sharded, or different experts) each write theirs beside the checkpoint;
  // rank 0 gathers the whole model and moves everything into the checkpoint when it commits.
  const bool per_rank = sharded() || layout.expert_parallel > 1;
  if (per_rank) {
    if (main()) {
      fs::remove_all(staging);
      fs::remove_all(exported);
    }
    world->barrier();
    export_model(*policy.model, sharded() ? sharding.get() : nullptr, (exported / "model").string());
    if (ref) export_model(*ref, ref_sharding.get(), (exported / "ref").string());
    if (sharded()) {
      sharding->save(staging.string(), [&](const at::Tensor& master) {
        const AdamMoments mo = adam_moments(*optim, master);
        return dist::Sharding::Moments{mo.exp_avg, mo.exp_avg_sq, mo.step};
      });
    } else {
      io::make_dirs(staging.string());
      save_optimizer(*optim,
                     (staging / ("optimizer-rank-" + std::to_string(world->rank()) + ".pt")).string());
    }
    world->barrier();
  }
  if (!main()) return;
  Json st;
  st["step"] = step;
  st["prompts"] = prompts->state();
  st["bad_steps"] = bad_steps;
  st["shard"] = cfg.dist.shard;
  st["world_size"] = world->size();
  st["expert_parallel"] = layout.expert_parallel;
  const std::string dir = commit_checkpoint(
      run_dir, name,
      [&](const std::string& tmp) {
        if (per_rank) {
          fs::rename(exported / "model", fs::path(tmp) / "model");
          io::write_file_atomic((fs::path(tmp) / "model" / "tokenizer.json").string(), policy.tokenizer_json);
          if (ref) fs::rename(exported / "ref", fs::path(tmp) / "ref");
          fs::remove_all(exported);
          fs::rename(staging, fs::path(tmp) / "shards");
        } else {
          save_policy(policy, (fs::path(tmp) / "model").string());
          if (ref) model::save_pretrained(*ref, (fs::path(tmp) / "ref").string(), {.dtype = at::kFloat});
          save_optimizer(*optim, (fs::path(tmp) / "optimizer.pt").string());
        }
        at::Tensor rng = at::detail::getDefaultCPUGenerator().get_state();
        io::save_safetensors((fs::path(tmp) / "rng.safetensors").string(), {{"cpu_generator", rng}});
      },
      std::move(st), cfg.train.keep_checkpoints);
  log::info("checkpoint: ", dir);
}

void Trainer::State::load_checkpoint(const std::string& dir) {
  const Json st = read_checkpoint_state(dir);
  const std::string saved = st.value("shard", std::string("none"));
  AHA_CHECK(
      (saved == "none") == !sharded(), "checkpoint ", dir, " was written with dist.shard=", saved,
      ", this run has dist.shard=", cfg.dist.shard,
      ": a sharded checkpoint resumes with any sharded mode (optimizer, grads, full) at any world size, "
      "an unsharded one without sharding; resume with --set dist.shard=",
      saved == "none" ? "none" : saved);
  step = st.at("step").get<int64_t>();
  bad_steps = st.value("bad_steps", int64_t{0});
  prompts->restore(st.at("prompts"));
  if (sharded()) {
    sharding->load((fs::path(dir) / "shards").string(),
                   [&](const at::Tensor& master, const dist::Sharding::Moments& m) {
                     set_adam_moments(*optim, master, {m.exp_avg, m.exp_avg_sq, m.step});
                   });
  } else if (layout.expert_parallel > 1) {
    // Each rank's AdamW moments of its own experts: only the same layout can take them.
    const int64_t w = st.value("world_size", int64_t{1}), n = st.value("expert_parallel", int64_t{1});
    AHA_CHECK(w == world->size() && n == layout.expert_parallel, "checkpoint ", dir, " was written by ", w,
              " rank(s) with dist.expert_parallel ", n,
              "; without sharding it resumes only with the same "
              "layout (dist.shard optimizer, grads or full checkpoints reshard to any)");
    load_optimizer(
        *optim,
        (fs::path(dir) / "shards" / ("optimizer-rank-" + std::to_string(world->rank()) + ".pt")).string());
  } else {
    load_optimizer(*optim, (fs::path(dir) / "optimizer.pt").string());
  }
  {
    io::Checkpoint rng = io::Checkpoint::open((fs::path(dir) / "rng.safetensors").string());
    at::Generator gen = at::detail::getDefaultCPUGenerator();
    gen.set_state(rng.tensor("cpu_generator"));
  }
}

void Trainer::State::setup_parallel() {
  const bool checkpointing = cfg.train.activation_checkpointing;
  if (sharded() || checkpointing) {
    // Sharded: fp32 masters, the module's weights in the compute dtype (model.precision bf16: bf16).
    const at::ScalarType compute = sharded() ? policy.dtype : at::kFloat;
    sharding = std::make_shared<dist::Sharding>(
        world, shard_units(*policy.model, layout),
        dist::ShardingOptions{shard_mode, checkpointing, compute, policy.device});
    policy.model->set_layer_runner(sharding);
  }
  // The frozen reference is sharded like the policy's weights when those are (it has no gradients or
  // moments).
  if (ref && frees_weights()) {
    ref_sharding = std::make_shared<dist::Sharding>(
        world, shard_units(*ref, layout),
        dist::ShardingOptions{dist::ShardMode::full, false, policy.dtype, policy.device});
    ref->set_layer_runner(ref_sharding);
  }
  // A model left on the host (full sharding on a GPU): its buffers follow the weights to the device.
  for (model::TransformerImpl* m : {policy.model.get(), ref ? ref.get() : nullptr}) {
    if (!m) continue;
    c10::NoGradGuard no_grad;
    for (auto& b : m->buffers())
      if (b.device() != policy.device) b.set_data(b.to(policy.device));
  }
  if (sharded()) {
    optim = make_adamw(sharding->masters(true), sharding->masters(false), cfg.optim);
  } else {
    optim = make_adamw(*policy.model, cfg.optim, &trainable);
  }
  if (shard_mode == dist::ShardMode::none || shard_mode == dist::ShardMode::optimizer) {
    // Whole gradients summed over the ranks: the routed experts' over their replicas only (expert
    // parallelism).
    std::vector<at::Tensor> shared, experts;
    for (const auto& p : policy.model->named_parameters()) {
      if (!p.value().requires_grad()) continue;
      (layout.expert_parallel > 1 && is_routed_expert(p.key()) ? experts : shared).push_back(p.value());
    }
    if (trainable.empty()) {
      trainable = shared;
      trainable.insert(trainable.end(), experts.begin(), experts.end());
    }
    const auto bucket = std::max<int64_t>(1, static_cast<int64_t>(cfg.dist.bucket_mb * (1 << 20)));
    grads = std::make_unique<dist::GradReducer>(world, shared, bucket);
    if (!experts.empty())
      expert_grads = std::make_unique<dist::GradReducer>(layout.replicas, experts, bucket);
  }
  lockstep = world->size() > 1 &&
             (shard_mode == dist::ShardMode::grads || frees_weights() || layout.expert_parallel > 1);
  dummy.prompts.resize(1);
  dummy.prompt_ids = {{pad_id}};
  rollout::Completion c;
  c.tokens = {pad_id};
  c.logprobs = {0.0f};
  dummy.completions = {c};
}

void Trainer::State::find_reward_roles() {
  if (!cfg.train.accuracy_reward.empty()) {
    auto it = std::find(reward_names.begin(), reward_names.end(), cfg.train.accuracy_reward);
    AHA_CHECK(it != reward_names.end(), "train.accuracy_reward \"", cfg.train.accuracy_reward,
              "\" is not among reward.functions");
    accuracy_index = static_cast<int>(it - reward_names.begin());
  } else {
    for (size_t i = 0; i < reward_names.size() && accuracy_index < 0; ++i)
      if (std::find(kAccuracyLike.begin(), kAccuracyLike.end(), reward_names[i]) != kAccuracyLike.end())
        accuracy_index = static_cast<int>(i);
  }
  for (size_t i = 0; i < reward_names.size(); ++i)
    if (reward_names[i] == "format") format_index = static_cast<int>(i);
}

// ---- Trainer
// -------------------------------------------------------------------------------------------------------

Trainer::Trainer(Config config, const reward::Registry& registry, TrainerOptions options)
    : s_(std::make_unique<State>()) {
  State& s = *s_;
  s.cfg = std::move(config);
  s.opts = std::move(options);
  s.run_dir = s.cfg.train.run_dir;
  AHA_CHECK(!s.run_dir.empty(), "train.run_dir is empty");
  std::string checkpoint;
  if (s.opts.eval_only) {
    s.world = std::make_shared<dist::World>();
    s.policy = make_policy(s.cfg.model, s.cfg.data);
    s.pad_id = s.policy.tokenizer->special_tokens().pad.value_or(0);
    s.prompts = std::make_unique<PromptSource>(s.cfg.data);
    s.rewards = std::make_unique<reward::RewardSet>(s.cfg.reward, registry);
    for (const auto& f : s.cfg.reward.functions)
      s.reward_names.push_back(f.name);
    s.find_reward_roles();
    return;
  }
  if (s.opts.resume) {
    checkpoint = latest_checkpoint(s.run_dir);
    AHA_CHECK(!checkpoint.empty(), "cannot resume: no checkpoint in ", s.run_dir, "/checkpoints");
  } else if (fs::exists(fs::path(s.run_dir) / "checkpoints")) {
    AHA_FAIL("the run directory ", s.run_dir, " already holds a run: resume it with `aha train --resume ",
             s.run_dir, "`, or choose another train.run_dir");
  }
  // Join the other ranks first (one process: nothing to join): a failed rendezvous costs no model build.
  ModelSection ms = s.cfg.model;
  const dist::WorldSpec spec =
      s.opts.world ? s.opts.world->spec() : dist::resolve_world(s.cfg.dist, dist::process_environment());
  ms.device = dist::rank_device(ms.device, spec, torch::cuda::is_available());
  s.world = s.opts.world ? s.opts.world : dist::World::connect(spec, resolve_device(ms.device));
  if (!s.main()) s.opts.console = false;
  if (s.world->backend() != "none" && s.main())
    log::info("data parallel: ", s.world->size(), " rank(s) (", s.world->backend(), ", from ", spec.source,
              "), rendezvous at ", spec.master_addr, ":", spec.master_port);

  if (s.main()) {
    io::make_dirs(s.run_dir);
    if (s.cfg.log.file) log::open_file((fs::path(s.run_dir) / "aha.log").string());
  }
  if (!checkpoint.empty()) ms.path = (fs::path(checkpoint) / "model").string();
  // Fully sharded on a GPU: the model stays on the host until the sharding moves it over in slices (the
  // device never holds it whole).
  const bool on_host = s.cfg.dist.shard == "full" && !resolve_device(ms.device).is_cpu();
  s.policy = make_policy(ms, s.cfg.data, on_host);
  s.pad_id = s.policy.tokenizer->special_tokens().pad.value_or(0);
  {
    // Every rank starts from rank 0's weights, whatever its own initialisation did.
    std::vector<at::Tensor> state;
    for (const auto& p : s.policy.model->parameters())
      state.push_back(p);
    for (const auto& b : s.policy.model->buffers())
      state.push_back(b);
    s.world->broadcast(state);
  }
  s.shard_mode = dist::parse_shard_mode(s.cfg.dist.shard);
  s.layout =
      make_parallel_layout(s.world, s.cfg.dist.expert_parallel, s.policy.model->config().n_routed_experts);
  if (s.cfg.grpo.beta > 0) {
    const fs::path saved_ref = checkpoint.empty() ? fs::path() : fs::path(checkpoint) / "ref";
    if (!saved_ref.empty() && fs::exists(saved_ref)) {
      s.ref = model::load_pretrained(saved_ref.string(),
                                     {.dtype = at::kFloat, .device = on_host ? at::kCPU : s.policy.device});
    } else {
      s.ref = model::Transformer(s.policy.model->config());
      if (!on_host) s.ref->to(s.policy.device);
      copy_weights(*s.ref, *s.policy.model);
    }
    for (auto& p : s.ref->parameters())
      p.set_requires_grad(false);
  }
  s.prompts = std::make_unique<PromptSource>(s.cfg.data);
  s.rewards = std::make_unique<reward::RewardSet>(s.cfg.reward, registry);
  for (const auto& f : s.cfg.reward.functions)
    s.reward_names.push_back(f.name);
  s.find_reward_roles();
  split_experts(*s.policy.model, s.layout);
  if (s.ref) split_experts(*s.ref, s.layout);
  s.setup_parallel();
  if (s.main() && (s.sharded() || s.cfg.train.activation_checkpointing))
    log::info("dist.shard ", s.cfg.dist.shard,
              s.cfg.train.activation_checkpointing ? ", activation checkpointing" : "", ": ", s.world->size(),
              " rank(s)");

  if (!checkpoint.empty()) {
    s.load_checkpoint(checkpoint);
    if (!s.main()) return;
    truncate_jsonl_after_step((fs::path(s.run_dir) / "metrics.jsonl").string(), s.step);
    truncate_jsonl_after_step((fs::path(s.run_dir) / "samples.jsonl").string(), s.step);
    log::info("resumed ", s.run_dir, " at step ", s.step, " from ", checkpoint);
  } else if (!s.main()) {
    return;
  } else {
    io::write_file_atomic((fs::path(s.run_dir) / "config.json").string(), to_json(s.cfg).dump(2) + "\n");
    fs::remove(fs::path(s.run_dir) / "metrics.jsonl");
    fs::remove(fs::path(s.run_dir) / "samples.jsonl");
  }
  s.history = read_metrics((fs::path(s.run_dir) / "metrics.jsonl").string());
  s.metrics = std::make_unique<io::JsonlWriter>((fs::path(s.run_dir) / "metrics.jsonl").string(), true);
  s.samples = std::make_unique<io::JsonlWriter>((fs::path(s.run_dir) / "samples.jsonl").string(), true);
}

Trainer::~Trainer() = default;

int64_t Trainer::step_index() const {
  return s_->step;
}
const Config& Trainer::config() const {
  return s_->cfg;
}
EvalResult Trainer::evaluate() {
  return s_->evaluate();
}
void Trainer::save_checkpoint() {
  s_->save_checkpoint();
}

Json Trainer::step() {
  State& s = *s_;
  Json m = s.step_once();
  ++s.step;
  ++s.steps_this_process;
  if (s.cfg.train.eval_every > 0 && s.step % s.cfg.train.eval_every == 0 && s.step < s.cfg.train.steps)
    s.add_eval(m, s.evaluate());
  return m;
}

RunSummary Trainer::run() {
  State& s = *s_;
  RunSummary summary;
  summary.run_dir = s.run_dir;
  summary.rank = s.world->rank();
  s.started = Clock::now();
  const auto t0 = Clock::now();
  if (s.step == 0 && s.cfg.train.eval_at_start) {
    if (s.main()) log::info("evaluating on ", s.prompts->eval().size(), " held-out prompts before training");
    EvalResult before = s.evaluate();
    summary.before = before;
    Json m;
    m["step"] = 0;
    s.add_eval(m, before);
    if (s.main()) {
      s.metrics->write(m);
      s.history.push_back(m);
      log::info("before RL: held-out accuracy ", 100 * before.accuracy, "%");
    }
  }
  while (s.step < s.cfg.train.steps) {
    // A signal may reach the ranks at different steps: they stop together when any of them got one.
    const bool stop = s.world->size() == 1
                          ? stop_requested()
                          : s.world->all_reduce({stop_requested() ? 1.0 : 0.0}, dist::ReduceOp::max)[0] > 0;
    if (stop) {
      log::warn("stop requested: writing a checkpoint at step ", s.step);
      summary.stopped_early = true;
      break;
    }
    Json m = step();
    if (s.step == s.cfg.train.steps) {
      EvalResult after = s.evaluate();
      summary.after = after;
      s.add_eval(m, after);
    }
    if (s.main()) {
      s.metrics->write(m);
      s.history.push_back(m);
      s.console_line(m);
      if (m.contains("eval/accuracy")) s.write_plot();
    }
    if (s.opts.on_step) s.opts.on_step(m);
    if (s.bad_steps >= s.cfg.train.max_bad_steps) {
      log::error(s.bad_steps, " steps in a row had a non-finite loss: stopping with a checkpoint");
      summary.stopped_early = true;
      break;
    }
    if (s.cfg.train.save_every > 0 && s.step % s.cfg.train.save_every == 0 && s.step < s.cfg.train.steps)
      s.save_checkpoint();
  }
  s.save_checkpoint();
  if (s.main()) s.write_plot();
  s.world->barrier();  // no rank leaves (and closes its connections) while another still needs it
  summary.steps = s.step;
  summary.seconds = seconds_since(t0);
  summary.plot_path = (fs::path(s.run_dir) / "plot.png").string();
  log::flush();
  return summary;
}

Config load_run_config(const std::string& run_dir, const std::vector<std::string>& overrides) {
  const std::string path = (fs::path(run_dir) / "config.json").string();
  AHA_CHECK(fs::exists(path), "no config.json in ", run_dir, ": not a run directory");
  return load_config(path, overrides);
}

std::string latest_checkpoint(const std::string& run_dir) {
  const fs::path root = fs::path(run_dir) / "checkpoints";
  const fs::path latest = root / "latest";
  if (!fs::exists(latest)) return "";
  std::string name = io::read_file(latest.string());
  while (!name.empty() && (name.back() == '\n' || name.back() == ' '))
    name.pop_back();
  const fs::path dir = root / name;
  AHA_CHECK(fs::exists(dir / "trainer_state.json"), latest.string(), " names ", name,
            " but that checkpoint is missing or incomplete");
  return dir.string();
}

}  // namespace aha::rl
