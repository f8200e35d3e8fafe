// Rewards: rules that score one completion. R1-Zero trains on such rules only (is the answer right, is the
// layout right), no reward model. A reward is a pure function of text: no tensors, no globals, callable from
// many threads.
//
// Three ways in: a C++ class registered in a `Registry` (this header), a shared-library plugin (plugin.h), or
// an external process in any language (the built-in `process`, process.h). Built-ins register with
// `register_builtins` (builtin.h lists them).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "aha/core/config_json.h"

namespace aha::reward {

// What a reward sees of one sample.
struct Sample {
  std::string_view prompt;      // the prompt text the model saw
  std::string_view completion;  // the generated text
  int64_t completion_tokens = 0;
  bool truncated = false;        // generation hit max_new_tokens
  const Json* fields = nullptr;  // the prompt's JSON fields (ground truth, numbers, ...); null: none
  int64_t id = -1;               // for logs

  // The field `name` as a string (numbers are printed), or nullopt when absent.
  std::optional<std::string> field(std::string_view name) const;
};

// A score, or "skip": the sample then does not count in the loss. Extras are logged, never summed.
// `failed`: the reward could not judge the sample (an external worker crashed, timed out or answered
// garbage); `value` then holds the reward's own fallback, or is empty and RewardSet puts in
// reward.fallback_score. A failed sample still counts in the loss, with the fallback score.
struct Score {
  std::optional<double> value;
  std::vector<std::pair<std::string, double>> extras;
  bool failed = false;

  static Score of(double v) { return Score{v, {}, false}; }
  static Score skip() { return Score{std::nullopt, {}, false}; }
  static Score failure(std::optional<double> fallback) { return Score{fallback, {}, true}; }
};

class Reward {
 public:
  virtual ~Reward() = default;
  // Must be safe to call from several threads at once (rewards hold no mutable state, or lock it).
  virtual Score score(const Sample& sample) const = 0;
  // Scores a whole batch, one Score per sample in order. The default calls score() on each. A reward that
  // needs the batch (statistics over the samples of one prompt, one round trip to a worker per batch)
  // overrides it and returns true from batched(): RewardSet then hands it the whole batch at once instead of
  // spreading its samples over threads.
  virtual std::vector<Score> score_batch(const std::vector<Sample>& samples) const {
    std::vector<Score> out;
    out.reserve(samples.size());
    for (const auto& s : samples)
      out.push_back(score(s));
    return out;
  }
  virtual bool batched() const { return false; }
};

// Makes a reward from its JSON parameters; throws aha::Error naming a bad parameter.
using Factory = std::function<std::unique_ptr<Reward>(const Json& params)>;

// Rewards by name. A program owns its registry (there is no global one): built-ins go in with
// register_builtins, a program's own classes with add, plugins' through their entry point.
class Registry {
 public:
  // Throws when `name` is taken.
  void add(const std::string& name, Factory factory, std::string description = {});
  bool contains(const std::string& name) const { return factories_.count(name) != 0; }
  // Throws aha::Error naming the unknown reward and the known ones.
  std::unique_ptr<Reward> create(const std::string& name, const Json& params) const;
  std::vector<std::pair<std::string, std::string>> list() const;  // (name, description), sorted

 private:
  std::map<std::string, std::pair<Factory, std::string>> factories_;
};

// Adds the built-in rewards (builtin.h lists them).
void register_builtins(Registry& registry);

// Reads params[key] as T with a default; a wrong type is an error naming the reward and the parameter.
double param_number(const Json& params, const std::string& reward, const std::string& key, double fallback);
std::string param_string(const Json& params, const std::string& reward, const std::string& key,
                         const std::string& fallback);
bool param_bool(const Json& params, const std::string& reward, const std::string& key, bool fallback);
// A list of strings (e.g. an argv); absent: empty.
std::vector<std::string> param_strings(const Json& params, const std::string& reward, const std::string& key);
// Throws when params has a key not in `known` (a typo in a reward's params should not pass silently).
void check_param_keys(const Json& params, const std::string& reward, const std::vector<std::string>& known);

}  // namespace aha::reward
