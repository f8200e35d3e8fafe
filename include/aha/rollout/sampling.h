// How the next token is chosen: temperature, top-k, top-p, min-p, greedy; and what ends a completion.
//
// Sampling is per row and depends only on that row's logits and its own random stream (one per completion,
// seeded from the prompt's seed and the sample's index), so a completion comes out the same whether it is
// generated alone or in any batch. The log-probability recorded for a sampled token is log softmax(logits /
// T) at that token, before top-k/top-p/min-p filtering: the quantity the trainer recomputes for the policy
// ratio (T = 1 under greedy).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

namespace aha::rollout {

struct SamplingParams {
  double temperature = 1.0;  // 0: greedy (argmax)
  int64_t top_k = 0;         // keep the k most likely tokens (0: off)
  double top_p = 1.0;        // keep the smallest set whose mass reaches top_p (1: off)
  double min_p = 0.0;        // drop tokens below min_p times the most likely one (0: off)
  int64_t max_new_tokens = 256;
  std::vector<int64_t> stop_token_ids;    // any of these ends a completion (kept as its last token)
  std::vector<std::string> stop_strings;  // any of these in the completion's text ends it (needs a tokenizer)
  bool ignore_eos = false;                // do not stop at the model's eos token(s)
  uint64_t seed = 0;
  int64_t n = 1;  // completions per prompt (G)
};

// Checks ranges; throws aha::Error naming the parameter.
void validate(const SamplingParams& p);

// The random stream of completion `sample` of a prompt whose seed is `prompt_seed`.
std::mt19937_64 completion_rng(uint64_t prompt_seed, int64_t sample);

struct Sampled {
  at::Tensor tokens;    // [B] int64
  at::Tensor logprobs;  // [B] float32: log softmax(logits / T)[token] (T = 1 when greedy)
};

// Chooses one token per row of `logits` [B, V] (any float dtype, any device); `uniforms` [B] are the rows'
// draws in [0, 1) (ignored when greedy).
Sampled sample(const at::Tensor& logits, const SamplingParams& p, const std::vector<double>& uniforms);

}  // namespace aha::rollout
