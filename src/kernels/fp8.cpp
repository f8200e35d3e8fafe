#include "aha/kernels/fp8.h"

#include <ATen/ATen.h>

#include <mutex>
#include <string>
#include <vector>

#include "aha/core/error.h"
#include "aha/core/log.h"
#include "fp8.cuh"

#ifdef AHA_WITH_CUDA
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime_api.h>
#endif

namespace aha::kernels {
namespace {

int64_t ceil_div(int64_t a, int64_t b) {
  return (a + b - 1) / b;
}

uint8_t* bytes(const at::Tensor& t) {
  return reinterpret_cast<uint8_t*>(t.data_ptr());
}

// The checks every quantiser input passes.
void check_input(const at::Tensor& x, const char* op) {
  AHA_CHECK(x.defined(), op, ": the input is an undefined tensor");
  AHA_CHECK(x.dim() == 2, op, ": expects a 2-D [rows, cols] tensor, got shape ", x.sizes());
  AHA_CHECK(x.scalar_type() == at::kFloat || x.scalar_type() == at::kBFloat16, op,
            ": expects float32 or bfloat16 input, got ", x.scalar_type());
}

// An operand of a GEMM: 2-D (or 3-D for grouped weights) E4M3 data with scales of the shape its blocks need.
void check_operand(const Fp8Tensor& t, const char* op, const char* name, int64_t dims) {
  AHA_CHECK(t.data.defined() && t.scale.defined(), op, ": ", name, ".data and ", name,
            ".scale must be defined tensors");
  AHA_CHECK(t.data.dim() == dims, op, ": ", name, ".data must be ", dims, "-D, got shape ", t.data.sizes());
  AHA_CHECK(t.data.scalar_type() == at::kFloat8_e4m3fn, op, ": ", name, ".data must be float8_e4m3fn, got ",
            t.data.scalar_type());
  AHA_CHECK(t.scale.scalar_type() == at::kFloat, op, ": ", name, ".scale must be float32, got ",
            t.scale.scalar_type());
  AHA_CHECK(t.block_rows == 1 || t.block_rows == kFp8Group, op, ": ", name,
            ".block_rows must be 1 (1x128 groups) or 128 (128x128 blocks), got ", t.block_rows);
  AHA_CHECK(t.data.device() == t.scale.device(), op, ": ", name, ".data is on ", t.data.device(), " but ",
            name, ".scale on ", t.scale.device());
  AHA_CHECK(t.data.is_contiguous() && t.scale.is_contiguous(), op, ": ", name, ".data and ", name,
            ".scale must be contiguous");
  const int64_t rows = t.data.size(dims - 2), cols = t.data.size(dims - 1);
  std::vector<int64_t> want = {ceil_div(rows, t.block_rows), ceil_div(cols, kFp8Group)};
  if (dims == 3) want.insert(want.begin(), t.data.size(0));
  AHA_CHECK(t.scale.sizes() == at::IntArrayRef(want), op, ": ", name, ".data ", t.data.sizes(), " with ",
            t.block_rows == 1 ? "1x128 groups" : "128x128 blocks", " needs ", name, ".scale of shape ",
            at::IntArrayRef(want), ", got ", t.scale.sizes());
}

void check_out_dtype(at::ScalarType out_dtype, const char* op) {
  AHA_CHECK(out_dtype == at::kFloat || out_dtype == at::kBFloat16, op,
            ": out_dtype must be float32 or bfloat16, got ", out_dtype);
}

#ifdef AHA_WITH_CUDA
void check_cuda(int err, const char* op) {
  AHA_CHECK(err == 0, op, ": kernel launch failed: ", cudaGetErrorString(static_cast<cudaError_t>(err)));
}

void* current_stream() {
  return c10::cuda::getCurrentCUDAStream().stream();
}

void check_aligned(const at::Tensor& t, const char* op, const char* name) {
  AHA_CHECK(reinterpret_cast<uintptr_t>(t.data_ptr()) % 16 == 0, op, ": ", name,
            " must start at a 16-byte aligned address for the device kernels");
}
#endif

enum class QuantKind { kRows, kRowsTransposed, kBlocks };

Fp8Tensor quantize(const at::Tensor& x_in, bool ue8m0, QuantKind kind, const char* op) {
  check_input(x_in, op);
  const at::Tensor x = x_in.contiguous();
  const int64_t rows = x.size(0), cols = x.size(1);
  const auto opts = x.options();
  Fp8Tensor out;
  if (kind == QuantKind::kRowsTransposed) {
    out.data = at::empty({cols, rows}, opts.dtype(at::kFloat8_e4m3fn));
    out.scale = at::empty({cols, ceil_div(rows, kFp8Group)}, opts.dtype(at::kFloat));
  } else {
    out.data = at::empty({rows, cols}, opts.dtype(at::kFloat8_e4m3fn));
    out.block_rows = kind == QuantKind::kBlocks ? kFp8Group : 1;
    out.scale =
        at::empty({ceil_div(rows, out.block_rows), ceil_div(cols, kFp8Group)}, opts.dtype(at::kFloat));
  }
  if (x.numel() == 0) return out;
  if (x.device().is_cpu()) {
    const at::Tensor x32 = x.to(at::kFloat).contiguous();
    const float* px = x32.data_ptr<float>();
    float* ps = out.scale.data_ptr<float>();
    switch (kind) {
      case QuantKind::kRows:
        fp8_quantize_rows_ref(px, rows, cols, ue8m0, bytes(out.data), ps);
        break;
      case QuantKind::kRowsTransposed:
        fp8_quantize_rows_transposed_ref(px, rows, cols, ue8m0, bytes(out.data), ps);
        break;
      case QuantKind::kBlocks:
        fp8_quantize_blocks_ref(px, rows, cols, ue8m0, bytes(out.data), ps);
        break;
    }
    return out;
  }
#ifdef AHA_WITH_CUDA
  AHA_CHECK(x.device().is_cuda(), op, ": unsupported device ", x.device());
  c10::cuda::CUDAGuard guard(x.device());
  const int bf16 = x.scalar_type() == at::kBFloat16;
  float* ps = out.scale.data_ptr<float>();
  int err = 0;
  switch (kind) {
    case QuantKind::kRows:
      err = sm90_fp8_quantize_rows(x.data_ptr(), bf16, rows, cols, ue8m0, bytes(out.data), ps,
                                   current_stream());
      break;
    case QuantKind::kRowsTransposed:
      err = sm90_fp8_quantize_rows_transposed(x.data_ptr(), bf16, rows, cols, ue8m0, bytes(out.data), ps,
                                              current_stream());
      break;
    case QuantKind::kBlocks:
      err = sm90_fp8_quantize_blocks(x.data_ptr(), bf16, rows, cols, ue8m0, bytes(out.data), ps,
                                     current_stream());
      break;
  }
  check_cuda(err, op);
  return out;
#else
  AHA_FAIL(op, ": tensor on ", x.device(),
           " but this build of aha has no CUDA kernels (AHA_CUDA=OFF or no nvcc)");
#endif
}

// Scales broadcast to one per row of a [rows, cols] operand for K block kb.
at::Tensor row_scales(const Fp8Tensor& t, int64_t kb, int64_t rows) {
  const at::Tensor s = t.scale.select(1, kb);
  return t.block_rows == 1 ? s : s.repeat_interleave(t.block_rows).narrow(0, 0, rows);
}

// The CPU path: one fp32 matmul of the exact E4M3 values per 128-wide K block, promoted with the scales.
at::Tensor gemm_cpu(const Fp8Tensor& a, const Fp8Tensor& b) {
  const int64_t m = a.data.size(0), k = a.data.size(1), n = b.data.size(0);
  const at::Tensor a32 = a.data.to(at::kFloat), b32 = b.data.to(at::kFloat);
  at::Tensor acc = at::zeros({m, n}, a.data.options().dtype(at::kFloat));
  for (int64_t kb = 0; kb < ceil_div(k, kFp8Group); ++kb) {
    const int64_t k0 = kb * kFp8Group, len = std::min<int64_t>(kFp8Group, k - k0);
    const at::Tensor partial = at::mm(a32.narrow(1, k0, len), b32.narrow(1, k0, len).t());
    acc.add_(partial * row_scales(a, kb, m).unsqueeze(1) * row_scales(b, kb, n).unsqueeze(0));
  }
  return acc;
}

#ifdef AHA_WITH_CUDA
// The kernel reads 16-byte rows: K is padded with zero bytes (+0 in E4M3) to a multiple of 16. The padding
// never crosses a multiple of 128, so the scales stay as they are.
Fp8Tensor pad_k_to_16(const Fp8Tensor& t) {
  const int64_t k = t.data.size(-1);
  if (k % 16 == 0) return t;
  const at::Tensor padded = at::constant_pad_nd(t.data.view(at::kByte), {0, 16 - k % 16});
  return {padded.view(at::kFloat8_e4m3fn), t.scale, t.block_rows};
}

at::Tensor gemm_cuda(const Fp8Tensor& a_in, const Fp8Tensor& b_in, const at::Tensor& m_group,
                     at::ScalarType out_dtype, Fp8Backend backend, const char* op);

int a_device_index() {
  return static_cast<int>(c10::cuda::current_device());
}

// The first time `auto` would pick the wgmma kernel on a device, it is checked against the CPU reference on a
// plain and a grouped problem with ragged edges (m not a multiple of the tile, k not a multiple of 128). A
// kernel that fails or disagrees (relative max error over 1e-3) is not used on that device: `auto` falls
// back to the mma.sync kernel with a warning. Explicit `wgmma` still runs it.
bool wgmma_passes_self_check(int device) {
  static std::mutex mu;
  static std::vector<int> verdict;  // per device: -1 unknown, 0 failed, 1 passed
  std::lock_guard<std::mutex> lock(mu);
  if (verdict.size() <= static_cast<size_t>(device)) verdict.resize(static_cast<size_t>(device) + 1, -1);
  int& v = verdict[static_cast<size_t>(device)];
  if (v >= 0) return v == 1;
  std::string why;
  try {
    const auto gen = at::make_generator<at::CPUGeneratorImpl>(20260);
    const at::Tensor x = at::randn({200, 320}, gen, at::kFloat);
    const at::Tensor w = at::randn({3, 192, 320}, gen, at::kFloat);
    const Fp8Tensor a = quantize_fp8_rows(x);
    std::vector<at::Tensor> datas, scales;
    for (int64_t e = 0; e < w.size(0); ++e) {
      const Fp8Tensor q = quantize_fp8_blocks(w[e]);
      datas.push_back(q.data.view(at::kByte));
      scales.push_back(q.scale);
    }
    const Fp8Tensor b{at::stack(datas).view(at::kFloat8_e4m3fn), at::stack(scales), kFp8Group};
    const auto dev = at::Device(at::kCUDA, static_cast<c10::DeviceIndex>(device));
    const auto on = [&](const Fp8Tensor& t) {
      return Fp8Tensor{t.data.to(dev), t.scale.to(dev), t.block_rows};
    };
    const auto relative_error = [](const at::Tensor& got, const at::Tensor& want) {
      return (got.cpu().to(at::kFloat) - want).abs().max().item<double>() /
             std::max(want.abs().max().item<double>(), 1e-30);
    };
    // Plain: expert 1's weights against all 200 rows.
    const Fp8Tensor b1{b.data[1], b.scale[1], kFp8Group};
    const at::Tensor plain =
        gemm_cuda(on(a), on(b1), at::Tensor(), at::kFloat, Fp8Backend::kWgmma, "self-check");
    const double e1 = relative_error(plain, gemm_cpu(a, b1));
    // Grouped: rows 0-127 expert 2, 128-199 expert 0.
    at::Tensor groups = at::full({200}, 0, at::kInt);
    groups.narrow(0, 0, 128).fill_(2);
    const at::Tensor grouped =
        gemm_cuda(on(a), on(b), groups.to(dev), at::kFloat, Fp8Backend::kWgmma, "self-check");
    const at::Tensor want = fp8_grouped_gemm_nt(a, b, groups, at::kFloat);  // the CPU reference path
    const double e2 = relative_error(grouped, want);
    if (!(e1 <= 1e-3 && e2 <= 1e-3))
      why = "relative error " + std::to_string(e1) + " (plain), " + std::to_string(e2) + " (grouped)";
  } catch (const std::exception& e) {
    why = e.what();
  }
  v = why.empty() ? 1 : 0;
  if (!why.empty())
    log::warn("fp8: the wgmma kernel failed its self-check on cuda:", device, " (", why,
              "); `auto` uses the mma.sync kernel there (set the backend to `wgmma` to force it)");
  return v == 1;
}

// The aha kernel a call runs on: wgmma when asked, or by default on sm_90 where it applies (b in 128x128
// blocks); the mma.sync kernel otherwise.
bool use_wgmma(const Fp8Tensor& b, Fp8Backend backend, const char* op) {
  if (backend == Fp8Backend::kWgmma) {
    AHA_CHECK(b.block_rows == kFp8Group, op,
              ": the wgmma backend needs 128x128-block scales on b (weights), got block_rows ", b.block_rows);
    AHA_CHECK(at::cuda::getCurrentDeviceProperties()->major == 9, op,
              ": the wgmma backend needs an sm_90 (Hopper) device, this one is sm_",
              at::cuda::getCurrentDeviceProperties()->major, at::cuda::getCurrentDeviceProperties()->minor);
    const int status = sm90_fp8_wgmma_status();
    AHA_CHECK(status == 0, op,
              ": the wgmma kernel cannot run here: ", cudaGetErrorString(static_cast<cudaError_t>(status)),
              " (no cuTensorMapEncodeTiled in the driver, or the sm_90a image was not loaded)");
    return true;
  }
  return backend == Fp8Backend::kAuto && b.block_rows == kFp8Group && b.data.size(-1) > 0 &&
         at::cuda::getCurrentDeviceProperties()->major == 9 && sm90_fp8_wgmma_status() == 0 &&
         wgmma_passes_self_check(a_device_index());
}

at::Tensor gemm_cuda(const Fp8Tensor& a_in, const Fp8Tensor& b_in, const at::Tensor& m_group,
                     at::ScalarType out_dtype, Fp8Backend backend, const char* op) {
  c10::cuda::CUDAGuard guard(a_in.data.device());
  const Fp8Tensor a = pad_k_to_16(a_in), b = pad_k_to_16(b_in);
  const int64_t m = a.data.size(0), k = a.data.size(1), n = b.data.size(-2);
  check_aligned(a.data, op, "a.data");
  check_aligned(b.data, op, "b.data");
  at::Tensor c = (m_group.defined() ? at::zeros({m, n}, a.data.options().dtype(out_dtype))
                                    : at::empty({m, n}, a.data.options().dtype(out_dtype)));
  if (m == 0 || n == 0) return c;
  Fp8GemmParams p{};
  p.a = bytes(a.data);
  p.sa = a.scale.data_ptr<float>();
  p.b = bytes(b.data);
  p.sb = b.scale.data_ptr<float>();
  p.c = c.data_ptr();
  p.m_group = m_group.defined() ? m_group.data_ptr<int32_t>() : nullptr;
  p.m = m;
  p.n = n;
  p.k = k;
  p.b_block_rows = static_cast<int>(b.block_rows);
  p.c_bf16 = out_dtype == at::kBFloat16;
  p.b_groups = b.data.dim() == 3 ? b.data.size(0) : 1;
  if (use_wgmma(b, backend, op)) {
    check_cuda(sm90_fp8_gemm_nt_wgmma(p, current_stream()), op);
    return c;
  }
  check_cuda(sm90_fp8_gemm_nt(p, current_stream()), op);
  return c;
}

at::Tensor gemm_cublaslt(const Fp8Tensor& a, const Fp8Tensor& b, at::ScalarType out_dtype) {
  constexpr const char* op = "fp8_gemm_nt (cublaslt)";
  const int64_t m = a.data.size(0), k = a.data.size(1), n = b.data.size(0);
  AHA_CHECK(b.block_rows == kFp8Group, op, ": cuBLASLt needs 128x128-block scales on b, got block_rows ",
            b.block_rows);
  AHA_CHECK(k % kFp8Group == 0, op, ": cuBLASLt block scaling needs k % 128 == 0, got k = ", k);
  AHA_CHECK(n % 16 == 0, op, ": cuBLASLt FP8 needs n % 16 == 0, got n = ", n);
  c10::cuda::CUDAGuard guard(a.data.device());
  const int64_t kb = k / kFp8Group, lda_s = ceil_div(m, 4) * 4, ldb_s = ceil_div(kb, 4) * 4;
  // cuBLASLt reads the 1x128 scales with the row index contiguous and the block scales with a padded stride.
  at::Tensor sa_t = at::zeros({kb, lda_s}, a.scale.options());
  sa_t.narrow(1, 0, m).copy_(a.scale.t());
  at::Tensor sb_p = at::zeros({ceil_div(n, kFp8Group), ldb_s}, b.scale.options());
  sb_p.narrow(1, 0, kb).copy_(b.scale);
  at::Tensor c = at::empty({m, n}, a.data.options().dtype(out_dtype));
  const char* error = "";
  const int status = cublaslt_fp8_gemm_nt(
      at::cuda::getCurrentCUDABlasLtHandle(), bytes(a.data), sa_t.data_ptr<float>(), bytes(b.data),
      sb_p.data_ptr<float>(), c.data_ptr(), out_dtype == at::kBFloat16, m, n, k,
      at::cuda::getCUDABlasLtWorkspace(), static_cast<int64_t>(at::cuda::getCUDABlasLtWorkspaceSize()),
      current_stream(), &error);
  AHA_CHECK(status == 0, op, ": cuBLASLt failed (status ", status, "): ", error, " for m ", m, " n ", n,
            " k ", k, " out ", out_dtype);
  return c;
}
#endif

}  // namespace

Fp8Tensor quantize_fp8_rows(const at::Tensor& x, bool ue8m0) {
  return quantize(x, ue8m0, QuantKind::kRows, "quantize_fp8_rows");
}

Fp8Tensor quantize_fp8_rows_transposed(const at::Tensor& x, bool ue8m0) {
  return quantize(x, ue8m0, QuantKind::kRowsTransposed, "quantize_fp8_rows_transposed");
}

Fp8Tensor quantize_fp8_blocks(const at::Tensor& w, bool ue8m0) {
  return quantize(w, ue8m0, QuantKind::kBlocks, "quantize_fp8_blocks");
}

Fp8Tensor transpose_fp8_blocks(const Fp8Tensor& w) {
  check_operand(w, "transpose_fp8_blocks", "w", 2);
  AHA_CHECK(w.block_rows == kFp8Group, "transpose_fp8_blocks: w must have 128x128 blocks, got block_rows ",
            w.block_rows);
  return {w.data.t().contiguous(), w.scale.t().contiguous(), kFp8Group};
}

at::Tensor dequantize_fp8(const Fp8Tensor& t) {
  check_operand(t, "dequantize_fp8", "t", t.data.dim() == 3 ? 3 : 2);
  const int64_t rows = t.data.size(-2), cols = t.data.size(-1);
  return t.data.to(at::kFloat) * t.scale.repeat_interleave(t.block_rows, -2)
                                     .repeat_interleave(kFp8Group, -1)
                                     .narrow(-2, 0, rows)
                                     .narrow(-1, 0, cols);
}

Fp8Backend parse_fp8_backend(const std::string& name) {
  if (name == "auto") return Fp8Backend::kAuto;
  if (name == "aha") return Fp8Backend::kAha;
  if (name == "wgmma") return Fp8Backend::kWgmma;
  if (name == "cublaslt") return Fp8Backend::kCublasLt;
  AHA_FAIL("unknown FP8 GEMM backend \"", name, "\": auto, aha, wgmma or cublaslt");
}

at::Tensor fp8_gemm_nt(const Fp8Tensor& a, const Fp8Tensor& b, at::ScalarType out_dtype, Fp8Backend backend) {
  constexpr const char* op = "fp8_gemm_nt";
  check_operand(a, op, "a", 2);
  check_operand(b, op, "b", 2);
  check_out_dtype(out_dtype, op);
  AHA_CHECK(a.block_rows == 1, op, ": a must have 1x128 groups (block_rows 1), got block_rows ",
            a.block_rows);
  AHA_CHECK(a.data.size(1) == b.data.size(1), op, ": a is ", a.data.sizes(), " and b is ", b.data.sizes(),
            ": both must be K-contiguous [m, k] and [n, k] with the same k");
  AHA_CHECK(a.data.device() == b.data.device(), op, ": a is on ", a.data.device(), " but b on ",
            b.data.device());
  if (a.data.device().is_cpu()) {
    AHA_CHECK(backend == Fp8Backend::kAuto, op,
              ": the CUDA backends (aha, wgmma, cublaslt) need CUDA tensors");
    return gemm_cpu(a, b).to(out_dtype);
  }
#ifdef AHA_WITH_CUDA
  AHA_CHECK(a.data.device().is_cuda(), op, ": unsupported device ", a.data.device());
  if (backend == Fp8Backend::kCublasLt) return gemm_cublaslt(a, b, out_dtype);
  return gemm_cuda(a, b, at::Tensor(), out_dtype, backend, op);
#else
  AHA_FAIL(op, ": tensors on ", a.data.device(),
           " but this build of aha has no CUDA kernels (AHA_CUDA=OFF or no nvcc)");
#endif
}

at::Tensor fp8_grouped_gemm_nt(const Fp8Tensor& a, const Fp8Tensor& b, const at::Tensor& m_group,
                               at::ScalarType out_dtype, Fp8Backend backend) {
  constexpr const char* op = "fp8_grouped_gemm_nt";
  check_operand(a, op, "a", 2);
  check_operand(b, op, "b", 3);
  check_out_dtype(out_dtype, op);
  AHA_CHECK(a.block_rows == 1, op, ": a must have 1x128 groups (block_rows 1), got block_rows ",
            a.block_rows);
  AHA_CHECK(b.block_rows == kFp8Group, op, ": b must have 128x128 blocks, got block_rows ", b.block_rows);
  AHA_CHECK(a.data.size(1) == b.data.size(2), op, ": a is ", a.data.sizes(), " and b is ", b.data.sizes(),
            ": k must agree");
  AHA_CHECK(m_group.defined() && m_group.scalar_type() == at::kInt && m_group.dim() == 1 &&
                m_group.size(0) == a.data.size(0),
            op, ": m_group must be int32 [", a.data.size(0), "] (one expert per row of a)");
  AHA_CHECK(m_group.device() == a.data.device() && a.data.device() == b.data.device(), op,
            ": a, b and m_group must be on one device");
  AHA_CHECK(m_group.is_contiguous(), op, ": m_group must be contiguous");
  const int64_t m = a.data.size(0), experts = b.data.size(0);
  if (a.data.device().is_cpu()) {
    AHA_CHECK(backend == Fp8Backend::kAuto, op, ": the CUDA backends need CUDA tensors");
    at::Tensor c = at::zeros({m, b.data.size(1)}, a.data.options().dtype(at::kFloat));
    const int32_t* g = m_group.data_ptr<int32_t>();
    for (int64_t begin = 0; begin < m;) {
      int64_t end = begin + 1;
      while (end < m && g[end] == g[begin])
        ++end;
      const int32_t e = g[begin];
      AHA_CHECK(e >= -1 && e < experts, op, ": m_group[", begin, "] = ", e, " is not an expert of b (",
                experts, " experts) nor -1");
      if (e >= 0) {
        AHA_CHECK(begin % kFp8Group == 0, op, ": expert ", e, " starts at row ", begin,
                  ", not a multiple of 128");
        const Fp8Tensor rows{a.data.narrow(0, begin, end - begin), a.scale.narrow(0, begin, end - begin), 1};
        c.narrow(0, begin, end - begin).copy_(gemm_cpu(rows, {b.data[e], b.scale[e], kFp8Group}));
      }
      begin = end;
    }
    return c.to(out_dtype);
  }
#ifdef AHA_WITH_CUDA
  AHA_CHECK(backend != Fp8Backend::kCublasLt, op,
            ": cuBLASLt has no grouped block-scaled GEMM here (auto, aha, wgmma)");
  return gemm_cuda(a, b, m_group, out_dtype, backend, op);
#else
  AHA_FAIL(op, ": tensors on ", a.data.device(),
           " but this build of aha has no CUDA kernels (AHA_CUDA=OFF or no nvcc)");
#endif
}

at::Tensor fp8_gemm_nt_loops(const Fp8Tensor& a, const Fp8Tensor& b) {
  constexpr const char* op = "fp8_gemm_nt_loops";
  check_operand(a, op, "a", 2);
  check_operand(b, op, "b", 2);
  AHA_CHECK(a.block_rows == 1, op, ": a must have 1x128 groups (block_rows 1), got block_rows ",
            a.block_rows);
  AHA_CHECK(a.data.size(1) == b.data.size(1), op, ": a is ", a.data.sizes(), " and b is ", b.data.sizes(),
            ": k must agree");
  AHA_CHECK(a.data.device().is_cpu() && b.data.device().is_cpu(), op, ": CPU tensors only");
  at::Tensor c = at::empty({a.data.size(0), b.data.size(0)}, a.scale.options());
  fp8_gemm_nt_ref(bytes(a.data), a.scale.data_ptr<float>(), bytes(b.data), b.scale.data_ptr<float>(),
                  a.data.size(0), b.data.size(0), a.data.size(1), static_cast<int>(b.block_rows),
                  c.data_ptr<float>());
  return c;
}

}  // namespace aha::kernels
