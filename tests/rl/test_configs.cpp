// Every run config shipped in configs/ loads, validates, and builds its reward set and prompt template.
#include <gtest/gtest.h>

#include <filesystem>

#include "aha/core/config.h"
#include "aha/reward/reward_set.h"
#include "aha/rl/run_options.h"
#include "aha/text/template.h"

namespace aha {
namespace {

TEST(ShippedConfigs, LoadAndBuildTheirRewards) {
  reward::Registry registry;
  reward::register_builtins(registry);
  int count = 0;
  for (const auto& e : std::filesystem::directory_iterator(std::string(AHA_SOURCE_DIR) + "/configs")) {
    if (e.path().extension() != ".json") continue;
    SCOPED_TRACE(e.path().string());
    const Config c = load_config(e.path().string());
    EXPECT_NO_THROW(reward::RewardSet(rl::reward_set_options(c.reward), registry));
    EXPECT_NO_THROW(text::resolve_template(c.data.template_name));
    ++count;
  }
  EXPECT_GE(count, 4);  // default, base, countdown, gsm8k
  // The embedded default is configs/default.json.
  EXPECT_EQ(to_json(load_config("")).dump(),
            to_json(load_config(std::string(AHA_SOURCE_DIR) + "/configs/default.json")).dump());
}

}  // namespace
}  // namespace aha
