// The GRPO trainer: prompts in, G completions each, rule-based rewards, group-relative advantages, a clipped
// policy update, repeat (R1-Zero's recipe, ../shared/spec/grpo.md).
//
// A step runs typed stages (rollouts.h, policy_update.h): generate_and_score -> Rollouts, filter_groups (the
// dynamic-sampling rounds), compute_advantages -> Advantages, policy_update -> UpdateStats; the policy's
// layout over the ranks (replicas, shards, experts split) is ParallelPolicy's (parallel_policy.h), the
// completions come from a RolloutEngine (rollout_engine.h), and the step's figures are reduced over the ranks
// once (step_metrics.h). The config is parsed into typed options once, at construction.
//
// One step:
//   1. draw `train.prompts_per_step` prompts; sample `rollout.num_generations` completions of each with the
//      policy (rollout/sampler.h), recording the sampling-time log-probabilities (pi_old);
//   2. score them (reward/reward_set.h); with grpo.dynamic_sampling, drop groups whose rewards all agree and
//      draw more prompts, up to grpo.max_resample_rounds rounds;
//   3. advantages per group (grpo.h); the loss mask leaves out skipped samples and, with grpo.mask_truncated,
//      truncated ones;
//   4. grpo.mu passes over the batch in micro-batches of train.micro_batch_size completions, gradients
//      accumulated against the WHOLE batch's normalisers; KL to a frozen reference when grpo.beta > 0;
//      gradient clipping, AdamW, the learning-rate schedule, the MoE routing-bias update.
//
// The run directory (train.run_dir) holds config.json (resolved), metrics.jsonl (one line per step),
// samples.jsonl, aha.log, plot.png and checkpoints/step-N/ (the model in HF format, optimizer.pt,
// rng.safetensors, trainer_state.json with the step, the prompt position and the checksums of the other
// files). A checkpoint is written into a temporary directory and renamed into place; `latest` names the
// newest. Resuming loads the newest checkpoint, cuts metrics.jsonl and samples.jsonl back to its step and
// continues: on CPU the resumed run gives the same metrics and weights, bit for bit, as one that never
// stopped.
//
// Data parallel (dist/process_group.h): launched by torchrun, Slurm or `aha launch`, every rank holds a whole
// copy of the policy. All ranks draw the same global prompts; rank r samples and scores its contiguous share
// (a prompt's G completions stay on one rank, seeded by the prompt's global index), so W ranks see the batch
// one process would. Dynamic sampling decides which groups to keep from the zero-variance flags of every
// rank, as one process would. Advantages are computed over the gathered rewards; the loss normalisers
// (tokens, sequences) are summed over ranks, so each rank's gradient is its share of the global loss's and
// the gradients are SUMMED (not averaged) in flat buckets before clipping. Every rank then takes the same
// AdamW step; the MoE bias update uses the summed expert loads; metrics are reduced over ranks; evaluation is
// sharded. Only rank 0 writes the run directory (config, metrics, its own samples, log, plot, checkpoints);
// at each checkpoint the ranks check that their parameters still agree. Resume with the same world size,
// with the run directory on a filesystem every rank reads.
//
// Sharded (dist.shard optimizer | grads | full, dist/sharding.h): each rank keeps 1/W of the fp32 masters,
// their gradients and the AdamW moments (full: of the weights too, gathered per layer for its forward and
// backward passes, and whole for rollouts and evaluations, which weight_sync_s times). The optimizer steps
// the masters; gradients are clipped by their global norm. Collectives then run inside the passes, so every
// rank runs as many micro-batches as the rank with the most rows (the others run one-token micro-batches with
// a zero loss). A checkpoint holds the whole model in HF format (gathered on rank 0), each rank's slices and
// moments (shards/rank-R.safetensors) and their manifests (shards/rank-R.json): it resumes bit for bit at the
// same world size, and at any other world size or sharded mode (each rank reads the pieces it needs).
// train.activation_checkpointing recomputes each decoder layer in the backward pass (also without
// sharding). Metrics: mem/params, mem/grads, mem/optimizer (rank 0's live bytes), weight_sync_s.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "aha/core/config.h"
#include "aha/reward/reward.h"
#include "aha/rl/evaluation.h"
#include "aha/rl/prompts.h"
#include "aha/rl/rollout_engine.h"
#include "aha/text/tokenizer.h"

