// ProcessGroupNCCL, in builds with the CUDA toolkit (AHA_WITH_CUDA); the wheel's libtorch_cuda provides it.
#include "aha/core/error.h"
#include "backends.h"

#ifdef AHA_WITH_CUDA
#ifndef USE_C10D_NCCL
#define USE_C10D_NCCL
#endif
#include <c10/cuda/CUDAFunctions.h>
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

namespace aha::dist::detail {

#ifdef AHA_WITH_CUDA

bool have_nccl() {
  return true;
}

c10::intrusive_ptr<c10d::Backend> make_nccl(const c10::intrusive_ptr<c10d::Store>& store, int rank, int size,
                                            std::chrono::milliseconds timeout, int device_index) {
  c10::cuda::set_device(static_cast<c10::DeviceIndex>(device_index));
  auto opts = c10d::ProcessGroupNCCL::Options::create();
  opts->timeout = timeout;
  return c10::make_intrusive<c10d::ProcessGroupNCCL>(store, rank, size, opts);
}

#else

bool have_nccl() {
  return false;
}

c10::intrusive_ptr<c10d::Backend> make_nccl(const c10::intrusive_ptr<c10d::Store>&, int, int,
                                            std::chrono::milliseconds, int) {
  AHA_FAIL("this aha was built without CUDA (AHA_CUDA=OFF or no nvcc), so the nccl backend is not available");
}

#endif

}  // namespace aha::dist::detail
