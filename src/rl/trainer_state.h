// The trainer's state, shared by trainer.cpp (construction, the run loop, checkpoints) and trainer_step.cpp
// (one step through the stages, its metrics, evaluation). Private to src/rl.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "aha/io/jsonl.h"
#include "aha/rl/evaluation.h"
#include "aha/rl/parallel_policy.h"
#include "aha/rl/policy_update.h"
#include "aha/rl/rollouts.h"
#include "aha/rl/step_metrics.h"
#include "aha/rl/trainer.h"

namespace aha::rl {

using Clock = std::chrono::steady_clock;

inline double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

struct StepOptions {
  GenerationSpec rollout;  // params.seed is set per round
  uint64_t rollout_seed = 0;
  int64_t prompts_per_step = 16;
  bool dynamic = false;
  int64_t max_rounds = 0;
  AdvantageOptions advantages;
  UpdateOptions update;
  EvalOptions eval;
};

StepOptions step_options(const Config& config);

struct Trainer::State {
  Config cfg;
  TrainerOptions opts;
  StepOptions o;
  std::shared_ptr<dist::World> world;  // one process unless launched as a rank of several
  std::unique_ptr<ParallelPolicy> policy;
  std::unique_ptr<RolloutEngine> engine;
  std::unique_ptr<PromptStream> prompts;
  std::unique_ptr<reward::RewardSet> rewards;
  RewardRoles roles;
  int64_t step = 0;
  int64_t bad_steps = 0;
  std::string run_dir;
  std::unique_ptr<io::JsonlWriter> metrics, samples;
  std::vector<Json> history;
  Clock::time_point started = Clock::now();
  int64_t steps_this_process = 0;
  double rollout_seconds = 0, reward_seconds = 0;  // this step's, this rank's (the time split)

  bool main() const { return world->is_main(); }
  const text::Tokenizer& tokenizer() const { return *policy->policy().tokenizer; }

  Rollouts collect_batch(StepMetrics& sm, int64_t& rounds, int64_t& kept, double& zero_std_frac);
  EvalResult evaluate();
  void add_eval(Json& m, const EvalResult& e) const;
  Json step_once();
  Json step_metrics(const StepMetrics& sm, const Rollouts& batch, const UpdateStats& up, double lr,
                    int64_t rounds, int64_t kept, double zero_std_frac, Clock::time_point t_step) const;
  void write_samples(const Rollouts& b, const at::Tensor& adv);
  void console_line(const Json& m);
  void save_checkpoint();
  void load_checkpoint(const std::string& dir);
};

}  // namespace aha::rl
