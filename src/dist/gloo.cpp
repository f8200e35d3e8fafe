// ProcessGroupGloo, when the gloo headers were found at configure time (AHA_WITH_GLOO).
#include <cstdlib>

#include "aha/core/error.h"
#include "backends.h"

#ifdef AHA_WITH_GLOO
#ifndef USE_C10D_GLOO
#define USE_C10D_GLOO
#endif
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#endif

namespace aha::dist::detail {

#ifdef AHA_WITH_GLOO

bool have_gloo() {
  return true;
}

c10::intrusive_ptr<c10d::Backend> make_gloo(const c10::intrusive_ptr<c10d::Store>& store, int rank, int size,
                                            std::chrono::milliseconds timeout, const std::string& hostname) {
  auto opts = c10d::ProcessGroupGloo::Options::create(timeout);
  if (!hostname.empty()) {
    opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname(hostname));
  } else if (const char* iface = std::getenv("GLOO_SOCKET_IFNAME"); iface && *iface) {
    opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(iface));
  } else {
    opts->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
  }
  return c10::make_intrusive<c10d::ProcessGroupGloo>(store, rank, size, opts);
}

#else

bool have_gloo() {
  return false;
}

c10::intrusive_ptr<c10d::Backend> make_gloo(const c10::intrusive_ptr<c10d::Store>&, int, int,
                                            std::chrono::milliseconds, const std::string&) {
  AHA_FAIL(
      "this aha was built without the gloo headers (Debian package libgloo-dev), so the gloo backend "
      "(CPU runs with several processes) is not available: install libgloo-dev and rebuild, or use "
      "dist.backend=nccl on GPUs");
}

#endif

}  // namespace aha::dist::detail