namespace aha::dist {
class World;
}

namespace aha::rl {

struct RunSummary {
  int64_t steps = 0;                 // optimizer steps taken in total
  bool stopped_early = false;        // by a stop request or non-finite losses
  std::optional<EvalResult> before;  // evaluation before the first update (fresh runs with eval_at_start)
  std::optional<EvalResult> after;   // evaluation at the end
  double seconds = 0;
  std::string run_dir, plot_path;
  int64_t rank = 0;  // this process's rank in a data-parallel run (programs report on rank 0 only)
};

struct TrainerOptions {
  bool resume = false;  // continue from the newest checkpoint in train.run_dir
  bool console = true;  // print a line per step (log.every) and progress bars
  bool eval_only =
      false;  // only the policy, prompts and rewards, for evaluate() (`aha eval`): no run directory
  // > 0: this step (1-based) runs under the autograd profiler, and each rank writes a Chrome trace of every
  // operator to <run_dir>/profile_step<N>[.rank<R>].json (open it in chrome://tracing or Perfetto).
  int64_t profile_step = 0;
  // Called with each step's metrics (tests and embedding programs), on every rank.
  std::function<void(const Json&)> on_step;
  // Called after each evaluation with its result, and after each checkpoint with its directory (rank 0).
  std::function<void(const EvalResult&)> on_eval;
  std::function<void(const std::string&)> on_checkpoint;
  // The distributed run this trainer is one rank of; null: joined from the environment (RANK/WORLD_SIZE
  // from torchrun or `aha launch`, or Slurm's variables), one process when none is set.
  std::shared_ptr<dist::World> world;
};

// A reward as a C++ callable: nullopt skips the sample (it then leaves the loss). Must be safe to call from
// several threads at once.
struct RewardFunction {
  std::string name;
  double weight = 1.0;
  std::function<std::optional<double>(const reward::Sample&)> score;
};

// What a program hands the trainer as live objects instead of describing it in the config; each part is
// optional, and the config describes what is not given.
struct TrainerParts {
  // The policy (instead of model.path / model.architecture), with its tokenizer. On resume the checkpoint's
  // weights are loaded into it. `tokenizer_json` is written beside checkpoints (empty: nothing is).
  model::Transformer model{nullptr};
  std::unique_ptr<text::Tokenizer> tokenizer;
  std::string tokenizer_json;
  std::unique_ptr<PromptStream> prompts;  // instead of the data section
  // Scored beside reward.functions (added to them under their names, with their weights).
  std::vector<RewardFunction> rewards;
  // Where completions come from (rollouts and evaluations); null: aha's sampler on the policy module.
  std::unique_ptr<RolloutEngine> engine;
};

// Asks a running trainer to stop after the current step, write a checkpoint and return (signal-safe).
void request_stop();
bool stop_requested();
void clear_stop_request();
// Installs SIGINT/SIGTERM handlers that call request_stop (a second signal exits at once).
void install_stop_handlers();

class Trainer {
 public:
  // Builds the model (model.path or a fresh model.architecture), tokenizer, prompts, rewards and optimizer,
  // and the run directory. With options.resume, restores the newest checkpoint of train.run_dir.
  Trainer(Config config, const reward::Registry& registry, TrainerOptions options = {});
  // The same with live objects in place of parts of the config (TrainerParts).
  Trainer(Config config, const reward::Registry& registry, TrainerOptions options, TrainerParts parts);
  ~Trainer();
  Trainer(const Trainer&) = delete;
  Trainer& operator=(const Trainer&) = delete;

  // Runs until train.steps (or a stop request); evaluates before and after; returns the summary.
  RunSummary run();
  // One GRPO step; returns its metrics.
  Json step();
  // Greedy (and sampled, with train.eval_k) accuracy on `prompts` (default: the held-out split).
  EvalResult evaluate();
  // Writes a checkpoint of the current state.
  void save_checkpoint();

  int64_t step_index() const;
  const Config& config() const;
  struct State;

 private:
  std::unique_ptr<State> s_;
};

// The resolved config of a run directory (its config.json), with `overrides` applied: what `aha train
// --resume RUN_DIR` trains with.
Config load_run_config(const std::string& run_dir, const std::vector<std::string>& overrides = {});

// The newest checkpoint directory of a run ("" when there is none).
std::string latest_checkpoint(const std::string& run_dir);

}  // namespace aha::rl
