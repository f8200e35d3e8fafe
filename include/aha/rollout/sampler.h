// The rollout sampler: G completions for each prompt, with the same model code the trainer uses.
//
// Each prompt is prefilled once (all prompts in one left-padded batch); its compressed MLA cache is then
// shared by its G samples (row selection), and the batch decodes one token per step with the absorbed
// attention. Rows that finish leave the batch at once (the cache is compacted), so finished sequences cost
// nothing. The log-probability of every sampled token is recorded (sampling.h) for the policy ratio, together
// with the finish reason and timing.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "aha/model/transformer.h"
#include "aha/rollout/sampling.h"
#include "aha/text/tokenizer.h"

namespace aha::rollout {

enum class FinishReason { eos, stop, length };
std::string_view finish_reason_name(FinishReason r);

struct Completion {
  int64_t prompt = 0;           // index of its prompt
  int64_t sample = 0;           // 0 .. n-1 within the prompt
  std::vector<int64_t> tokens;  // generated ids (the stop or eos token included)
  std::vector<float> logprobs;  // one per token (sampling.h)
  FinishReason finish = FinishReason::length;
};

struct GenerateResult {
  std::vector<Completion> completions;  // prompt-major: completion of (prompt i, sample j) at i * n + j
  int64_t prefill_tokens = 0;           // real prompt tokens prefilled
  int64_t decode_tokens = 0;            // tokens generated
  int64_t decode_row_steps = 0;  // sum over decode steps of the rows computed (compaction keeps it minimal)
  double prefill_seconds = 0, decode_seconds = 0;
  double prefill_tokens_per_second() const {
    return prefill_seconds > 0 ? prefill_tokens / prefill_seconds : 0;
  }
  double decode_tokens_per_second() const { return decode_seconds > 0 ? decode_tokens / decode_seconds : 0; }
};

struct GenerateOptions {
  // Per-prompt seeds; empty: prompt i gets params.seed + i. A completion depends only on its prompt, its
  // prompt's seed and its sample index, never on the rest of the batch.
  std::vector<uint64_t> prompt_seeds;
  const text::Tokenizer* tokenizer = nullptr;  // needed for stop strings
  int64_t pad_id = 0;                          // filler of left padding (never attended to)
  // Called after each step for every token generated: (completion index, token id).
  std::function<void(int64_t, int64_t)> on_token;
  // Ranks that must call the model the same number of times (expert parallelism: every forward exchanges
  // tokens with the group). Called before each model call with whether this rank has one to make; returns
  // whether any rank of the group has. A rank without prompts, or done before the others, makes one-token
  // calls of its own until no rank has work left. Null: this rank alone decides.
  std::function<bool(bool)> lockstep;
};

class Sampler {
 public:
  // `prompts` may be empty only with options.lockstep (a rank whose share is empty still takes part).
  GenerateResult generate(model::TransformerImpl& model, const std::vector<std::vector<int64_t>>& prompts,
                          const SamplingParams& params, const GenerateOptions& options = {}) const;
};

}  // namespace aha::rollout
