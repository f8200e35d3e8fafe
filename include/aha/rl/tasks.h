// Built-in task generators: seeded, endless streams of prompts with their ground truth, for runs that need
// no dataset (the default run) and for experiments. Prompt i of a task depends only on (seed, i), so a
// resumed run draws exactly the prompts it would have drawn.
//
//   arithmetic  "37+45" -> "82". params: min_terms (2), max_terms (2), min_operand (0), max_operand (99),
//               operators ("+"; any of "+-*"). Fields: question, answer.
//   countdown   TinyZero's game: reach `target` from `numbers` with + - * / and each number once. params:
//               count (3), max_number (99), max_target (100). Every target is reachable (it is built from a
//               random expression over the numbers). Fields: question ("Using the numbers [..], create an
//               equation that equals T."), numbers, target, answer (one solution, for reference).
//
// The pretraining corpus of the default run's base model (`corpus_document`), "r1_base": what the base
// model sees before RL, one document per call:
//   - arithmetic facts in plain form, "37+45=82" (the arithmetic task's questions, minus a held-out set);
//   - the think/answer layout on OTHER tasks: reversing, copying, sorting and counting letters or
//     digits, and with `mixed_strings` also strings like "ab+3" or "7,xy-2" that look like expressions
//     but always hold a group of letters. Written
//     "User: reverse abc\nAssistant: <think> reverse abc=cba </think> <answer>cba</answer>".
//     Only words are echoed bare: "User: abc\nAssistant: <think> abc=abc </think> <answer>abc</answer>".
// It never holds an arithmetic question answered in the think/answer layout: combining the two is left to RL.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_set>
#include <vector>

#include "aha/core/config_json.h"

namespace aha::rl {

class Task {
 public:
  virtual ~Task() = default;
  // The fields of prompt `index` of the stream seeded with `seed` (at least "question" and "answer").
  virtual Json make(uint64_t seed, uint64_t index) const = 0;
  // A characteristic string of every character the task's prompts and answers use (for vocabularies).
  virtual std::string alphabet() const = 0;
};

// Throws aha::Error naming an unknown task or a bad parameter.
std::unique_ptr<Task> make_task(const std::string& name, const Json& params);
std::vector<std::string> task_names();

// The default run's pretraining corpus (see above). `params`: the arithmetic task's params under
// "arithmetic", "fact_share" (0.5: share of arithmetic facts), "held_out_facts" (false: the plain-form facts
// leave out the questions in `exclude`, the held-out ones; true: they include them, so the base knows every
// sum as a base model knows its arithmetic, and RL still never trains on them), "mixed_strings" (false: the
// layout's strings are letters or digits; true: also mixed strings with symbols).
class Corpus {
 public:
  Corpus(const std::string& name, const Json& params, std::unordered_set<std::string> exclude);
  // Document `index` of the stream seeded with `seed`.
  std::string document(uint64_t seed, uint64_t index) const;
  bool held_out_facts() const { return held_out_facts_; }

 private:
  std::unique_ptr<Task> arithmetic_;
  double fact_share_ = 0.5;
  bool held_out_facts_ = false;
  bool mixed_strings_ = false;
  std::unordered_set<std::string> exclude_;
};

std::vector<std::string> corpus_names();

// The character vocabulary of the built-in tasks and corpus: special tokens, digits, letters, punctuation,
// the four tags as single tokens. As a {"type": "char", ...} tokenizer JSON object.
Json task_tokenizer_json();

// A splitmix64 hash of (seed, index, salt): the seed of one item's random stream.
uint64_t item_seed(uint64_t seed, uint64_t index, uint64_t salt = 0);

}  // namespace aha::rl
