#include "aha/kernels/axpy.h"

#include <ATen/ATen.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "aha/core/error.h"

using ::testing::HasSubstr;

namespace {

TEST(Axpy, CpuReferenceIsFusedMultiplyAdd) {
  at::manual_seed(0);
  at::Tensor x = at::randn({1000});
  at::Tensor y = at::randn({1000});
  at::Tensor expected = at::addcmul(y, x, at::full({1000}, 1.5f));  // y + 1.5 * x, rounded once per op
  at::Tensor y2 = y.clone();
  aha::kernels::axpy_(y2, 1.5f, x);
  EXPECT_TRUE(at::allclose(y2, expected, 1e-6, 1e-6));
  EXPECT_FALSE(at::equal(y2, y));
}

TEST(Axpy, BoundaryChecksNameTheProblem) {
  at::Tensor y = at::zeros({4});
  auto msg = [&](const at::Tensor& x, at::Tensor yy) {
    try {
      aha::kernels::axpy_(yy, 1.0f, x);
    } catch (const aha::Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_THAT(msg(at::zeros({4}, at::kDouble), y), HasSubstr("must be float32"));
  EXPECT_THAT(msg(at::zeros({5}), y), HasSubstr("x has shape [5] but y has shape [4]"));
  EXPECT_THAT(msg(at::zeros({4, 2}).t().select(0, 0), at::zeros({4})), HasSubstr("contiguous"));
}

TEST(Axpy, CudaKernelMatchesCpuReferenceBitForBit) {
  if (!at::hasCUDA()) GTEST_SKIP() << "no CUDA device: the sm_90a kernel is checked by scripts/gpu_check.sh";
  if (!aha::kernels::cuda_kernels_built()) GTEST_SKIP() << "built without CUDA kernels";
  at::manual_seed(1);
  for (int64_t n : {1, 255, 256, 1 << 20, (1 << 20) + 7}) {
    at::Tensor x = at::randn({n});
    at::Tensor y = at::randn({n});
    at::Tensor ref = y.clone();
    aha::kernels::axpy_(ref, -0.75f, x);
    at::Tensor gy = y.to(at::kCUDA);
    aha::kernels::axpy_(gy, -0.75f, x.to(at::kCUDA));
    EXPECT_TRUE(at::equal(gy.cpu(), ref)) << "n=" << n;
  }
}

}  // namespace
