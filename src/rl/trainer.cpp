#include "aha/rl/trainer.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/profiler_legacy.h>
#include <torch/cuda.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <filesystem>

#include "aha/core/error.h"
#include "aha/core/log.h"
#include "aha/dist/process_group.h"
#include "aha/io/file.h"
#include "aha/io/jsonl.h"
#include "aha/io/safetensors.h"
#include "aha/model/balance.h"
#include "aha/model/checkpoint.h"
#include "aha/reward/reward_set.h"
#include "aha/rl/optimizer.h"
#include "aha/rl/parallel_policy.h"
#include "aha/rl/policy_update.h"
#include "aha/rl/run_files.h"
#include "aha/rl/run_options.h"
#include "aha/rl/step_metrics.h"
#include "aha/rl/tasks.h"
#include "trainer_state.h"

namespace aha::rl {

namespace fs = std::filesystem;

namespace {

std::atomic<int> g_stop{0};

// A reward callable of TrainerParts as a reward of the set.
class FunctionReward : public reward::Reward {
 public:
  explicit FunctionReward(std::function<std::optional<double>(const reward::Sample&)> f) : f_(std::move(f)) {}
  reward::Score score(const reward::Sample& sample) const override {
    const std::optional<double> v = f_(sample);
    return v ? reward::Score::of(*v) : reward::Score::skip();
  }

