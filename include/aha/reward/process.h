// External-process rewards: a worker program in any language scores batches over JSON lines on its stdin and
// stdout. Registered as the built-in `process`:
//
//   {"name": "process", "params": {"argv": ["python3", "examples/reward_process/reward.py"], "timeout_s": 5}}
//
// The worker is started once with posix_spawnp and the argv list (never a shell; argv[0] is looked up in PATH
// when it has no '/', relative paths are relative to aha's working directory), in its own process group, and
// kept running between batches, so it can load what it needs once. Its stderr is aha's.
//
// Protocol, version 1. For each batch (or chunk of at most batch_size samples) aha writes ONE line:
//   {"protocol": 1, "samples": [{"id": 7, "prompt": "...", "completion": "...", "completion_tokens": 12,
//                                "truncated": false, "fields": {"answer": "42", ...}}, ...]}
// and the worker answers with ONE line, flushed, holding one entry per sample, in order:
//   {"scores": [1.0, null, {"score": 0.5, "extras": {"length": 12}}]}
// An entry is a number (the score), null (skip the sample: it does not count in the loss), or an object with
// "score" (a number or null) and optional "extras" (name -> number, logged with the reward's name in front).
// Text is UTF-8 (bytes that are not are replaced by U+FFFD). The worker should exit when its stdin closes;
// aha kills its process group when it does not within half a second.
//
// Failures never stop the run. When the worker has exited or crashed, does not answer within timeout_s, or
// answers anything but such a line (not JSON, the wrong number of scores, a wrong type, output before the
// request was read or after the answer), every sample of the chunk gets Score::failure(fallback_score) (with
// no fallback_score param RewardSet gives reward.fallback_score), a warning names the reason and the sample
// ids, and the worker's process group is killed; a fresh worker is started for the next chunk. Only a worker
// that cannot be started at all when the reward is created is an error (a typo in argv).
//
// Thread-safe: calls from several threads are served one after another by the one worker; RewardSet sends
// whole batches (batched() is true).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "aha/reward/reward.h"

namespace aha::reward {

struct ProcessOptions {
  std::vector<std::string> argv;  // the worker program and its arguments (required)
  double timeout_s = 30;          // for one chunk: writing the request and reading the answer
  int64_t batch_size = 256;       // samples per request line
  std::optional<double>
      fallback_score;            // score of samples the worker failed on; empty: reward.fallback_score
  std::string name = "process";  // in log messages
};

// Reads the `process` reward's params: argv, timeout_s, batch_size, fallback_score.
ProcessOptions process_options(const Json& params);

class ProcessReward : public Reward {
 public:
  // Starts the worker; throws aha::Error when it cannot be started.
  explicit ProcessReward(ProcessOptions options);
  ~ProcessReward() override;

  Score score(const Sample& sample) const override;
  std::vector<Score> score_batch(const std::vector<Sample>& samples) const override;
  bool batched() const override { return true; }

  // Workers started after the first (after failures).
  int64_t restarts() const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace aha::reward
