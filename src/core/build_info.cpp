#include "aha/core/build_info.h"

#include <ATen/Context.h>
#include <torch/version.h>

#include "aha/kernels/axpy.h"
#include "aha/version.h"

#ifdef AHA_WITH_CUDA
#include <ATen/cuda/CUDAContext.h>
#endif

namespace aha {

BuildInfo build_info() {
  BuildInfo info;
  info.aha_version = AHA_VERSION_STRING;
  info.torch_version = TORCH_VERSION;
  info.cuda_kernels = kernels::cuda_kernels_built();
  info.cuda_available = at::hasCUDA();
#ifdef AHA_WITH_CUDA
  if (info.cuda_available) {
    for (int i = 0; i < static_cast<int>(at::cuda::device_count()); ++i) {
      const auto* p = at::cuda::getDeviceProperties(i);
      info.gpus.push_back(std::string(p->name) + " (sm_" + std::to_string(p->major) +
                          std::to_string(p->minor) + ", " + std::to_string(p->totalGlobalMem >> 30) +
                          " GiB)");
    }
  }
#endif
  return info;
}

}  // namespace aha
