// Reward plugins: shared libraries that add rewards at run time, so that users of the `aha` program add
// rewards without rebuilding it. A run config names the library next to the reward:
//
//   {"name": "reasoning_steps", "plugin": "build/libmyreward.so", "params": {"target": 3}}
//
// Writing one (examples/reward_plugin/ is a complete one):
//
//   #include <aha/reward/plugin.h>
//   class MyReward : public aha::reward::Reward { ... };
//   AHA_REWARD_PLUGIN(registry) {
//     registry.add("my_reward", [](const aha::Json& p) { return std::make_unique<MyReward>(p); }, "what it
//     does");
//   }
//
// and building it as a shared library with the compiler and C++ standard library aha was built with, against
// this aha's headers: with find_package(aha) and aha::aha, or with the headers alone (include/ and
// nlohmann_json), since the aha functions it calls resolve to the libaha.so of the program that loads it.
//
// The C entry points. AHA_REWARD_PLUGIN defines both, extern "C" with default visibility; a plugin may also
// write them by hand:
//
//   uint32_t aha_reward_plugin_abi(void);
//       the plugin ABI the library was built for (AHA_REWARD_PLUGIN_ABI of the headers it saw);
//   int aha_reward_plugin_v1(aha_reward_plugin_host* host);
//       registers the plugin's rewards into *host->registry; returns 0, or non-zero with a message in
//       host->error. It must not let an exception escape (the macro catches them and reports their text).
//
// The ABI version changes (and with it the entry point's name) whenever a change to the reward headers
// would break a plugin built against the older ones. Loading checks, in this order, each with its own error
// naming the file: the file exists; dlopen succeeds (its message names e.g. an undefined symbol); the library
// exports aha_reward_plugin_abi (else it is no aha reward plugin); the ABI equals this aha's; the entry point
// exists and succeeds. A reward set then checks that the plugin registered the reward the config names.
//
// A plugin stays loaded until the process exits: rewards and factories it made point into its code.
#pragma once

#include <cstdint>
#include <cstring>
#include <exception>
#include <string>
#include <vector>

#include "aha/reward/reward.h"

#define AHA_REWARD_PLUGIN_ABI 1u

extern "C" {
// What the loading aha hands to the entry point.
struct aha_reward_plugin_host {
  uint32_t abi;                     // AHA_REWARD_PLUGIN_ABI of the loading aha
  const char* aha_version;          // e.g. "0.1.0"
  aha::reward::Registry* registry;  // where the plugin adds its rewards
  char error[1024];                 // the plugin's message when its entry point returns non-zero
};
}

namespace aha::reward {

// Loads the plugin at `path` and lets it register its rewards into `registry`; returns the names it added.
// A path without '/' is taken relative to the working directory (the system's library path is not
// searched). Throws aha::Error naming the file and what went wrong.
std::vector<std::string> load_plugin(const std::string& path, Registry& registry);

namespace detail {

// The body of the entry point AHA_REWARD_PLUGIN defines: checks the host's ABI, runs the registration, and
// turns an exception into an error message.
inline int run_plugin(aha_reward_plugin_host* host, void (*register_rewards)(Registry&)) noexcept {
  if (host == nullptr || host->registry == nullptr) return 2;
  auto fail = [host](const char* message) {
    std::strncpy(host->error, message, sizeof host->error - 1);
    host->error[sizeof host->error - 1] = '\0';
  };
  if (host->abi != AHA_REWARD_PLUGIN_ABI) {
    fail("the host speaks another reward plugin ABI");
    return 2;
  }
  try {
    register_rewards(*host->registry);
    return 0;
  } catch (const std::exception& e) {
    fail(e.what());
  } catch (...) {
    fail("the plugin's registration threw an exception that is not a std::exception");
  }
  return 1;
}

}  // namespace detail
}  // namespace aha::reward

// Defines the plugin's entry points around a registration function; the braces that follow are its body,
// with `registry_name` bound to the Registry to fill.
#define AHA_REWARD_PLUGIN(registry_name)                                                                  \
  static void aha_reward_plugin_register_(::aha::reward::Registry& registry_name);                        \
  extern "C" __attribute__((visibility("default"))) uint32_t aha_reward_plugin_abi() {                    \
    return AHA_REWARD_PLUGIN_ABI;                                                                         \
  }                                                                                                       \
  extern "C" __attribute__((visibility("default"))) int aha_reward_plugin_v1(aha_reward_plugin_host* h) { \
    return ::aha::reward::detail::run_plugin(h, aha_reward_plugin_register_);                             \
  }                                                                                                       \
  static void aha_reward_plugin_register_(::aha::reward::Registry& registry_name)
