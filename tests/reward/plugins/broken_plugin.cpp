// Reward plugins that fail to load in each way the loader names (tests/reward/test_plugin.cpp), one per value
// of AHA_BROKEN:
//   1  exports no entry point (a shared library that is not an aha plugin)
//   2  built for another plugin ABI
//   3  its registration throws
//   4  needs a symbol nobody defines (dlopen fails)
//   5  registers a reward under a name the host already has ("format")
#include <aha/reward/plugin.h>

#include <memory>
#include <stdexcept>

namespace {

class Constant : public aha::reward::Reward {
 public:
  aha::reward::Score score(const aha::reward::Sample&) const override { return aha::reward::Score::of(1); }
};

}  // namespace

#if AHA_BROKEN == 1
extern "C" __attribute__((visibility("default"))) int some_other_function() {
  return 0;
}
#elif AHA_BROKEN == 2
extern "C" __attribute__((visibility("default"))) uint32_t aha_reward_plugin_abi() {
  return 999;
}
extern "C" __attribute__((visibility("default"))) int aha_reward_plugin_v999(void*) {
  return 0;
}
#elif AHA_BROKEN == 3
AHA_REWARD_PLUGIN(registry) {
  registry.add("constant", [](const aha::Json&) { return std::make_unique<Constant>(); });
  throw std::runtime_error("cannot find my model file");
}
#elif AHA_BROKEN == 4
extern "C" int aha_test_symbol_that_nobody_defines();
AHA_REWARD_PLUGIN(registry) {
  aha_test_symbol_that_nobody_defines();
  registry.add("constant", [](const aha::Json&) { return std::make_unique<Constant>(); });
}
#elif AHA_BROKEN == 5
AHA_REWARD_PLUGIN(registry) {
  registry.add("constant", [](const aha::Json&) { return std::make_unique<Constant>(); });
  registry.add("format", [](const aha::Json&) { return std::make_unique<Constant>(); });
}
#endif
