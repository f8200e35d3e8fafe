// The default run's recipe, whole: configs/base.json pretrains a base model on the r1_base corpus, then
// configs/default.json trains it with GRPO, and held-out greedy accuracy must rise. The same steps as the
// README's run (+32.0 points on the 2-core build machine), read from the shipped files; the bar is lower than
// that because the trajectory is chaotic in float rounding (thread count, CPU kernels): shorter variants of
// the recipe from other pretraining seeds or thread counts gained +19 to +45 points (CHANGELOG.md, issue 6).
//
// A separate test program (ctest: default_recipe) with a long timeout: it trains for a few minutes.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdio>
#include <filesystem>

#include "aha/core/config.h"
#include "aha/reward/builtin.h"
#include "aha/rl/pretrain.h"
#include "aha/rl/trainer.h"

namespace aha::rl {
namespace {

namespace fs = std::filesystem;

constexpr int kPretrainSteps = 800;  // configs/base.json: 800
constexpr int kRlSteps = 700;        // configs/default.json: 700
constexpr double kMinGain = 0.15;    // measured: see CHANGELOG.md (issue 6)

TEST(DefaultRecipe, ShortenedRunImprovesHeldOutAccuracy) {
  const fs::path dir = fs::temp_directory_path() / ("aha_default_recipe_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  const std::string configs = std::string(AHA_SOURCE_DIR) + "/configs/";

  Config base =
      load_config(configs + "base.json", {"train.steps=" + std::to_string(kPretrainSteps),
                                          "train.run_dir=" + (dir / "base").string(), "log.file=false"});
  const PretrainSummary p = pretrain(base, {.console = false});
  ASSERT_EQ(p.steps, kPretrainSteps);

  Config rl = load_config(configs + "default.json",
                          {"model.path=" + p.model_dir, "train.steps=" + std::to_string(kRlSteps),
                           "train.run_dir=" + (dir / "rl").string(), "train.eval_every=0", "log.file=false"});
  reward::Registry registry;
  reward::register_builtins(registry);
  Trainer trainer(rl, registry, {.console = false});
  const RunSummary s = trainer.run();
  ASSERT_TRUE(s.before.has_value());
  ASSERT_TRUE(s.after.has_value());
  std::printf("held-out greedy accuracy: %.1f%% before RL, %.1f%% after %d steps (%.0f s)\n",
              100 * s.before->accuracy, 100 * s.after->accuracy, kRlSteps, s.seconds);
  EXPECT_EQ(s.steps, kRlSteps);
  EXPECT_GE(s.after->format, 0.9) << "the think/answer layout is not learnt";
  EXPECT_GE(s.after->accuracy - s.before->accuracy, kMinGain);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace aha::rl
