// aha plan: bytes per rank of a training run, from a model's config alone (rl/memory_plan.h).
#include <cstdio>
#include <filesystem>
#include <iostream>

#include "aha/core/config_json.h"
#include "aha/model/config.h"
#include "aha/model/summary.h"
#include "aha/rl/memory_plan.h"
#include "commands.h"

namespace aha::cli {
namespace {

std::string gib(int64_t bytes) {
  char buf[32];
  if (bytes >= (int64_t{1} << 30)) {
    std::snprintf(buf, sizeof buf, "%.2f GiB", static_cast<double>(bytes) / (1 << 30));
  } else {
    std::snprintf(buf, sizeof buf, "%.2f MiB", static_cast<double>(bytes) / (1 << 20));
  }
  return buf;
}

Json to_json(const rl::MemoryPlan& p) {
  return {{"params", p.params},
          {"grads", p.grads},
          {"optimizer", p.optimizer},
          {"state", p.state()},
          {"gathered", p.gathered},
          {"activations", p.activations},
          {"rollout_weights", p.rollout_weights},
          {"kv_cache", p.kv_cache}};
}

}  // namespace

void add_plan_command(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "plan", "bytes per rank of a GRPO run: weights, gradients, optimizer, activations, rollout KV cache");
  auto in = std::make_shared<rl::PlanInput>();
  auto model = std::make_shared<std::string>();
  auto json = std::make_shared<bool>(false);
  cmd->add_option("--model", *model, "HF model directory, or its config.json")->required();
  cmd->add_option("--world-size", in->world_size, "ranks of the run")->capture_default_str();
  cmd->add_option("--shard", in->shard, "dist.shard: none, optimizer, grads or full")->capture_default_str();
  cmd->add_option("--expert-parallel", in->expert_parallel, "dist.expert_parallel")->capture_default_str();
  cmd->add_option("--precision", in->precision, "model.precision: fp32, bf16 or fp8")->capture_default_str();
  cmd->add_flag("--activation-checkpointing", in->activation_checkpointing, "train.activation_checkpointing");
  cmd->add_option("--micro-batch", in->micro_batch, "train.micro_batch_size")->capture_default_str();
  cmd->add_option("--prompt-tokens", in->prompt_tokens, "tokens of a prompt")->capture_default_str();
  cmd->add_option("--completion-tokens", in->completion_tokens, "rollout.max_new_tokens")
      ->capture_default_str();
  cmd->add_option("--rollout-rows", in->rollout_rows, "completions a rank samples at once")
      ->capture_default_str();
  cmd->add_flag("--json", *json, "print the figures as JSON (bytes)");
  cmd->callback([in, model, json] {
    const std::filesystem::path path(*model);
    const std::string config = std::filesystem::is_directory(path) ? (path / "config.json").string() : *model;
    rl::PlanInput p = *in;
    p.model = model::load_hf_config(config);
    const rl::MemoryPlan plan = rl::plan_memory(p);
    rl::PlanInput whole = p;
    whole.world_size = 1;
    whole.shard = "none";
    whole.expert_parallel = 1;
    const rl::MemoryPlan one = rl::plan_memory(whole);
    if (*json) {
      std::cout << Json{{"plan", to_json(plan)}, {"one_process", to_json(one)}}.dump(2) << "\n";
      return;
    }
    const model::ModelSummary s = model::summarize(p.model);
    std::printf("%s: %.2f B parameters", config.c_str(), s.total_parameters / 1e9);
    if (s.mtp_parameters > 0)
      std::printf(" (+ %.2f B in MTP modules, held but not trained)", s.mtp_parameters / 1e9);
    std::printf(", %lld routed experts\n", static_cast<long long>(p.model.n_routed_experts));
    std::printf("%lld rank(s), dist.shard %s, dist.expert_parallel %lld, model.precision %s%s\n",
                static_cast<long long>(p.world_size), p.shard.c_str(),
                static_cast<long long>(p.expert_parallel), p.precision.c_str(),
                p.activation_checkpointing ? ", activation checkpointing" : "");
    std::printf("per rank                        %14s %16s\n", "this layout", "one process");
    auto row = [](const char* what, int64_t a, int64_t b) {
      std::printf("  %-30s %14s %16s\n", what, gib(a).c_str(), gib(b).c_str());
    };
    row("weights (kept + fp32 masters)", plan.params, one.params);
    row("gradients", plan.grads, one.grads);
    row("AdamW moments", plan.optimizer, one.optimizer);
    row("= training state", plan.state(), one.state());
    if (p.shard == "full")
      std::printf("  %-30s %14s %16s\n", "gathered in a step (root+layer)", gib(plan.gathered).c_str(), "-");
    char what[64];
    std::snprintf(what, sizeof what, "activations (%lld x %lld tokens)",
                  static_cast<long long>(p.micro_batch),
                  static_cast<long long>(p.prompt_tokens + p.completion_tokens));
    row(what, plan.activations, one.activations);
    row("rollout weights", plan.rollout_weights, one.rollout_weights);
    std::snprintf(what, sizeof what, "rollout KV cache (%lld rows)", static_cast<long long>(p.rollout_rows));
    row(what, plan.kv_cache, one.kv_cache);
    std::printf("training state per rank: %.1f%% of one process's (1/%lld = %.1f%%)\n",
                100.0 * static_cast<double>(plan.state()) / static_cast<double>(one.state()),
                static_cast<long long>(p.world_size), 100.0 / static_cast<double>(p.world_size));
    std::printf(
        "activations and the KV cache are estimates; weights, gradients and moments are what the trainer's "
        "mem/* metrics count\n");
  });
}

}  // namespace aha::cli
