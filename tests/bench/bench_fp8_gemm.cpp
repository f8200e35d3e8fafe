// bench_fp8_gemm: TFLOP/s of the block-scaled FP8 GEMM (1x128 activations x 128x128 weights, bf16 out) on a
// CUDA device: aha's wgmma + TMA kernel (kernels/fp8_wgmma.cu), aha's mma.sync kernel (kernels/fp8.cu),
// cuBLASLt's block-scaled FP8 and BF16 cuBLAS (torch::matmul), all measured in this run, printed with the
// ratios the FP8 issue sets targets for (aha, the wgmma kernel, >= 1.5x BF16 and >= 0.9x cuBLASLt at the
// large shapes).
//
//   bench_fp8_gemm [--iters 20] [--warmup 3]
//
// Shapes: 4096^3, 8192^3 and DeepSeek-V3's M4096 N7168 K16384, M128 N24576 K1536, M64 N2112 K7168.
// TFLOP/s = 2 m n k / (mean seconds per call over --iters back-to-back calls after --warmup). The operands
// are quantised once, outside the timing; the cuBLASLt figure includes the re-layout of the two scale tensors
// its API needs (two small copies per call). The wgmma result is checked against cuBLASLt's (max |diff| / max
// |c|). Without a CUDA device it says so and exits 0.
#include <ATen/ATen.h>
#include <torch/cuda.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <iomanip>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "aha/kernels/axpy.h"
#include "aha/kernels/fp8.h"

namespace {

namespace k = aha::kernels;

struct Shape {
  int64_t m, n, k;
};

// Mean seconds per call; -1 when the call throws (the message is printed).
double time_calls(const std::function<at::Tensor()>& call, int64_t iters, int64_t warmup, at::Tensor* out,
                  const std::string& name) {
  try {
    for (int64_t i = 0; i < warmup; ++i)
      *out = call();
    torch::cuda::synchronize();
    const auto t0 = std::chrono::steady_clock::now();
    for (int64_t i = 0; i < iters; ++i)
      *out = call();
    torch::cuda::synchronize();
    const auto t1 = std::chrono::steady_clock::now();
    return std::chrono::duration<double>(t1 - t0).count() / static_cast<double>(iters);
  } catch (const std::exception& e) {
    std::cout << "    " << name << " failed: " << e.what() << "\n";
    return -1;
  }
}

std::string fmt(double v, int precision = 1) {
  if (v < 0) return "n/a";
  std::ostringstream os;
  os << std::fixed << std::setprecision(precision) << v;
  return os.str();
}

}  // namespace

int main(int argc, char** argv) {
  int64_t iters = 20, warmup = 3;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if ((a == "--iters" || a == "--warmup") && i + 1 < argc) {
      (a == "--iters" ? iters : warmup) = std::atoll(argv[++i]);
    } else {
      std::cerr << "usage: bench_fp8_gemm [--iters N] [--warmup N]\n";
      return 2;
    }
  }
  if (!torch::cuda::is_available() || !k::cuda_kernels_built()) {
    std::cout << "bench_fp8_gemm: no CUDA device (or aha built without CUDA kernels): nothing measured\n";
    return 0;
  }
  const std::vector<Shape> shapes = {
      {4096, 4096, 4096}, {8192, 8192, 8192}, {4096, 7168, 16384}, {128, 24576, 1536}, {64, 2112, 7168}};
  std::cout << "bench_fp8_gemm: block-scaled FP8 GEMM, bf16 out, " << iters << " iters after " << warmup
            << " warmup\n";
  std::cout << std::left << std::setw(24) << "shape (m n k)" << std::right << std::setw(10) << "wgmma"
            << std::setw(10) << "mma.sync" << std::setw(10) << "cublasLt" << std::setw(10) << "bf16"
            << std::setw(12) << "aha/bf16" << std::setw(14) << "aha/cublasLt" << std::setw(12) << "max diff"
            << "   (aha: the wgmma kernel)"
            << "   (TFLOP/s)\n";
  at::manual_seed(0);
  for (const Shape& s : shapes) {
    const auto opts = at::TensorOptions().device(at::kCUDA);
    const at::Tensor a = at::randn({s.m, s.k}, opts.dtype(at::kBFloat16));
    const at::Tensor w = at::randn({s.n, s.k}, opts.dtype(at::kBFloat16));
    const k::Fp8Tensor qa = k::quantize_fp8_rows(a), qw = k::quantize_fp8_blocks(w);
    at::Tensor c_aha, c_sync, c_lt, c_bf16;
    const double t_aha =
        time_calls([&] { return k::fp8_gemm_nt(qa, qw, at::kBFloat16, k::Fp8Backend::kWgmma); }, iters,
                   warmup, &c_aha, "wgmma");
    const double t_sync =
        time_calls([&] { return k::fp8_gemm_nt(qa, qw, at::kBFloat16, k::Fp8Backend::kAha); }, iters, warmup,
                   &c_sync, "mma.sync");
    const double t_lt =
        time_calls([&] { return k::fp8_gemm_nt(qa, qw, at::kBFloat16, k::Fp8Backend::kCublasLt); }, iters,
                   warmup, &c_lt, "cublaslt");
    const double t_bf16 = time_calls([&] { return at::matmul(a, w.t()); }, iters, warmup, &c_bf16, "bf16");
    const double flop = 2.0 * static_cast<double>(s.m) * static_cast<double>(s.n) * static_cast<double>(s.k);
    auto tflops = [&](double t) { return t > 0 ? flop / t / 1e12 : -1.0; };
    double diff = -1;
    if (t_aha > 0 && t_lt > 0)
      diff = ((c_aha.to(at::kFloat) - c_lt.to(at::kFloat)).abs().max() / c_lt.to(at::kFloat).abs().max())
                 .item<double>();
    const std::string name = std::to_string(s.m) + " " + std::to_string(s.n) + " " + std::to_string(s.k);
    std::cout << std::left << std::setw(24) << name << std::right << std::setw(10) << fmt(tflops(t_aha))
              << std::setw(10) << fmt(tflops(t_sync)) << std::setw(10) << fmt(tflops(t_lt)) << std::setw(10)
              << fmt(tflops(t_bf16)) << std::setw(12) << fmt(t_aha > 0 && t_bf16 > 0 ? t_bf16 / t_aha : -1, 2)
              << std::setw(14) << fmt(t_aha > 0 && t_lt > 0 ? t_lt / t_aha : -1, 2) << std::setw(12)
              << (diff < 0 ? std::string("n/a") : fmt(diff * 1e3, 3) + "e-3") << "\n";
  }
  return 0;
}
