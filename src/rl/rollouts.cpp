#include "aha/rl/rollouts.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>

#include "aha/dist/process_group.h"
#include "aha/rl/tasks.h"

namespace aha::rl {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

}  // namespace

rollout::GenerateResult SamplerEngine::generate(const std::vector<std::vector<int64_t>>& prompts,
                                                const rollout::SamplingParams& params,
                                                const rollout::GenerateOptions& options) {
  c10::InferenceMode guard;
  return sampler_.generate(*model_, prompts, params, options);
}

void Rollouts::append_group(const Rollouts& other, size_t g) {
  const auto new_index = static_cast<int64_t>(prompts.size());
  prompts.push_back(other.prompts[g]);
  prompt_ids.push_back(other.prompt_ids[g]);
  if (scores.names.empty()) {
    scores.names = other.scores.names;
    scores.per_reward.resize(other.scores.per_reward.size());
  }
  const auto G = static_cast<size_t>(group);
  for (size_t j = 0; j < G; ++j) {
    const size_t i = g * G + j;
    rollout::Completion c = other.completions[i];
    c.prompt = new_index;
    completions.push_back(std::move(c));
    texts.push_back(other.texts[i]);
  }
  for (size_t j = 0; j < G; ++j) {
    const size_t i = g * G + j;
    for (size_t r = 0; r < other.scores.per_reward.size(); ++r)
      scores.per_reward[r].push_back(other.scores.per_reward[r][i]);
    scores.total.push_back(other.scores.total[i]);
    scores.extras.push_back(other.scores.extras[i]);
  }
}

Rollouts generate_and_score(RolloutEngine& engine, const text::Tokenizer& tokenizer,
                            const reward::RewardSet& rewards, std::vector<Prompt> prompts,
                            const GenerationSpec& spec) {
  Rollouts b;
  b.prompts = std::move(prompts);
  b.group = spec.params.n;
  rollout::GenerateOptions go;
  go.tokenizer = &tokenizer;
  go.pad_id = spec.pad_id;
  go.lockstep = spec.lockstep;
  if (b.prompts.empty()) {  // a rank whose share of a small refill is empty
    if (go.lockstep) engine.generate({}, spec.params, go);
    b.scores.names = rewards.names();
    b.scores.per_reward.resize(b.scores.names.size());
    return b;
  }
  for (const auto& p : b.prompts)
    b.prompt_ids.push_back(tokenizer.encode(p.text, true));
  for (size_t i = 0; i < b.prompts.size(); ++i)
    go.prompt_seeds.push_back(item_seed(spec.params.seed, spec.first_index + i, 0x9A));
  const auto t0 = Clock::now();
  int64_t tokens = 0;
  auto last = t0;
  const bool bar = spec.progress && ::isatty(2);
  const int64_t budget = static_cast<int64_t>(b.prompts.size()) * spec.params.n * spec.params.max_new_tokens;
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
  rollout::GenerateResult gen = engine.generate(b.prompt_ids, spec.params, go);
  if (bar && seconds_since(t0) >= 1.0) std::fprintf(stderr, "\r%80s\r", "");
  b.seconds = seconds_since(t0);
  b.decode_tokens = gen.decode_tokens;
  b.completions = std::move(gen.completions);
  b.texts.reserve(b.completions.size());
  for (const auto& c : b.completions)
    b.texts.push_back(tokenizer.decode(c.tokens, true));
  std::vector<reward::Sample> samples;
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
    samples.push_back(s);
  }
  const auto t_reward = Clock::now();
  b.scores = rewards.score(samples, spec.reward_threads);
  b.reward_seconds = seconds_since(t_reward);
  return b;
}

