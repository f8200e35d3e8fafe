// Where a run's prompts come from: a JSONL file with a field mapping, or a built-in task generator (tasks.h);
// a held-out evaluation split that training never draws from; a seeded order; a position that a checkpoint
// stores so a resumed run continues with the very next prompt.
//
// Every prompt carries its JSON fields (passed to the rewards) and its text (the template filled with the
// fields). The JSONL field named by `prompt_field` is also available as "question" and the one named by
// `answer_field` as "answer", so templates and rewards can use the canonical names.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_set>
#include <vector>

#include "aha/core/config.h"
#include "aha/rl/tasks.h"

namespace aha::rl {

struct Prompt {
  Json fields;
  std::string text;  // the rendered template
};

// What the trainer draws prompts from: the config's data section (PromptSource), or a program's own
// (VectorPrompts, or any implementation handed to the trainer in TrainerParts).
class PromptStream {
 public:
  virtual ~PromptStream() = default;
  // The next `n` training prompts. Every rank of a run draws the same ones (the trainer splits them).
  virtual std::vector<Prompt> next(int64_t n) = 0;
  // The held-out prompts.
  virtual const std::vector<Prompt>& eval() const = 0;
  // The position, for checkpoints, and back.
  virtual Json state() const = 0;
  virtual void restore(const Json& state) = 0;
};

// Fixed lists of training and held-out prompts; training cycles through its list in order.
class VectorPrompts : public PromptStream {
 public:
  VectorPrompts(std::vector<Prompt> train, std::vector<Prompt> eval);
  std::vector<Prompt> next(int64_t n) override;
  const std::vector<Prompt>& eval() const override { return eval_; }
  Json state() const override;
  void restore(const Json& state) override;

 private:
  std::vector<Prompt> train_, eval_;
  uint64_t drawn_ = 0;
};

class PromptSource : public PromptStream {
 public:
  // Throws aha::Error naming the file and line of a bad record, or the bad setting.
  explicit PromptSource(const DataSection& data);

  // The next `n` training prompts (wrapping around into a new, reshuffled epoch for files).
  std::vector<Prompt> next(int64_t n) override;
  // The held-out prompts (data.eval_size of them, or the records of data.eval_path).
  const std::vector<Prompt>& eval() const override { return eval_; }

  // The position, for checkpoints: {"drawn": prompts drawn so far}.
  Json state() const override;
  void restore(const Json& state) override;

  int64_t train_size() const;  // -1: endless (a task)

 private:
  Prompt make_prompt(Json fields) const;
  void shuffle_epoch(uint64_t epoch);

  DataSection data_;
  std::string template_;
  std::unique_ptr<Task> task_;
  std::vector<Json> records_;                       // training records of a file
  std::vector<size_t> order_;                       // their order in the current epoch
  uint64_t order_epoch_ = ~0ull;                    // which epoch `order_` belongs to
  std::unordered_set<std::string> eval_questions_;  // tasks: never drawn for training
  std::vector<Prompt> eval_;
  uint64_t drawn_ = 0;       // prompts handed out
  uint64_t task_index_ = 0;  // next task index (skips held-out questions)
};

// The task's held-out questions for `data` (what the trainer evaluates on and a pretraining corpus excludes).
std::vector<std::string> held_out_questions(const DataSection& data);

}  // namespace aha::rl
