// Loading reward plugins (plugin.h): dlopen, the ABI handshake, and errors that say which step failed.
#include "aha/reward/plugin.h"

#include <dlfcn.h>

#include <cstring>
#include <filesystem>
#include <set>

#include "aha/core/error.h"
#include "aha/version.h"

namespace aha::reward {

std::vector<std::string> load_plugin(const std::string& path, Registry& registry) {
  namespace fs = std::filesystem;
  const std::string where = "reward plugin " + path;
  AHA_CHECK(!path.empty(), "a reward plugin needs a path");
  // dlopen searches the library path for a bare name; a config means a file.
  const std::string file = path.find('/') == std::string::npos ? "./" + path : path;
  std::error_code ec;
  if (!fs::exists(file, ec))
    throw Error("file not found (relative paths are taken from the working directory " +
                    fs::current_path(ec).string() + ")",
                where);
  dlerror();
  void* handle = dlopen(file.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    const char* why = dlerror();
    throw Error(std::string("cannot load it: ") + (why ? why : "dlopen failed"), where);
  }
  // The library is never closed, also after an error: a plugin that failed half-way may have left factories
  // in `registry` that point into its code.
  using AbiFn = uint32_t (*)();
  using EntryFn = int (*)(aha_reward_plugin_host*);
  auto abi = reinterpret_cast<AbiFn>(dlsym(handle, "aha_reward_plugin_abi"));
  auto entry = reinterpret_cast<EntryFn>(dlsym(handle, "aha_reward_plugin_v1"));
  if (abi == nullptr)
    throw Error(
        "not an aha reward plugin: it exports no aha_reward_plugin_abi (define its entry points with "
        "AHA_REWARD_PLUGIN from aha/reward/plugin.h, or by hand as extern \"C\")",
        where);
  const uint32_t built_for = abi();
  if (built_for != AHA_REWARD_PLUGIN_ABI)
    throw Error("it was built for reward plugin ABI " + std::to_string(built_for) + ", this aha (" +
                    AHA_VERSION_STRING + ") loads ABI " + std::to_string(AHA_REWARD_PLUGIN_ABI) +
                    ": rebuild it against this aha's headers",
                where);
  if (entry == nullptr)
    throw Error("it exports aha_reward_plugin_abi but not the entry point aha_reward_plugin_v1", where);
  std::set<std::string> before;
  for (const auto& [name, _] : registry.list())
    before.insert(name);
  aha_reward_plugin_host host{};
  host.abi = AHA_REWARD_PLUGIN_ABI;
  host.aha_version = AHA_VERSION_STRING;
  host.registry = &registry;
  const int rc = entry(&host);
  if (rc != 0)
    throw Error("its entry point failed (" + std::to_string(rc) + "): " +
                    (host.error[0] ? std::string(host.error, strnlen(host.error, sizeof host.error))
                                   : std::string("no message")),
                where);
  std::vector<std::string> added;
  for (const auto& [name, _] : registry.list())
    if (!before.count(name)) added.push_back(name);
  return added;
}

}  // namespace aha::reward
