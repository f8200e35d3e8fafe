// What this build of aha is and what it can reach: versions, CUDA kernels, visible GPUs. Printed by `aha
// info`.
#pragma once

#include <string>
#include <vector>

namespace aha {

struct BuildInfo {
  std::string aha_version;
  std::string torch_version;
  bool cuda_kernels = false;      // the sm_90a kernels were compiled in
  bool cuda_available = false;    // a CUDA driver and at least one GPU are usable now
  std::vector<std::string> gpus;  // "NVIDIA H200 (sm_90, 139 GiB)"
};

BuildInfo build_info();

}  // namespace aha