int64_t filter_groups(const Rollouts& round, size_t first, size_t drawn, bool dynamic, int64_t target,
                      int64_t& kept, Rollouts& batch, dist::World& world) {
  const auto n = static_cast<int64_t>(round.prompts.size());
  // Which groups' rewards all agree, as every rank sees it (each rank fills in its own groups).
  std::vector<double> zero(drawn, 0.0);
  if (n > 0) {
    std::vector<double> totals(round.size(), 0.0);
    std::vector<int64_t> valid(round.size(), 0);
    for (size_t i = 0; i < round.size(); ++i) {
      if (!round.scores.total[i]) continue;
      totals[i] = *round.scores.total[i];
      valid[i] = 1;
    }
    const at::Tensor z =
        zero_variance_groups(at::tensor(totals, at::kDouble), at::tensor(valid).to(at::kBool), round.group);
    for (int64_t g = 0; g < n; ++g)
      zero[first + static_cast<size_t>(g)] = z[g].item<bool>() ? 1.0 : 0.0;
  }
  zero = world.all_reduce(std::move(zero));
  int64_t agreeing = 0;
  for (double z : zero)
    agreeing += z > 0;
  for (size_t gg = 0; gg < drawn; ++gg) {
    const bool keep = !dynamic || zero[gg] == 0;
    if (!keep || kept >= target) continue;
    ++kept;
    if (gg >= first && gg < first + static_cast<size_t>(n)) batch.append_group(round, gg - first);
  }
  return agreeing;
}

Advantages compute_advantages(const Rollouts& batch, const AdvantageOptions& o, dist::World& world) {
  Advantages a;
  const auto N = static_cast<int64_t>(batch.size());
  // Over the whole batch, then this rank's rows: every rank's totals and score flags in rank order.
  std::vector<double> totals(static_cast<size_t>(N), 0.0), valid(static_cast<size_t>(N), 0.0);
  for (int64_t i = 0; i < N; ++i) {
    const auto& t = batch.scores.total[static_cast<size_t>(i)];
    if (!t) continue;
    totals[static_cast<size_t>(i)] = *t;
    valid[static_cast<size_t>(i)] = 1;
  }
  // (total, scored) pairs, gathered in one go.
  std::vector<double> pairs(2 * static_cast<size_t>(N));
  for (size_t i = 0; i < static_cast<size_t>(N); ++i) {
    pairs[2 * i] = totals[i];
    pairs[2 * i + 1] = valid[i];
  }
  size_t offset = 0;
  const std::vector<double> all_pairs = world.all_gather(pairs, &offset);
  offset /= 2;
  std::vector<double> all_totals(all_pairs.size() / 2);
  std::vector<int64_t> flags(all_pairs.size() / 2);
  for (size_t i = 0; i < all_totals.size(); ++i) {
    all_totals[i] = all_pairs[2 * i];
    flags[i] = all_pairs[2 * i + 1] > 0;
  }
  const at::Tensor all = all_totals.empty() ? at::zeros({0}, at::kDouble)
                                            : compute_advantages(at::tensor(all_totals, at::kDouble),
                                                                 at::tensor(flags).to(at::kBool), batch.group,
                                                                 o.kind, o.std_eps);
  a.values = world.size() == 1 ? all : all.narrow(0, static_cast<int64_t>(offset), N).clone();
  a.denominators.max_length = o.max_length;
  for (int64_t i = 0; i < N; ++i) {
    const auto& c = batch.completions[static_cast<size_t>(i)];
    const bool truncated = c.finish == rollout::FinishReason::length;
    if (!valid[static_cast<size_t>(i)] || (truncated && o.mask_truncated) || c.tokens.empty()) continue;
    a.loss_rows.push_back(static_cast<size_t>(i));
    a.denominators.tokens += static_cast<double>(c.tokens.size());
    a.denominators.sequences += 1;
  }
  if (o.group_by_length) {
    // Rows of similar length share a micro-batch, so little of it is padding; ties keep the batch order.
    const auto length = [&](size_t r) {
      const auto& c = batch.completions[r];
      return batch.prompt_ids[static_cast<size_t>(c.prompt)].size() + c.tokens.size();
    };
    std::stable_sort(a.loss_rows.begin(), a.loss_rows.end(),
                     [&](size_t x, size_t y) { return length(x) < length(y); });
  }
  // The normalisers of the whole batch: each rank's loss is then its share of the global loss.
  const std::vector<double> v = world.all_reduce(
      {a.denominators.tokens, a.denominators.sequences, static_cast<double>(a.loss_rows.size())});
  a.denominators.tokens = v[0];
  a.denominators.sequences = v[1];
  a.global_loss_rows = v[2];
  return a;
}

}  // namespace aha::rl
