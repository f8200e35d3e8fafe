// aha train, aha pretrain, aha eval: the trainer from the command line.
#include <cstdio>
#include <iostream>

#include "aha/core/config.h"
#include "aha/core/log.h"
#include "aha/reward/reward.h"
#include "aha/rl/pretrain.h"
#include "aha/rl/trainer.h"
#include "commands.h"

namespace aha::cli {

namespace {

struct RunArgs {
  ConfigArgs config;
  std::string resume;
};

Config run_config(const RunArgs& a) {
  if (a.resume.empty()) return load_config(a.config.file, a.config.overrides);
  if (!a.config.file.empty())
    throw Error("--resume takes the run's own config.json; change settings with --set instead of --config");
  return rl::load_run_config(a.resume, a.config.overrides);
}

void setup_logging(const Config& c) {
  log::set_level(log::parse_level(c.log.level));
}

std::string percent(double x) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f%%", 100 * x);
  return buf;
}

}  // namespace

void add_train_commands(CLI::App& app) {
  auto* train = app.add_subcommand("train", "GRPO: train a policy by RL on rule-based rewards");
  auto ta = std::make_shared<RunArgs>();
  ta->config.add_to(*train);
  train->add_option("--resume", ta->resume, "continue the run in this directory from its newest checkpoint")
      ->check(CLI::ExistingDirectory);
  auto profile_step = std::make_shared<int64_t>(0);
  train
      ->add_option("--profile-step", *profile_step,
                   "write a Chrome trace of every operator of this step (1-based) to the run directory")
      ->check(CLI::PositiveNumber);
  train->callback([ta, profile_step] {
    Config c = run_config(*ta);
    if (!ta->resume.empty()) c.train.run_dir = ta->resume;
    setup_logging(c);
    rl::install_stop_handlers();
    reward::Registry registry;
    reward::register_builtins(registry);
    rl::Trainer trainer(c, registry, {.resume = !ta->resume.empty(), .profile_step = *profile_step});
    const rl::RunSummary s = trainer.run();
    if (s.rank != 0) return;  // rank 0 reports for a data-parallel run
    std::cout << "\n"
              << (s.stopped_early ? "stopped" : "finished") << " after " << s.steps << " steps in "
              << static_cast<int64_t>(s.seconds) << " s: " << s.run_dir << "\n";
    if (s.before && s.after && s.after->prompts > 0) {
      std::printf("held-out accuracy (greedy, %lld prompts): before RL %s -> after RL %s (%+.1f points)\n",
                  static_cast<long long>(s.after->prompts), percent(s.before->accuracy).c_str(),
                  percent(s.after->accuracy).c_str(), 100 * (s.after->accuracy - s.before->accuracy));
    } else if (s.after && s.after->prompts > 0) {
      std::printf("held-out accuracy (greedy, %lld prompts): %s\n", static_cast<long long>(s.after->prompts),
                  percent(s.after->accuracy).c_str());
    }
    if (s.after && !s.after->examples.empty())
      std::cout << "example: " << s.after->examples[0].first << s.after->examples[0].second << "\n";
    std::cout << "plot: " << s.plot_path << "\nmetrics: " << s.run_dir << "/metrics.jsonl\n";
    if (s.stopped_early) std::cout << "resume with: aha train --resume " << s.run_dir << "\n";
  });

  auto* pre =
      app.add_subcommand("pretrain", "next-token training of a base model on a corpus (pretrain section)");
  auto pa = std::make_shared<RunArgs>();
  pa->config.add_to(*pre);
  pre->add_option("--resume", pa->resume, "continue the run in this directory from its newest checkpoint")
      ->check(CLI::ExistingDirectory);
  pre->callback([pa] {
    Config c = run_config(*pa);
    if (!pa->resume.empty()) c.train.run_dir = pa->resume;
    setup_logging(c);
    rl::install_stop_handlers();
    const rl::PretrainSummary s = rl::pretrain(c, {.resume = !pa->resume.empty()});
    std::cout << (s.stopped_early ? "stopped" : "finished") << " after " << s.steps << " steps in "
              << static_cast<int64_t>(s.seconds) << " s; final loss " << s.final_loss
              << "\nmodel: " << s.model_dir << "\n";
  });

  auto* ev =
      app.add_subcommand("eval", "accuracy of a model on the held-out prompts of a config (no training)");
  auto ea = std::make_shared<ConfigArgs>();
  auto model = std::make_shared<std::string>();
  ea->add_to(*ev);
  ev->add_option("--model", *model, "HF-format model directory (overrides model.path)");
  ev->callback([ea, model] {
    Config c = load_config(ea->file, ea->overrides);
    if (!model->empty()) c.model.path = *model;
    setup_logging(c);
    reward::Registry registry;
    reward::register_builtins(registry);
    rl::Trainer t(c, registry, {.eval_only = true});
    const rl::EvalResult r = t.evaluate();
    std::printf("held-out prompts: %lld\naccuracy (greedy): %s\n", static_cast<long long>(r.prompts),
                percent(r.accuracy).c_str());
    std::printf("format (greedy): %s\nmean completion length: %.1f tokens\n", percent(r.format).c_str(),
                r.mean_length);
    if (c.train.eval_k > 0)
      std::printf("mean@%lld: %s\npass@%lld: %s\n", static_cast<long long>(c.train.eval_k),
                  percent(r.mean_at_k).c_str(), static_cast<long long>(c.train.eval_k),
                  percent(r.pass_at_k).c_str());
    for (const auto& [p, comp] : r.examples)
      std::cout << "---\n" << p << comp << "\n";
  });
}

}  // namespace aha::cli
