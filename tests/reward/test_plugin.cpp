// Reward plugins: the example plugin (examples/reward_plugin, built here against the headers only) loads and
// scores, and each way a plugin can fail gives its own error naming the file.
#include "aha/reward/plugin.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "../support/error_of.h"
#include "aha/core/config.h"
#include "aha/reward/reward_set.h"
#include "aha/version.h"

namespace {

using aha::test::error_of;
using ::testing::HasSubstr;

std::string broken(int kind) {
  return std::string(AHA_TEST_PLUGIN_DIR) + "/libbroken_plugin_" + std::to_string(kind) + ".so";
}

aha::reward::Registry builtins() {
  aha::reward::Registry r;
  aha::reward::register_builtins(r);
  return r;
}

TEST(RewardPlugin, TheExampleLoadsAndScores) {
  aha::reward::Registry r;
  EXPECT_EQ(aha::reward::load_plugin(AHA_TEST_PLUGIN, r), std::vector<std::string>{"reasoning_steps"});
  const auto reward = r.create("reasoning_steps", {{"target", 2}});
  aha::reward::Sample s;
  s.completion = "<think>\n17 + 25 = 42\n42 * 2 = 84\nso 84\n</think><answer>84</answer>";
  const auto score = reward->score(s);
  EXPECT_EQ(score.value, 1.0);
  EXPECT_EQ(score.extras, (std::vector<std::pair<std::string, double>>{{"steps", 2.0}}));
  s.completion = "<think>\n17 + 25 = 42\n</think>";
  EXPECT_EQ(reward->score(s).value, 0.5);
  // Its parameter checks run in the plugin and name the parameter as a built-in's do.
  EXPECT_THAT(error_of([&] {
                r.create("reasoning_steps", {{"target", 0}});
              }),
              HasSubstr("reward reasoning_steps: params.target: must be > 0"));
}

TEST(RewardPlugin, FromTheConfigNextToBuiltins) {
  const aha::Config config = aha::parse_config(R"({"reward": {"functions": [{"name": "format"},
      {"name": "reasoning_steps", "plugin": ")" + std::string(AHA_TEST_PLUGIN) +
                                                   R"(", "params": {"target": 1}, "weight": 2}]}})",
                                               "run.json");
  const aha::reward::RewardSet set(config.reward.functions, builtins());
  std::vector<aha::reward::Sample> samples(2);
  samples[0].completion = "<think>\n1 + 1 = 2\n</think><answer>2</answer>";
  samples[1].completion = "2";
  const auto scores = set.score(samples, 2);
  EXPECT_EQ(scores.total[0], 3.0);
  EXPECT_EQ(scores.total[1], 0.0);
}

aha::reward::RewardSet from_plugin(const std::string& name, const std::string& path) {
  return aha::reward::RewardSet(std::vector<aha::RewardSpec>{{name, 1.0, aha::Json::object(), path}},
                                builtins());
}

TEST(RewardPlugin, EachFailureHasItsOwnError) {
  EXPECT_THAT(error_of([] { from_plugin("x", "no/such/libplugin.so"); }),
              HasSubstr("reward.functions[0].plugin: reward plugin no/such/libplugin.so: file not found"));
  EXPECT_THAT(error_of([] { from_plugin("x", "libnot_here.so"); }), HasSubstr("file not found"));
  const std::string text_file = std::string(AHA_TEST_DATA) + "/reward/worker.py";
  EXPECT_THAT(error_of([&] { from_plugin("x", text_file); }), HasSubstr(": cannot load it: "));
  EXPECT_THAT(error_of([] { from_plugin("x", broken(1)); }),
              HasSubstr("not an aha reward plugin: it exports no aha_reward_plugin_abi"));
  EXPECT_THAT(
      error_of([] { from_plugin("x", broken(2)); }),
      HasSubstr("it was built for reward plugin ABI 999, this aha (" AHA_VERSION_STRING ") loads ABI 1"));
  EXPECT_THAT(error_of([] { from_plugin("constant", broken(3)); }),
              HasSubstr("its entry point failed (1): cannot find my model file"));
  EXPECT_THAT(error_of([] { from_plugin("constant", broken(4)); }),
              HasSubstr("undefined symbol: aha_test_symbol_that_nobody_defines"));
  EXPECT_THAT(error_of([] { from_plugin("reasoning_step", AHA_TEST_PLUGIN); }),
              HasSubstr("reward.functions[0]: plugin " AHA_TEST_PLUGIN
                        " registers no reward named \"reasoning_step\" (it registers: reasoning_steps)"));
  // Into a registry that has the name already: the plugin's Registry::add fails, the loader says so.
  aha::reward::Registry r = builtins();
  EXPECT_THAT(error_of([&] { aha::reward::load_plugin(broken(5), r); }),
              HasSubstr("a reward named \"format\" is already registered"));
  // A plugin's reward set has its own registry: the same plugin there is fine.
  EXPECT_EQ(from_plugin("constant", broken(5)).size(), 1u);
}

}  // namespace
