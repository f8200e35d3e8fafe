// `aha pretrain`: next-token training of a small base model on a corpus, with the multi-token-prediction loss
// when the model has MTP modules; the same run-directory conventions as the trainer (config.json,
// metrics.jsonl, aha.log, plot.png, checkpoints/step-N, resume).
//
// The corpus is a built-in one (tasks.h: "r1_base", the default run's base model) or a file: .jsonl (the
// field pretrain.text_field of each record is a document) or .txt (each non-empty line is a document).
// Documents are packed into rows of pretrain.seq_len + 1 tokens as <bos> doc <eos> <bos> doc <eos> ...; the
// built-in corpus leaves out the held-out questions of the `data` section (the ones RL evaluates on).
// The final model is written to <run_dir>/model (HF format, with tokenizer.json): a model.path for `aha
// train`.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "aha/core/config.h"

namespace aha::rl {

struct PretrainOptions {
  bool resume = false;
  bool console = true;
  std::function<void(const Json&)> on_step;
};

struct PretrainSummary {
  int64_t steps = 0;
  double final_loss = 0;  // mean next-token loss of the last steps
  double seconds = 0;
  std::string model_dir;
  bool stopped_early = false;
};

PretrainSummary pretrain(const Config& config, const PretrainOptions& options = {});

}  // namespace aha::rl
