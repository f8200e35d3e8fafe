// aha score: scores a JSONL file of completions with the rewards of a config and prints per-reward summaries,
// to check a reward on real outputs before training with it.
//
// Input, one JSON object per line: "completion" (required), "prompt", "completion_tokens", "truncated",
// "id" (default: the line number), and "fields" (the prompt's fields: ground truth, numbers, ...). Without
// "fields" the record itself is the fields object, so GSM8K-style lines ({"answer": ..., "completion": ...})
// work as they are.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <memory>

#include "aha/core/config.h"
#include "aha/core/error.h"
#include "aha/io/jsonl.h"
#include "aha/reward/reward_set.h"
#include "aha/rl/run_options.h"
#include "commands.h"

namespace aha::cli {

namespace {

struct ScoreArgs {
  std::string rewards, input, output;
  std::vector<std::string> overrides;
  int64_t threads = 0;
};

// A run config (it has "reward"), a reward section (it has "functions"), or a bare list of reward specs.
RewardSection load_rewards(const std::string& path, const std::vector<std::string>& overrides) {
  Json j = read_json_file(path);
  if (j.is_object() && j.contains("reward")) return load_config(path, overrides).reward;
  if (j.is_array()) j = Json{{"functions", j}};
  if (!j.is_object() || !j.contains("functions"))
    throw Error(
        "expected a run config (with \"reward\"), a reward section (with \"functions\") or a list of rewards",
        path);
  RewardSection section;
  from_json(j, section, path);
  for (const auto& o : overrides)
    apply_override(section, o);
  return section;
}

struct Input {
  std::vector<io::JsonlRecord> records;
  std::vector<reward::Sample> samples;  // views into `records`
};

Input read_samples(const std::string& path) {
  Input in;
  in.records = io::read_jsonl(path);
  AHA_CHECK(!in.records.empty(), path, ": no samples");
  for (const auto& r : in.records) {
    const std::string where = path + ":" + std::to_string(r.line);
    const Json& v = r.value;
    if (!v.is_object()) throw Error("expected a JSON object with \"completion\"", where);
    auto string_field = [&](const char* key, bool required) -> std::string_view {
      auto it = v.find(key);
      if (it == v.end()) {
        if (required) throw Error(std::string("no \"") + key + "\" field", where);
        return {};
      }
      if (!it->is_string())
        throw Error(std::string("expected a string, got ") + it->dump(), where + ": " + key);
      return it->get_ref<const std::string&>();
    };
    reward::Sample s;
    s.completion = string_field("completion", true);
    s.prompt = string_field("prompt", false);
    s.id = r.line;
    if (auto it = v.find("completion_tokens"); it != v.end()) {
      if (!it->is_number_integer() || it->get<int64_t>() < 0)
        throw Error("expected a non-negative integer, got " + it->dump(), where + ": completion_tokens");
      s.completion_tokens = it->get<int64_t>();
    }
    if (auto it = v.find("truncated"); it != v.end()) {
      if (!it->is_boolean()) throw Error("expected true or false, got " + it->dump(), where + ": truncated");
      s.truncated = it->get<bool>();
    }
    if (auto it = v.find("id"); it != v.end()) {
      if (!it->is_number_integer()) throw Error("expected an integer, got " + it->dump(), where + ": id");
      s.id = it->get<int64_t>();
    }
    if (auto it = v.find("fields"); it != v.end()) {
      if (!it->is_object()) throw Error("expected an object, got " + it->dump(), where + ": fields");
      s.fields = &*it;
    } else {
      s.fields = &v;
    }
    in.samples.push_back(s);
  }
  return in;
}

struct Summary {
  int64_t scored = 0, skipped = 0;
  double mean = 0, std = 0, min = 0, max = 0;
};

Summary summarise(const std::vector<std::optional<double>>& values) {
  Summary s;
  double sum = 0;
  for (const auto& v : values) {
    if (!v) {
      ++s.skipped;
      continue;
    }
    s.min = s.scored ? std::min(s.min, *v) : *v;
    s.max = s.scored ? std::max(s.max, *v) : *v;
    sum += *v;
    ++s.scored;
  }
  if (s.scored == 0) return s;
  s.mean = sum / static_cast<double>(s.scored);
  double sq = 0;
  for (const auto& v : values)
    if (v) sq += (*v - s.mean) * (*v - s.mean);
  s.std = std::sqrt(sq / static_cast<double>(s.scored));  // population std, as TRL logs reward_std
  return s;
}

void print_row(const std::string& name, const std::string& weight, const Summary& s,
               const std::string& failed) {
  if (s.scored == 0) {
    std::printf("%-24s %7s %9s %9s %9s %9s %7lld %8lld %7s\n", name.c_str(), weight.c_str(), "-", "-", "-",
                "-", 0LL, static_cast<long long>(s.skipped), failed.c_str());
    return;
  }
  std::printf("%-24s %7s %9.4f %9.4f %9.4f %9.4f %7lld %8lld %7s\n", name.c_str(), weight.c_str(), s.mean,
              s.std, s.min, s.max, static_cast<long long>(s.scored), static_cast<long long>(s.skipped),
              failed.c_str());
}

void run(const ScoreArgs& a) {
  const RewardSection section = load_rewards(a.rewards, a.overrides);
  reward::Registry registry;
  reward::register_builtins(registry);
  const reward::RewardSet rewards(rl::reward_set_options(section), registry);
  const Input in = read_samples(a.input);

  const auto start = std::chrono::steady_clock::now();
  const reward::BatchScores scores = rewards.score(in.samples, a.threads);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  // Names as keys of the output: a reward listed twice gets its index appended.
  std::vector<std::string> keys = scores.names;
  for (size_t k = 0; k < keys.size(); ++k)
    if (std::count(scores.names.begin(), scores.names.end(), scores.names[k]) > 1)
      keys[k] += "#" + std::to_string(k);

  std::printf("scored %zu samples from %s with %zu rewards in %.3f s\n", in.samples.size(), a.input.c_str(),
              rewards.size(), seconds);
  std::printf("%-24s %7s %9s %9s %9s %9s %7s %8s %7s\n", "reward", "weight", "mean", "std", "min", "max",
              "scored", "skipped", "failed");
  for (size_t k = 0; k < keys.size(); ++k) {
    char weight[32];
    std::snprintf(weight, sizeof weight, "%.2f", rewards.weights()[k]);
    print_row(keys[k], weight, summarise(scores.per_reward[k]), std::to_string(scores.failed[k]));
  }
  print_row("total", "", summarise(scores.total), "");

  if (a.output.empty()) return;
  io::JsonlWriter out(a.output, /*append=*/false);
  for (size_t i = 0; i < in.samples.size(); ++i) {
    Json per = Json::object(), extras = Json::object();
    for (size_t k = 0; k < keys.size(); ++k)
      per[keys[k]] = scores.per_reward[k][i] ? Json(*scores.per_reward[k][i]) : Json(nullptr);
    for (const auto& [key, v] : scores.extras[i])
      extras[key] = v;
    out.write(Json{{"line", in.records[i].line},
                   {"id", in.samples[i].id},
                   {"scores", per},
                   {"total", scores.total[i] ? Json(*scores.total[i]) : Json(nullptr)},
                   {"extras", extras}});
  }
  std::printf("per-sample scores -> %s\n", a.output.c_str());
}

}  // namespace

void add_score_command(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "score", "score a JSONL file of completions with a config's rewards and print per-reward summaries");
  auto a = std::make_shared<ScoreArgs>();
  cmd->add_option(
         "-r,--rewards", a->rewards,
         "a run config (its \"reward\" section is used), a reward section ({\"functions\": [...]}) or "
         "a list of rewards")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->add_option(
         "-i,--input", a->input,
         "JSONL, one sample a line: completion, prompt, completion_tokens, truncated, id, fields (or "
         "the ground truth at the top level)")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->add_option("-o,--output", a->output, "write each sample's scores, total and extras here (JSONL)");
  cmd->add_option("--threads", a->threads,
                  "threads for per-sample rewards (default: reward.threads, 0: one per core)");
  cmd->add_option("--set", a->overrides,
                  "override a field of the config: --set reward.fallback_score=-1 (a run config) or "
                  "--set functions[0].weight=2 (a reward section); repeatable")
      ->take_all();
  cmd->callback([a] { run(*a); });
}

}  // namespace aha::cli
