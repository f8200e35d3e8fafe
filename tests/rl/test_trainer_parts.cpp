// The trainer from live objects (TrainerParts): a program's own model, tokenizer, prompts and reward lambda
// train like a configured run: the lambda scores every completion under its name, only the program's prompts
// are drawn, a stopped run resumes into a freshly made model and ends bit for bit where an uninterrupted one
// does, and half-given parts are refused with a clear error.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <set>

#include "../support/error_of.h"
#include "aha/io/safetensors.h"
#include "aha/rl/policy.h"
#include "aha/rl/run_files.h"
#include "aha/rl/tasks.h"
#include "aha/rl/trainer.h"
#include "aha/text/char_tokenizer.h"

namespace aha::rl {
namespace {

namespace fs = std::filesystem;

std::vector<Prompt> sums(int from, int to) {
  std::vector<Prompt> out;
  for (int a = from; a < to; ++a) {
    Prompt p;
    p.fields = {{"question", std::to_string(a) + "+1"}, {"answer", std::to_string(a + 1)}};
    p.text = "User: " + std::to_string(a) + "+1\nAssistant: <think>";
    out.push_back(p);
  }
  return out;
}

struct Made {
  TrainerParts parts;
  std::shared_ptr<std::atomic<int64_t>> calls = std::make_shared<std::atomic<int64_t>>(0);
};

// A fresh tiny model (weights from `seed`), the task vocabulary, prompts 0+1..9+1 (eval 20+1..22+1), and a
// reward that counts its calls and scores digits in the completion.
Made make(uint64_t seed) {
  Made m;
  auto tok =
      std::make_unique<text::CharTokenizer>(text::CharTokenizer::from_json(task_tokenizer_json(), "tasks"));
  m.parts.model = model::Transformer(architecture_preset("tiny", *tok));
  m.parts.model->init_weights(seed);
  m.parts.tokenizer = std::move(tok);
  m.parts.prompts = std::make_unique<VectorPrompts>(sums(0, 10), sums(20, 23));
  auto calls = m.calls;
  m.parts.rewards = {{"digits", 1.0, [calls](const reward::Sample& s) -> std::optional<double> {
                        ++*calls;
                        double d = 0;
                        for (char c : s.completion)
                          d += c >= '0' && c <= '4';
                        return d / 10;
                      }}};
  return m;
}

Config config(const fs::path& dir, int64_t steps) {
  Config c;
  c.reward.functions.clear();
  c.rollout.num_generations = 4;
  c.rollout.max_new_tokens = 8;
  c.rollout.temperature = 1.5;
  c.train.steps = steps;
  c.train.prompts_per_step = 3;
  c.train.micro_batch_size = 6;
  c.train.eval_every = 0;
  c.train.eval_at_start = false;
  c.train.save_every = 0;
  c.train.run_dir = dir.string();
  c.optim.lr = 1e-3;
  c.log.file = false;
  c.log.level = "warn";
  return c;
}

TEST(TrainerParts, LiveObjectsTrainAndResumeIntoAFreshModel) {
  const fs::path base = fs::temp_directory_path() / ("aha_trainer_parts_" + std::to_string(::getpid()));
  fs::remove_all(base);
  reward::Registry reg;
  reward::register_builtins(reg);
  Made whole = make(5);
  const auto calls = whole.calls;
  Trainer t(config(base / "whole", 3), reg, {.console = false}, std::move(whole.parts));
  ASSERT_EQ(t.run().steps, 3);
  // The lambda scored every completion of the 3 steps (3 prompts x 4) and the final evaluation (3 greedy).
  EXPECT_EQ(calls->load(), 3 * 3 * 4 + 3);
  const std::vector<Json> m = read_metrics((base / "whole/metrics.jsonl").string());
  ASSERT_EQ(m.size(), 3u);
  EXPECT_TRUE(m[0].contains("rewards/digits"));
  EXPECT_GT(m[0]["reward"].get<double>(), 0);
  // Only the program's training prompts were drawn.
  std::set<std::string> allowed;
  for (const auto& p : sums(0, 10))
    allowed.insert(p.text);
  for (const auto& rec : read_metrics((base / "whole/samples.jsonl").string()))
    EXPECT_TRUE(allowed.count(rec["prompt"].get<std::string>())) << rec["prompt"];

  // Stopped after 2 steps, resumed with a model made from another seed: the checkpoint's weights and the
  // prompt position win, and the end is the uninterrupted run's, bit for bit.
  Made first = make(5);
  Trainer a(config(base / "cut", 2), reg, {.console = false}, std::move(first.parts));
  ASSERT_EQ(a.run().steps, 2);
  Made second = make(99);
  Trainer b(config(base / "cut", 3), reg, {.resume = true, .console = false}, std::move(second.parts));
  ASSERT_EQ(b.run().steps, 3);
  io::Checkpoint x = io::Checkpoint::open((base / "whole/checkpoints/step-3/model").string());
  io::Checkpoint y = io::Checkpoint::open((base / "cut/checkpoints/step-3/model").string());
  ASSERT_EQ(x.names(), y.names());
  for (const auto& name : x.names())
    EXPECT_TRUE(x.tensor(name).equal(y.tensor(name))) << name;
  fs::remove_all(base);
}

TEST(TrainerParts, HalfGivenPartsAreRefused) {
  reward::Registry reg;
  reward::register_builtins(reg);
  const fs::path dir = fs::temp_directory_path() / ("aha_trainer_parts_bad_" + std::to_string(::getpid()));
  Made m = make(1);
  m.parts.tokenizer.reset();
  EXPECT_NE(test::error_of([&] {
              Trainer t(config(dir, 1), reg, {.console = false}, std::move(m.parts));
            }).find("a model needs its tokenizer"),
            std::string::npos);
  Made n = make(1);
  n.parts.rewards[0].name = "format";  // a built-in's name
  EXPECT_NE(test::error_of([&] {
              Trainer t(config(dir, 1), reg, {.console = false}, std::move(n.parts));
            }).find("has the name of a registered reward"),
            std::string::npos);
}

}  // namespace
}  // namespace aha::rl
