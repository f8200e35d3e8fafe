// The files of a run directory that need no tensors: checksums of a checkpoint, fsync of directories,
// metrics.jsonl / samples.jsonl cut back to a checkpoint's step on resume, and plot.png.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "aha/core/config_json.h"

namespace aha::rl {

// {relative path: {"bytes": n, "fnv1a64": "hex"}} for every regular file under `dir` (sorted by path).
Json checksum_tree(const std::string& dir);
// Throws aha::Error naming the first file that is missing, has another size or another checksum.
void verify_tree(const std::string& dir, const Json& expected);

// Writes the checkpoint <run_dir>/checkpoints/<name>: `write` fills a fresh temporary directory, `state` with
// the checksums of those files added under "files" becomes its trainer_state.json; the directory is fsynced
// and renamed into place, checkpoints/latest names it, and only the newest `keep` step-N checkpoints stay.
// Returns its path.
std::string commit_checkpoint(const std::string& run_dir, const std::string& name,
                              const std::function<void(const std::string& dir)>& write, Json state,
                              int64_t keep);
// The trainer_state.json of checkpoint `dir`, after every file it lists was checked (verify_tree).
Json read_checkpoint_state(const std::string& dir);

// fsync of a directory, so a rename into it survives a crash.
void fsync_dir(const std::string& dir);

// Rewrites a JSONL file without the records whose "step" is above `step` (atomically; absent file: no-op).
void truncate_jsonl_after_step(const std::string& path, int64_t step);

// The records of metrics.jsonl (empty when the file does not exist).
std::vector<Json> read_metrics(const std::string& path);

// plot.png of a run: reward (total and per reward), accuracy (training and held-out) and completion length
// over steps, from metrics records.
void write_run_plot(const std::string& run_dir, const std::vector<Json>& history);

}  // namespace aha::rl