 private:
  std::function<std::optional<double>(const reward::Sample&)> f_;
};

extern "C" void aha_on_stop_signal(int) {
  if (g_stop.fetch_add(1) >= 1) std::_Exit(130);
}

}  // namespace

void request_stop() {
  g_stop.store(std::max(g_stop.load(), 1));
}
bool stop_requested() {
  return g_stop.load() > 0;
}
void clear_stop_request() {
  g_stop.store(0);
}
void install_stop_handlers() {
  std::signal(SIGINT, aha_on_stop_signal);
  std::signal(SIGTERM, aha_on_stop_signal);
}

// ---- checkpoints
// ------------------------------------------------------------------------------------------------------

void Trainer::State::save_checkpoint() {
  policy->check_replicas(step);
  const std::string name = "step-" + std::to_string(step);
  const fs::path root = fs::path(run_dir) / "checkpoints";
  const std::string staging = (root / (".shards-" + name)).string(),
                    exported = (root / (".export-" + name)).string();
  policy->save(staging, exported);  // the ranks' own state, where it differs between them
  if (!main()) return;
  Json st;
  st["step"] = step;
  st["prompts"] = prompts->state();
  st["bad_steps"] = bad_steps;
  st["shard"] = cfg.dist.shard;
  st["world_size"] = world->size();
  st["expert_parallel"] = policy->layout().expert_parallel;
  const std::string dir = commit_checkpoint(
      run_dir, name,
      [&](const std::string& tmp) {
        policy->commit(tmp, staging, exported);
        at::Tensor rng = at::detail::getDefaultCPUGenerator().get_state();
        io::save_safetensors((fs::path(tmp) / "rng.safetensors").string(), {{"cpu_generator", rng}});
      },
      std::move(st), cfg.train.keep_checkpoints);
  log::info("checkpoint: ", dir);
  if (opts.on_checkpoint) opts.on_checkpoint(dir);
}

void Trainer::State::load_checkpoint(const std::string& dir) {
  const Json st = read_checkpoint_state(dir);
  step = st.at("step").get<int64_t>();
  bad_steps = st.value("bad_steps", int64_t{0});
  prompts->restore(st.at("prompts"));
  policy->load(dir, st, cfg.dist.shard);
  io::Checkpoint rng = io::Checkpoint::open((fs::path(dir) / "rng.safetensors").string());
  at::Generator gen = at::detail::getDefaultCPUGenerator();
  gen.set_state(rng.tensor("cpu_generator"));
}

// ---- Trainer
// ------------------------------------------------------------------------------------------------------

Trainer::Trainer(Config config, const reward::Registry& registry, TrainerOptions options)
    : Trainer(std::move(config), registry, std::move(options), TrainerParts{}) {}

Trainer::Trainer(Config config, const reward::Registry& base_registry, TrainerOptions options,
                 TrainerParts parts)
    : s_(std::make_unique<State>()) {
  State& s = *s_;
  s.cfg = std::move(config);
  s.opts = std::move(options);
  s.run_dir = s.cfg.train.run_dir;
  AHA_CHECK(!s.run_dir.empty(), "train.run_dir is empty");
  AHA_CHECK(!parts.model == !parts.tokenizer,
            "TrainerParts: a model needs its tokenizer, and a tokenizer its model");
  // Reward callables join the registry under their names and the reward section with their weights.
  reward::Registry registry = base_registry;
  for (auto& f : parts.rewards) {
    AHA_CHECK(!f.name.empty() && f.score, "TrainerParts: every reward function needs a name and a callable");
    AHA_CHECK(!registry.contains(f.name), "TrainerParts: reward function \"", f.name,
              "\" has the name of a registered reward; choose another");
    registry.add(
        f.name, [fn = f.score](const Json&) { return std::make_unique<FunctionReward>(fn); },
        "a C++ callable handed to the trainer");
    const bool listed = std::any_of(s.cfg.reward.functions.begin(), s.cfg.reward.functions.end(),
                                    [&](const RewardSpec& r) { return r.name == f.name; });
    if (!listed) s.cfg.reward.functions.push_back({f.name, f.weight, Json::object(), ""});
  }
  s.o = step_options(s.cfg);
  const auto prompts_and_rewards = [&] {
    if (parts.prompts) {
      s.prompts = std::move(parts.prompts);
    } else {
      s.prompts = std::make_unique<PromptSource>(s.cfg.data);
    }
    s.rewards = std::make_unique<reward::RewardSet>(reward_set_options(s.cfg.reward), registry);
    s.roles = reward_roles(s.rewards->names(), s.cfg.train.accuracy_reward, s.cfg.train.correct_threshold);
  };
  const auto engine = [&] {
    s.engine =
        parts.engine ? std::move(parts.engine) : std::make_unique<SamplerEngine>(s.policy->policy().model);
  };
  // The program's model, or the config's (loaded or built, on the host when it will be fully sharded).
  const auto given_policy = [&](const std::string& checkpoint) {
    Policy p;
    p.model = parts.model;
    p.tokenizer = std::move(parts.tokenizer);
    p.tokenizer_json = parts.tokenizer_json;
    p.device = p.model->model->embed_tokens->weight.device();
    p.dtype = resolve_dtype(s.cfg.model.precision);
    if (!checkpoint.empty()) {
      const std::string dir = (fs::path(checkpoint) / "model").string();
      model::load_weights(*p.model, io::Checkpoint::open(dir), dir);
    }
    return p;
  };
  if (s.opts.eval_only) {
    s.world = std::make_shared<dist::World>();
    Policy p = parts.model ? given_policy("") : make_policy(s.cfg.model, s.cfg.data);
    prompts_and_rewards();
    s.policy = std::make_unique<ParallelPolicy>(s.world, std::move(p), model::Transformer(nullptr),
                                                ParallelOptions{});
    engine();
    s.o.rollout.pad_id = s.o.eval.sampling.pad_id = s.tokenizer().special_tokens().pad.value_or(0);
    return;
  }
  std::string checkpoint;
  if (s.opts.resume) {
    checkpoint = latest_checkpoint(s.run_dir);
    AHA_CHECK(!checkpoint.empty(), "cannot resume: no checkpoint in ", s.run_dir, "/checkpoints");
  } else if (fs::exists(fs::path(s.run_dir) / "checkpoints")) {
    AHA_FAIL("the run directory ", s.run_dir, " already holds a run: resume it with `aha train --resume ",
             s.run_dir, "`, or choose another train.run_dir");
  }
  // Join the other ranks first (one process: nothing to join): a failed rendezvous costs no model build.
  ModelSection ms = s.cfg.model;
  const dist::WorldSpec spec =
      s.opts.world ? s.opts.world->spec()
                   : dist::resolve_world(rendezvous_options(s.cfg.dist), dist::process_environment());
  if (parts.model) ms.device = parts.model->model->embed_tokens->weight.device().str();
  ms.device = dist::rank_device(ms.device, spec, torch::cuda::is_available());
  s.world = s.opts.world ? s.opts.world : dist::World::connect(spec, resolve_device(ms.device));
  if (!s.main()) s.opts.console = false;
  if (s.world->backend() != "none" && s.main())
    log::info("data parallel: ", s.world->size(), " rank(s) (", s.world->backend(), ", from ", spec.source,
              "), rendezvous at ", spec.master_addr, ":", spec.master_port);
  if (s.main()) {
    io::make_dirs(s.run_dir);
    if (s.cfg.log.file) log::open_file((fs::path(s.run_dir) / "aha.log").string());
  }
  if (!checkpoint.empty()) ms.path = (fs::path(checkpoint) / "model").string();
  // Fully sharded on a GPU: the model stays on the host until the sharding moves it over in slices (the
  // device never holds it whole).
  const bool on_host = !parts.model && s.cfg.dist.shard == "full" && !resolve_device(ms.device).is_cpu();
  Policy p = parts.model ? given_policy(checkpoint) : make_policy(ms, s.cfg.data, on_host);
  {
    // Every rank starts from rank 0's weights, whatever its own initialisation did.
    std::vector<at::Tensor> state;
    for (const auto& t : p.model->parameters())
      state.push_back(t);
    for (const auto& b : p.model->buffers())
      state.push_back(b);
    s.world->broadcast(state);
  }
  model::Transformer ref{nullptr};
  if (s.cfg.grpo.beta > 0) {
    const fs::path saved_ref = checkpoint.empty() ? fs::path() : fs::path(checkpoint) / "ref";
    if (!saved_ref.empty() && fs::exists(saved_ref)) {
      ref = model::load_pretrained(saved_ref.string(),
                                   {.dtype = at::kFloat, .device = on_host ? at::kCPU : p.device});
    } else {
      ref = model::Transformer(p.model->config());
      if (!on_host) ref->to(p.device);
      copy_weights(*ref, *p.model);
    }
    for (auto& t : ref->parameters())
      t.set_requires_grad(false);
  }
  prompts_and_rewards();
  s.policy = std::make_unique<ParallelPolicy>(s.world, std::move(p), ref, parallel_options(s.cfg));
  engine();
  s.o.rollout.pad_id = s.tokenizer().special_tokens().pad.value_or(0);
  s.o.rollout.lockstep = s.policy->rollout_lockstep();
  s.o.rollout.progress = s.opts.console;
  s.o.eval.sampling = s.o.rollout;
  if (s.main() && (s.policy->sharded() || s.cfg.train.activation_checkpointing))
    log::info("dist.shard ", s.cfg.dist.shard,
              s.cfg.train.activation_checkpointing ? ", activation checkpointing" : "", ": ", s.world->size(),
              " rank(s)");

  if (!checkpoint.empty()) {
    s.load_checkpoint(checkpoint);
    if (!s.main()) return;
    truncate_jsonl_after_step((fs::path(s.run_dir) / "metrics.jsonl").string(), s.step);
    truncate_jsonl_after_step((fs::path(s.run_dir) / "samples.jsonl").string(), s.step);
    log::info("resumed ", s.run_dir, " at step ", s.step, " from ", checkpoint);
  } else if (!s.main()) {
    return;
  } else {
    io::write_file_atomic((fs::path(s.run_dir) / "config.json").string(), to_json(s.cfg).dump(2) + "\n");
    fs::remove(fs::path(s.run_dir) / "metrics.jsonl");
    fs::remove(fs::path(s.run_dir) / "samples.jsonl");
  }
  s.history = read_metrics((fs::path(s.run_dir) / "metrics.jsonl").string());
  s.metrics = std::make_unique<io::JsonlWriter>((fs::path(s.run_dir) / "metrics.jsonl").string(), true);
  s.samples = std::make_unique<io::JsonlWriter>((fs::path(s.run_dir) / "samples.jsonl").string(), true);
}

Trainer::~Trainer() = default;

int64_t Trainer::step_index() const {
  return s_->step;
}
const Config& Trainer::config() const {
  return s_->cfg;
}
EvalResult Trainer::evaluate() {
  return s_->evaluate();
}
void Trainer::save_checkpoint() {
  s_->save_checkpoint();
}

Json Trainer::step() {
  State& s = *s_;
  Json m = s.step_once();
  ++s.step;
  ++s.steps_this_process;
  if (s.cfg.train.eval_every > 0 && s.step % s.cfg.train.eval_every == 0 && s.step < s.cfg.train.steps)
    s.add_eval(m, s.evaluate());
  return m;
}

RunSummary Trainer::run() {
  State& s = *s_;
  RunSummary summary;
  summary.run_dir = s.run_dir;
  summary.rank = s.world->rank();
  s.started = Clock::now();
  const auto t0 = Clock::now();
  if (s.step == 0 && s.cfg.train.eval_at_start) {
    if (s.main()) log::info("evaluating on ", s.prompts->eval().size(), " held-out prompts before training");
    EvalResult before = s.evaluate();
    summary.before = before;
    Json m;
    m["step"] = 0;
    s.add_eval(m, before);
    if (s.main()) {
      s.metrics->write(m);
      s.history.push_back(m);
      log::info("before RL: held-out accuracy ", 100 * before.accuracy, "%");
    }
  }
  while (s.step < s.cfg.train.steps) {
    // A signal may reach the ranks at different steps: they stop together when any of them got one.
    if (s.world->all_reduce({stop_requested() ? 1.0 : 0.0}, dist::ReduceOp::max)[0] > 0) {
      log::warn("stop requested: writing a checkpoint at step ", s.step);
      summary.stopped_early = true;
      break;
    }
    Json m;
    if (s.step + 1 == s.opts.profile_step) {
      std::string trace =
          (fs::path(s.run_dir) / ("profile_step" + std::to_string(s.opts.profile_step))).string();
      if (s.world->size() > 1) trace += ".rank" + std::to_string(s.world->rank());
      trace += ".json";
      {
        torch::autograd::profiler::RecordProfile guard(trace);
        m = step();
      }
      if (s.main()) log::info("operator profile of step ", s.opts.profile_step, ": ", trace);
    } else {
      m = step();
    }
    if (s.step == s.cfg.train.steps) {
      EvalResult after = s.evaluate();
      summary.after = after;
      s.add_eval(m, after);
    }
    if (s.main()) {
      s.metrics->write(m);
      s.history.push_back(m);
      s.console_line(m);
      if (m.contains("eval/accuracy")) write_run_plot(s.run_dir, s.history);
    }
    if (s.opts.on_step) s.opts.on_step(m);
    if (s.bad_steps >= s.cfg.train.max_bad_steps) {
      log::error(s.bad_steps, " steps in a row had a non-finite loss: stopping with a checkpoint");
      summary.stopped_early = true;
      break;
    }
    if (s.cfg.train.save_every > 0 && s.step % s.cfg.train.save_every == 0 && s.step < s.cfg.train.steps)
      s.save_checkpoint();
  }
  s.save_checkpoint();
  if (s.main()) write_run_plot(s.run_dir, s.history);
  s.world->barrier();  // no rank leaves (and closes its connections) while another still needs it
  summary.steps = s.step;
  summary.seconds = seconds_since(t0);
  summary.plot_path = (fs::path(s.run_dir) / "plot.png").string();
  log::flush();
  return summary;
}

Config load_run_config(const std::string& run_dir, const std::vector<std::string>& overrides) {
  const std::string path = (fs::path(run_dir) / "config.json").string();
  AHA_CHECK(fs::exists(path), "no config.json in ", run_dir, ": not a run directory");
  return load_config(path, overrides);
}

std::string latest_checkpoint(const std::string& run_dir) {
  const fs::path root = fs::path(run_dir) / "checkpoints";
  const fs::path latest = root / "latest";
  if (!fs::exists(latest)) return "";
  std::string name = io::read_file(latest.string());
  while (!name.empty() && (name.back() == '\n' || name.back() == ' '))
    name.pop_back();
  const fs::path dir = root / name;
  AHA_CHECK(fs::exists(dir / "trainer_state.json"), latest.string(), " names ", name,
            " but that checkpoint is missing or incomplete");
  return dir.string();
}

}  // namespace aha::rl
