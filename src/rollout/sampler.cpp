#include "aha/rollout/sampler.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <chrono>

#include "aha/core/error.h"

namespace aha::rollout {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// A model call that keeps this rank in step with the others of a lockstep group (sampler.h): one token, a
// fresh cache, the result unused.
void idle_call(model::TransformerImpl& model, int64_t pad_id) {
  model::KvCache cache = model.make_cache(1, 1);
  model.decode(at::full({1, 1}, pad_id, at::kLong), at::Tensor(), cache);
}

}  // namespace

std::string_view finish_reason_name(FinishReason r) {
  switch (r) {
    case FinishReason::eos:
      return "eos";
    case FinishReason::stop:
      return "stop";
    case FinishReason::length:
      return "length";
  }
  return "?";
}

GenerateResult Sampler::generate(model::TransformerImpl& model,
                                 const std::vector<std::vector<int64_t>>& prompts,
                                 const SamplingParams& params, const GenerateOptions& options) const {
  validate(params);
  AHA_CHECK(!prompts.empty() || options.lockstep, "generate: no prompts");
  AHA_CHECK(options.prompt_seeds.empty() || options.prompt_seeds.size() == prompts.size(),
            "generate: ", prompts.size(), " prompts but ", options.prompt_seeds.size(), " prompt seeds");
  AHA_CHECK(params.stop_strings.empty() || options.tokenizer, "stop strings need a tokenizer");
  c10::InferenceMode inference;  // no autograd bookkeeping at all while sampling
  const int64_t p = static_cast<int64_t>(prompts.size()), n = params.n, rows = p * n;
  const int64_t vocab = model.config().vocab_size;
  size_t longest = 0;
  for (size_t i = 0; i < prompts.size(); ++i) {
    AHA_CHECK(!prompts[i].empty(), "generate: prompt ", i, " is empty");
    for (int64_t id : prompts[i])
      AHA_CHECK(id >= 0 && id < vocab, "generate: prompt ", i, " holds token ", id, ", outside [0, ", vocab,
                ")");
    longest = std::max(longest, prompts[i].size());
  }
  const int64_t prompt_len = static_cast<int64_t>(longest);

  std::vector<int64_t> eos;
  if (!params.ignore_eos) eos = model.config().eos_token_id;
  size_t longest_stop = 0;
  // The last character (UTF-8) of each stop string: a stop string can only have appeared with a token whose
  // text holds that character, or holds a broken one (a character split over tokens decodes as U+FFFD).
  std::vector<std::string> stop_ends;
  for (const auto& s : params.stop_strings) {
    longest_stop = std::max(longest_stop, s.size());
    if (s.empty()) continue;
    size_t start = s.size() - 1;
    while (start > 0 && (static_cast<unsigned char>(s[start]) & 0xC0) == 0x80)
      --start;
    stop_ends.push_back(s.substr(start));
  }
  const auto may_end_a_stop = [&](int64_t token) {
    const std::string piece = options.tokenizer->decode(std::span<const int64_t>(&token, 1));
    if (piece.find("\xEF\xBF\xBD") != std::string::npos) return true;
    return std::any_of(stop_ends.begin(), stop_ends.end(),
                       [&](const std::string& end) { return piece.find(end) != std::string::npos; });
  };

  GenerateResult result;
  result.completions.resize(static_cast<size_t>(rows));
  std::vector<std::mt19937_64> rngs;
  rngs.reserve(static_cast<size_t>(rows));
  for (int64_t i = 0; i < p; ++i) {
    const uint64_t seed =
        options.prompt_seeds.empty() ? params.seed + static_cast<uint64_t>(i) : options.prompt_seeds[i];
    for (int64_t j = 0; j < n; ++j) {
      result.completions[i * n + j].prompt = i;
      result.completions[i * n + j].sample = j;
      rngs.push_back(completion_rng(seed, j));
    }
  }

  // Prefill every prompt once, left-padded into one batch.
  auto t0 = Clock::now();
  std::vector<int64_t> ids(static_cast<size_t>(p * prompt_len), options.pad_id), mask(ids.size(), 0);
  for (int64_t i = 0; i < p; ++i) {
    const auto& prompt = prompts[i];
    const int64_t offset = prompt_len - static_cast<int64_t>(prompt.size());
    for (size_t k = 0; k < prompt.size(); ++k) {
      ids[i * prompt_len + offset + k] = prompt[k];
      mask[i * prompt_len + offset + k] = 1;
    }
    result.prefill_tokens += static_cast<int64_t>(prompt.size());
  }
  // Every call to the model below is announced to the lockstep group first (a rank without a call of its own
  // makes idle ones at the end, as long as others still call).
  const auto announce = [&](bool mine) { return options.lockstep ? options.lockstep(mine) : mine; };
  const auto idle_while_others_work = [&] {
    if (!options.lockstep) return;
    while (options.lockstep(false))
      idle_call(model, options.pad_id);
  };
  if (p == 0) {
    idle_while_others_work();
    return result;
  }
  model::KvCache cache = model.make_cache(p, prompt_len + params.max_new_tokens);
  announce(true);
  const auto prefill = model.decode(at::tensor(ids, at::kLong).view({p, prompt_len}),
                                    at::tensor(mask, at::kLong).view({p, prompt_len}), cache);
  // The G samples of a prompt share its cache rows and its last logits.
  const at::Tensor expand = at::arange(p, at::kLong).repeat_interleave(n);
  cache = cache.select_rows(expand);
  at::Tensor logits =
      prefill.logits.select(1, prompt_len - 1).index_select(0, expand.to(prefill.logits.device()));
  result.prefill_seconds = seconds_since(t0);

  t0 = Clock::now();
  std::vector<int64_t> active(static_cast<size_t>(rows));
  for (int64_t r = 0; r < rows; ++r)
    active[r] = r;
  std::uniform_real_distribution<double> uniform(0.0, 1.0);
  for (int64_t step = 0; step < params.max_new_tokens && !active.empty(); ++step) {
    std::vector<double> draws(active.size(), 0.0);
    if (params.temperature > 0)
      for (size_t a = 0; a < active.size(); ++a)
        draws[a] = uniform(rngs[active[a]]);
    const Sampled s = sample(logits, params, draws);
    const at::Tensor tokens = s.tokens.cpu(), logprobs = s.logprobs.cpu();
    const int64_t* tok = tokens.data_ptr<int64_t>();
    const float* lp = logprobs.data_ptr<float>();
    std::vector<int64_t> keep;  // positions in `active` that go on
    std::vector<int64_t> next;
    for (size_t a = 0; a < active.size(); ++a) {
      Completion& c = result.completions[active[a]];
      c.tokens.push_back(tok[a]);
      c.logprobs.push_back(lp[a]);
      ++result.decode_tokens;
      if (options.on_token) options.on_token(active[a], tok[a]);
      bool done = false;
      if (std::find(eos.begin(), eos.end(), tok[a]) != eos.end()) {
        c.finish = FinishReason::eos;
        done = true;
      } else if (std::find(params.stop_token_ids.begin(), params.stop_token_ids.end(), tok[a]) !=
                 params.stop_token_ids.end()) {
        c.finish = FinishReason::stop;
        done = true;
      } else if (longest_stop > 0 && may_end_a_stop(tok[a])) {
        // Only the text the last tokens make can hold a stop string that was not there one step earlier; the
        // window is decoded only when the new token can end one (checked on its own text first).
        const size_t tail = std::min(c.tokens.size(), longest_stop + 4);
        const std::string text = options.tokenizer->decode(
            std::span<const int64_t>(c.tokens.data() + c.tokens.size() - tail, tail));
        for (const auto& stop : params.stop_strings) {
          if (!stop.empty() && text.find(stop) != std::string::npos) {
            c.finish = FinishReason::stop;
            done = true;
            break;
          }
        }
      }
      if (!done && static_cast<int64_t>(c.tokens.size()) >= params.max_new_tokens) {
        c.finish = FinishReason::length;
        done = true;
      }
      if (!done) {
        keep.push_back(static_cast<int64_t>(a));
        next.push_back(tok[a]);
      }
    }
    if (keep.empty()) break;
    if (keep.size() != active.size()) {
      // Finished rows leave the batch: compact the cache.
      cache = cache.select_rows(at::tensor(keep, at::kLong));
      std::vector<int64_t> still;
      for (int64_t k : keep)
        still.push_back(active[k]);
      active.swap(still);
    }
    announce(true);
    const auto out = model.decode(at::tensor(next, at::kLong).view({-1, 1}), at::Tensor(), cache);
    result.decode_row_steps += static_cast<int64_t>(active.size());
    logits = out.logits.select(1, 0);
  }
  result.decode_seconds = seconds_since(t0);
  idle_while_others_work();
  return result;
}

}  // namespace aha::rollout
