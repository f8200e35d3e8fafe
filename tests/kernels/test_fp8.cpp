#include "aha/kernels/fp8.h"

#include <ATen/ATen.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>

#include "../support/error_of.h"
#include "aha/core/error.h"
#include "aha/kernels/axpy.h"
#include "aha/model/checkpoint.h"
#include "test_fp8_bound.h"

using ::testing::HasSubstr;
namespace k = aha::kernels;
using aha::test::error_of;

namespace {

// ---- plain torch computations of the quantisation rules (../shared/spec/deepseek-v3-model.md) -------------

// 2^ceil(log2 s), exactly: frexp gives s = m 2^e with m in [0.5, 1); s is a power of two iff m == 0.5.
at::Tensor ue8m0(const at::Tensor& s) {
  auto [m, e] = at::frexp(s);
  return at::ldexp(at::ones_like(s), e - (m == 0.5).to(at::kInt));
}

at::Tensor group_scale(const at::Tensor& amax, bool pow2) {
  const at::Tensor s = amax.clamp_min(1e-4) / 448.0;
  return pow2 ? ue8m0(s) : s;
}

// [rows, cols] -> (E4M3 bits [rows, cols], scales [rows, ceil(cols / 128)]).
std::pair<at::Tensor, at::Tensor> torch_quantize_rows(const at::Tensor& x, bool pow2) {
  const int64_t rows = x.size(0), cols = x.size(1), groups = (cols + 127) / 128;
  const at::Tensor padded = at::constant_pad_nd(x.to(at::kFloat), {0, groups * 128 - cols});
  const at::Tensor s = group_scale(padded.view({rows, groups, 128}).abs().amax(-1), pow2);
  const at::Tensor q =
      (padded.view({rows, groups, 128}) / s.unsqueeze(-1)).view({rows, -1}).narrow(1, 0, cols);
  return {q.to(at::kFloat8_e4m3fn).view(at::kByte), s};
}

std::pair<at::Tensor, at::Tensor> torch_quantize_blocks(const at::Tensor& w, bool pow2) {
  const int64_t rows = w.size(0), cols = w.size(1), br = (rows + 127) / 128, bc = (cols + 127) / 128;
  const at::Tensor padded = at::constant_pad_nd(w.to(at::kFloat), {0, bc * 128 - cols, 0, br * 128 - rows});
  const at::Tensor blocks = padded.view({br, 128, bc, 128});
  const at::Tensor s = group_scale(blocks.abs().amax({1, 3}), pow2);
  const at::Tensor q = (blocks / s.view({br, 1, bc, 1})).view({br * 128, bc * 128});
  return {q.narrow(0, 0, rows).narrow(1, 0, cols).to(at::kFloat8_e4m3fn).view(at::kByte), s};
}

at::Tensor bits(const k::Fp8Tensor& t) {
  return t.data.view(at::kByte);
}

// Values over many binades, one 128-group at a time scaled differently, one group all zero (the 1e-4 floor).
at::Tensor spread(int64_t rows, int64_t cols, uint64_t seed) {
  at::manual_seed(seed);
  at::Tensor x = at::randn({rows, cols}) * at::exp2(at::randint(-12, 8, {rows, 1}).to(at::kFloat));
  x = x * at::exp2(at::randint(-6, 6, {rows, cols}).to(at::kFloat));
  if (cols > 128) x.narrow(1, 0, 128).select(0, 0).zero_();
  return x;
}

// ---- CPU
// -----------------------------------------------------------------------------------------------------

TEST(Fp8Quant, E4m3RoundingMatchesTorchBitForBit) {
  // With 448 in the group and ue8m0 the scale is exactly 1, so the stored bits are e4m3(x) itself: every
  // representable magnitude, the midpoints between neighbours (ties to even), subnormals and random values.
  std::vector<float> v;
  for (int b = 0; b < 127; ++b) {
    const float lo = at::tensor({static_cast<uint8_t>(b)}, at::kByte)
                         .view(at::kFloat8_e4m3fn)
                         .to(at::kFloat)
                         .item<float>();
    const float hi = at::tensor({static_cast<uint8_t>(b + 1)}, at::kByte)
                         .view(at::kFloat8_e4m3fn)
                         .to(at::kFloat)
                         .item<float>();
    for (float f : {lo, 0.5f * (lo + hi), std::nextafter(0.5f * (lo + hi), 0.0f),
                    std::nextafter(0.5f * (lo + hi), 1e9f)})
      if (f <= 448.0f) {
        v.push_back(f);
        v.push_back(-f);
      }
  }
  at::manual_seed(3);
  const at::Tensor r = at::randn({4000}) * at::exp2(at::randint(-12, 9, {4000}).to(at::kFloat));
  for (int64_t i = 0; i < r.numel(); ++i)
    v.push_back(std::clamp(r[i].item<float>(), -448.0f, 448.0f));
  const int64_t rows = (static_cast<int64_t>(v.size()) + 126) / 127;
  v.resize(static_cast<size_t>(rows * 127), 0.0f);
  const at::Tensor x = at::cat({at::full({rows, 1}, 448.0f), at::tensor(v).view({rows, 127})}, 1);
  const k::Fp8Tensor q = k::quantize_fp8_rows(x, /*ue8m0=*/true);
  EXPECT_TRUE(at::equal(q.scale, at::ones({rows, 1})));
  EXPECT_TRUE(at::equal(bits(q), x.to(at::kFloat8_e4m3fn).view(at::kByte)));
}

TEST(Fp8Quant, RowsMatchPlainTorch) {
  for (bool pow2 : {false, true}) {
    for (auto dtype : {at::kFloat, at::kBFloat16}) {
      const at::Tensor x = spread(37, 300, 5).to(dtype);  // 300: two full groups and a partial one
      const k::Fp8Tensor q = k::quantize_fp8_rows(x, pow2);
      const auto [want_q, want_s] = torch_quantize_rows(x, pow2);
      EXPECT_EQ(q.block_rows, 1);
      EXPECT_TRUE(at::equal(q.scale, want_s)) << "ue8m0 " << pow2 << " " << dtype;
      EXPECT_TRUE(at::equal(bits(q), want_q)) << "ue8m0 " << pow2 << " " << dtype;
      EXPECT_FLOAT_EQ(q.scale[0][0].item<float>(),
                      pow2 ? std::exp2(std::ceil(std::log2(1e-4 / 448))) : 1e-4f / 448);
    }
  }
}

TEST(Fp8Quant, TransposedIsTheRowQuantisationOfTheTranspose) {
  const at::Tensor x = spread(300, 72, 6);  // 300 tokens: groups along tokens end with a partial one
  for (bool pow2 : {false, true}) {
    const k::Fp8Tensor t = k::quantize_fp8_rows_transposed(x, pow2);
    const auto [want_q, want_s] = torch_quantize_rows(x.t().contiguous(), pow2);
    ASSERT_EQ(t.data.sizes(), at::IntArrayRef({72, 300}));
    EXPECT_TRUE(at::equal(t.scale, want_s));
    EXPECT_TRUE(at::equal(bits(t), want_q));
  }
}

TEST(Fp8Quant, BlocksMatchPlainTorchAndTheCheckpointDequantisation) {
  const at::Tensor w = spread(200, 300, 7);
  for (bool pow2 : {false, true}) {
    const k::Fp8Tensor q = k::quantize_fp8_blocks(w, pow2);
    const auto [want_q, want_s] = torch_quantize_blocks(w, pow2);
    EXPECT_EQ(q.block_rows, 128);
    EXPECT_TRUE(at::equal(q.scale, want_s));
    EXPECT_TRUE(at::equal(bits(q), want_q));
    // The loader's dequantisation of shipped FP8 weights reads the same format.
    EXPECT_TRUE(at::equal(k::dequantize_fp8(q), aha::model::dequantize_fp8_blocks(q.data, q.scale)));
    // Blocks of w^T are the transposed blocks of w.
    EXPECT_TRUE(at::equal(k::dequantize_fp8(k::transpose_fp8_blocks(q)), k::dequantize_fp8(q).t()));
  }
}

TEST(Fp8Gemm, ErrorAgainstFp32MatmulIsWithinTheE4m3Bound) {
  const at::Tensor a = spread(70, 300, 8), w = spread(200, 300, 9);
  const at::Tensor exact = at::mm(a.to(at::kDouble), w.to(at::kDouble).t()).to(at::kFloat);
  for (bool pow2 : {false, true}) {
    for (bool weight_blocks : {true, false}) {
      const k::Fp8Tensor qa = k::quantize_fp8_rows(a, pow2);
      const k::Fp8Tensor qw = weight_blocks ? k::quantize_fp8_blocks(w, pow2) : k::quantize_fp8_rows(w, pow2);
      const at::Tensor c = k::fp8_gemm_nt(qa, qw, at::kFloat);
      const at::Tensor err = (c - exact).abs(), bound = aha::test::fp8_gemm_bound(a, qa, w, qw);
      EXPECT_TRUE((err <= bound).all().item<bool>())
          << "ue8m0 " << pow2 << " blocks " << weight_blocks << ": worst err/bound "
          << (err / bound).max().item<float>();
      // The bound is not vacuous: the error is real and of E4M3's order, not fp32's.
      const double rel = (err.norm() / exact.norm()).item<double>();
      EXPECT_GT(rel, 1e-3);
      EXPECT_LT(rel, 0.06);
    }
  }
}

TEST(Fp8Gemm, CpuPathEqualsTheLoopReferenceAndCastsToBf16) {
  const at::Tensor a = spread(33, 260, 10), w = spread(140, 260, 11);
  const k::Fp8Tensor qa = k::quantize_fp8_rows(a), qw = k::quantize_fp8_blocks(w);
  const at::Tensor c = k::fp8_gemm_nt(qa, qw, at::kFloat), loops = k::fp8_gemm_nt_loops(qa, qw);
  EXPECT_TRUE(at::allclose(c, loops, 1e-5, 1e-6 * loops.abs().max().item<double>()));
  EXPECT_TRUE(at::equal(k::fp8_gemm_nt(qa, qw, at::kBFloat16), c.to(at::kBFloat16)));
}

TEST(Fp8Gemm, GroupedEqualsOneGemmPerExpert) {
  // Experts 2 (128 rows), 0 (100 rows + 28 padding), 1 (5 rows + 123 padding).
  const int64_t experts = 3, n = 136, kk = 256;
  const at::Tensor a = spread(384, kk, 12);
  std::vector<int32_t> groups(384, -1);
  std::fill(groups.begin(), groups.begin() + 128, 2);
  std::fill(groups.begin() + 128, groups.begin() + 228, 0);
  std::fill(groups.begin() + 256, groups.begin() + 261, 1);
  const at::Tensor m_group = at::tensor(groups, at::kInt);
  std::vector<k::Fp8Tensor> w;
  for (int64_t e = 0; e < experts; ++e)
    w.push_back(k::quantize_fp8_blocks(spread(n, kk, 20 + e)));
  const k::Fp8Tensor stacked{at::stack({w[0].data, w[1].data, w[2].data}),
                             at::stack({w[0].scale, w[1].scale, w[2].scale}), 128};
  const k::Fp8Tensor qa = k::quantize_fp8_rows(a);
  const at::Tensor c = k::fp8_grouped_gemm_nt(qa, stacked, m_group, at::kFloat);
  auto rows = [&](int64_t begin, int64_t count) {
    return k::Fp8Tensor{qa.data.narrow(0, begin, count), qa.scale.narrow(0, begin, count), 1};
  };
  EXPECT_TRUE(at::equal(c.narrow(0, 0, 128), k::fp8_gemm_nt(rows(0, 128), w[2], at::kFloat)));
  EXPECT_TRUE(at::equal(c.narrow(0, 128, 100), k::fp8_gemm_nt(rows(128, 100), w[0], at::kFloat)));
  EXPECT_TRUE(at::equal(c.narrow(0, 256, 5), k::fp8_gemm_nt(rows(256, 5), w[1], at::kFloat)));
  EXPECT_EQ(c.narrow(0, 228, 28).abs().sum().item<float>(), 0.0f);
  EXPECT_EQ(c.narrow(0, 261, 123).abs().sum().item<float>(), 0.0f);
  groups[130] = 1;  // expert 1 would then start at row 130
  EXPECT_THAT(
      error_of([&] { k::fp8_grouped_gemm_nt(qa, stacked, at::tensor(groups, at::kInt), at::kFloat); }),
      HasSubstr("starts at row 130, not a multiple of 128"));
}

TEST(Fp8Gemm, BoundaryChecksNameTheProblem) {
  const k::Fp8Tensor qa = k::quantize_fp8_rows(at::randn({4, 256}));
  const k::Fp8Tensor qw = k::quantize_fp8_blocks(at::randn({8, 256}));
  EXPECT_THAT(error_of([&] {
                k::quantize_fp8_rows(at::zeros({4, 4}, at::kDouble));
              }),
              HasSubstr("quantize_fp8_rows: expects float32 or bfloat16 input, got Double"));
  EXPECT_THAT(error_of([&] { k::quantize_fp8_blocks(at::zeros({4})); }),
              HasSubstr("expects a 2-D [rows, cols] tensor, got shape [4]"));
  EXPECT_THAT(error_of([&] {
                k::fp8_gemm_nt(qa, {qw.data, qw.scale, 1}, at::kFloat);
              }),
              HasSubstr("b.data [8, 256] with 1x128 groups needs b.scale of shape [8, 2], got [1, 2]"));
  EXPECT_THAT(error_of([&] {
                k::fp8_gemm_nt(qa, {qw.data.to(at::kFloat), qw.scale, 128}, at::kFloat);
              }),
              HasSubstr("b.data must be float8_e4m3fn, got Float"));
  EXPECT_THAT(error_of([&] { k::fp8_gemm_nt(qw, qw, at::kFloat); }), HasSubstr("a must have 1x128 groups"));
  const k::Fp8Tensor short_k = k::quantize_fp8_blocks(at::randn({8, 128}));
  EXPECT_THAT(error_of([&] { k::fp8_gemm_nt(qa, short_k, at::kFloat); }),
              HasSubstr("a is [4, 256] and b is [8, 128]: both must be K-contiguous"));
  EXPECT_THAT(error_of([&] { k::fp8_gemm_nt(qa, qw, at::kHalf); }),
              HasSubstr("out_dtype must be float32 or bfloat16, got Half"));
  EXPECT_THAT(error_of([&] { k::fp8_gemm_nt(qa, qw, at::kFloat, k::Fp8Backend::kCublasLt); }),
              HasSubstr("need CUDA tensors"));
  EXPECT_THAT(error_of([&] { k::parse_fp8_backend("cutlass"); }),
              HasSubstr("unknown FP8 GEMM backend \"cutlass\""));
  EXPECT_EQ(k::parse_fp8_backend("wgmma"), k::Fp8Backend::kWgmma);
  EXPECT_EQ(k::parse_fp8_backend("aha"), k::Fp8Backend::kAha);
}

// ---- CUDA (scripts/gpu_check.sh)
// -------------------------------------------------------------------------------

bool skip_without_cuda() {
  return !at::hasCUDA() || !k::cuda_kernels_built();
}
#define AHA_SKIP_WITHOUT_CUDA()                                                                            \
  if (skip_without_cuda())                                                                                 \
  GTEST_SKIP() << "no CUDA device (or built without CUDA kernels): the sm_90a FP8 kernels are checked by " \
                  "scripts/gpu_check.sh"

TEST(Fp8Cuda, QuantisationEqualsTheCpuReferenceBitForBit) {
  AHA_SKIP_WITHOUT_CUDA();
  for (auto [rows, cols] :
       {std::pair<int64_t, int64_t>{1, 128}, {37, 300}, {300, 72}, {1000, 7168}, {129, 1}}) {
    for (bool pow2 : {false, true}) {
      for (auto dtype : {at::kFloat, at::kBFloat16}) {
        const at::Tensor x = spread(rows, cols, 30).to(dtype);
        const at::Tensor gx = x.to(at::kCUDA);
        const std::string what = "shape " + std::to_string(rows) + "x" + std::to_string(cols) + " ue8m0 " +
                                 std::to_string(pow2) + " " + c10::toString(dtype);
        auto same = [&](const k::Fp8Tensor& cpu, const k::Fp8Tensor& gpu) {
          EXPECT_TRUE(at::equal(bits(cpu), bits(gpu).cpu())) << what;
          EXPECT_TRUE(at::equal(cpu.scale, gpu.scale.cpu())) << what;
        };
        same(k::quantize_fp8_rows(x, pow2), k::quantize_fp8_rows(gx, pow2));
        same(k::quantize_fp8_rows_transposed(x, pow2), k::quantize_fp8_rows_transposed(gx, pow2));
        same(k::quantize_fp8_blocks(x, pow2), k::quantize_fp8_blocks(gx, pow2));
      }
    }
  }
}

k::Fp8Tensor to_cuda(const k::Fp8Tensor& t) {
  return {t.data.to(at::kCUDA), t.scale.to(at::kCUDA), t.block_rows};
}

// |c - ref| <= tol * max|ref|, on the same quantised inputs.
void expect_close(const at::Tensor& c, const at::Tensor& ref, double tol, const std::string& what) {
  const double scale = ref.abs().max().item<double>();
  const double worst = (c.cpu().to(at::kFloat) - ref).abs().max().item<double>();
  EXPECT_LE(worst, tol * scale) << what << ": worst abs error " << worst << " against max |ref| " << scale;
}

TEST(Fp8Cuda, GemmEqualsTheReferenceOnTheSameQuantisedInputs) {
  AHA_SKIP_WITHOUT_CUDA();
  struct Shape {
    int64_t m, n, kk;
  };
  for (Shape s : {Shape{1, 128, 128}, Shape{64, 2112, 7168}, Shape{200, 200, 384}, Shape{129, 256, 272},
                  Shape{37, 300, 200}, Shape{512, 1024, 1024}}) {
    const k::Fp8Tensor qa = k::quantize_fp8_rows(spread(s.m, s.kk, 40));
    for (bool blocks : {true, false}) {
      const at::Tensor w = spread(s.n, s.kk, 41);
      const k::Fp8Tensor qw = blocks ? k::quantize_fp8_blocks(w) : k::quantize_fp8_rows(w);
      const at::Tensor ref = k::fp8_gemm_nt_loops(qa, qw);
      const std::string what = "m " + std::to_string(s.m) + " n " + std::to_string(s.n) + " k " +
                               std::to_string(s.kk) + (blocks ? " 128x128" : " 1x128");
      expect_close(k::fp8_gemm_nt(to_cuda(qa), to_cuda(qw), at::kFloat), ref, 1e-3, what + " fp32");
      expect_close(k::fp8_gemm_nt(to_cuda(qa), to_cuda(qw), at::kBFloat16), ref, 8e-3, what + " bf16");
      // Each aha kernel by name: the mma.sync one for every operand, the wgmma one for 128x128 blocks.
      expect_close(k::fp8_gemm_nt(to_cuda(qa), to_cuda(qw), at::kFloat, k::Fp8Backend::kAha), ref, 1e-3,
                   what + " fp32 mma.sync");
      expect_close(k::fp8_gemm_nt(to_cuda(qa), to_cuda(qw), at::kBFloat16, k::Fp8Backend::kAha), ref, 8e-3,
                   what + " bf16 mma.sync");
      if (blocks) {
        expect_close(k::fp8_gemm_nt(to_cuda(qa), to_cuda(qw), at::kFloat, k::Fp8Backend::kWgmma), ref, 1e-3,
                     what + " fp32 wgmma");
        expect_close(k::fp8_gemm_nt(to_cuda(qa), to_cuda(qw), at::kBFloat16, k::Fp8Backend::kWgmma), ref,
                     8e-3, what + " bf16 wgmma");
      }
      if (blocks && s.kk % 128 == 0 && s.n % 16 == 0)
        expect_close(k::fp8_gemm_nt(to_cuda(qa), to_cuda(qw), at::kBFloat16, k::Fp8Backend::kCublasLt), ref,
                     8e-3, what + " cublaslt");
    }
  }
}

TEST(Fp8Cuda, GroupedGemmEqualsPerExpertGemms) {
  AHA_SKIP_WITHOUT_CUDA();
  const int64_t experts = 4, n = 512, kk = 1024;
  std::vector<int32_t> groups;
  std::vector<int64_t> counts = {256, 100, 0, 300};
  for (int64_t e = 0; e < experts; ++e) {
    const int64_t padded = (counts[e] + 127) / 128 * 128;
    for (int64_t i = 0; i < padded; ++i)
      groups.push_back(i < counts[e] ? static_cast<int32_t>(e) : -1);
  }
  const int64_t m = static_cast<int64_t>(groups.size());
  const k::Fp8Tensor qa = k::quantize_fp8_rows(spread(m, kk, 50));
  std::vector<at::Tensor> data, scale;
  for (int64_t e = 0; e < experts; ++e) {
    const k::Fp8Tensor w = k::quantize_fp8_blocks(spread(n, kk, 51 + e));
    data.push_back(w.data);
    scale.push_back(w.scale);
  }
  const k::Fp8Tensor stacked{at::stack(data), at::stack(scale), 128};
  const at::Tensor m_group = at::tensor(groups, at::kInt);
  const at::Tensor want = k::fp8_grouped_gemm_nt(qa, stacked, m_group, at::kFloat);
  const at::Tensor got =
      k::fp8_grouped_gemm_nt(to_cuda(qa), to_cuda(stacked), m_group.to(at::kCUDA), at::kFloat);
  expect_close(got, want, 1e-3, "grouped");
  EXPECT_EQ(got.cpu().masked_select((m_group < 0).unsqueeze(1)).abs().sum().item<float>(), 0.0f);
  for (auto backend : {k::Fp8Backend::kAha, k::Fp8Backend::kWgmma}) {
    const char* name = backend == k::Fp8Backend::kAha ? "grouped mma.sync" : "grouped wgmma";
    for (auto dtype : {at::kFloat, at::kBFloat16}) {
      const at::Tensor c =
          k::fp8_grouped_gemm_nt(to_cuda(qa), to_cuda(stacked), m_group.to(at::kCUDA), dtype, backend);
      expect_close(c, want, dtype == at::kFloat ? 1e-3 : 8e-3,
                   std::string(name) + " " + c10::toString(dtype));
      EXPECT_EQ(c.cpu().to(at::kFloat).masked_select((m_group < 0).unsqueeze(1)).abs().sum().item<float>(),
                0.0f)
          << name;
    }
  }
}

}  // namespace
