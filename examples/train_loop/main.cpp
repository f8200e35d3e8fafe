// GRPO from C++ with live objects instead of a config's sections: a tiny DeepSeek-V3-style model built here,
// prompts made here, and a reward as a lambda. Trains a few steps and prints each step's figures; exits
// non-zero if the run did not complete with finite losses.
#include <aha/aha.h>

#include <unistd.h>
#include <cmath>
#include <cstdio>
#include <filesystem>

int main(int argc, char** argv) {
  const int steps = argc > 1 ? std::atoi(argv[1]) : 3;
  // The model: the "tiny" preset over the arithmetic tasks' character vocabulary, freshly initialised.
  auto tokenizer = std::make_unique<aha::text::CharTokenizer>(
      aha::text::CharTokenizer::from_json(aha::rl::task_tokenizer_json(), "the task vocabulary"));
  aha::model::Transformer model(aha::rl::architecture_preset("tiny", *tokenizer));
  model->init_weights(7);

  // Prompts: sums of two digits, the answer in the fields the reward reads.
  std::vector<aha::rl::Prompt> train, eval;
  for (int a = 0; a < 10; ++a)
    for (int b = 0; b < 10; ++b) {
      aha::rl::Prompt p;
      p.fields = {{"question", std::to_string(a) + "+" + std::to_string(b)},
                  {"answer", std::to_string(a + b)}};
      p.text = "User: " + p.fields["question"].get<std::string>() + "\nAssistant: <think>";
      ((a + b) % 10 == 3 ? eval : train).push_back(p);
    }

  // The reward: 1 for the right answer in <answer> tags, 0.1 for closing the think.
  aha::rl::RewardFunction right{"right_sum", 1.0, [](const aha::reward::Sample& s) -> std::optional<double> {
                                  const std::string want =
                                      "<answer>" + s.field("answer").value_or("?") + "</answer>";
                                  if (s.completion.find(want) != std::string_view::npos) return 1.0;
                                  return s.completion.find("</think>") != std::string_view::npos ? 0.1 : 0.0;
                                }};

  aha::Config config;               // defaults, then what this program changes
  config.reward.functions.clear();  // only the lambda
  config.rollout.num_generations = 4;
  config.rollout.max_new_tokens = 12;
  config.rollout.stop = {"</answer>"};
  config.rollout.temperature = 1.2;
  config.train.steps = steps;
  config.train.prompts_per_step = 4;
  config.train.micro_batch_size = 16;
  config.train.eval_every = 0;
  config.train.eval_at_start = false;
  config.train.accuracy_reward = "right_sum";
  config.log.file = false;
  aha::log::set_level(aha::log::Level::warn);
  config.train.run_dir =
      (std::filesystem::temp_directory_path() / ("aha_train_loop_" + std::to_string(::getpid()))).string();

  aha::rl::TrainerParts parts;
  parts.model = model;
  parts.tokenizer = std::move(tokenizer);
  parts.prompts = std::make_unique<aha::rl::VectorPrompts>(train, eval);
  parts.rewards = {right};

  aha::reward::Registry registry;
  aha::reward::register_builtins(registry);
  bool finite = true;
  aha::rl::TrainerOptions options;
  options.console = false;
  options.on_step = [&](const aha::Json& m) {
    finite = finite && std::isfinite(m["loss"].get<double>());
    std::printf("step %lld: reward %.3f, loss %.4f, completion %.1f tokens\n",
                static_cast<long long>(m["step"].get<int64_t>()), m["reward"].get<double>(),
                m["loss"].get<double>(), m.value("completion_len", 0.0));
  };
  aha::rl::Trainer trainer(config, registry, options, std::move(parts));
  const aha::rl::RunSummary s = trainer.run();
  std::printf("held-out accuracy after %lld steps: %.1f%% (%s)\n", static_cast<long long>(s.steps),
              s.after ? 100 * s.after->accuracy : 0.0, s.run_dir.c_str());
  std::filesystem::remove_all(s.run_dir);
  return s.steps == steps && finite ? 0 : 1;
}
