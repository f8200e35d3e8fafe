#include "aha/kernels/fp8_grouped_linear.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/custom_function.h>

#include "aha/core/error.h"

namespace aha::kernels {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::tensor_list;

// Where each sorted row goes in the contiguous layout (every expert's rows from a multiple of 128), and the
// expert of every padded row (-1: padding).
struct PaddedLayout {
  at::Tensor dst;      // [P] int64
  at::Tensor m_group;  // [rows] int32
  int64_t rows = 0;
};

PaddedLayout padded_layout(const std::vector<int64_t>& counts, at::Device device) {
  int64_t rows = 0, total = 0;
  for (const int64_t c : counts) {
    rows += (c + kFp8BlockSize - 1) / kFp8BlockSize * kFp8BlockSize;
    total += c;
  }
  at::Tensor dst = at::empty({total}, at::kLong), group = at::full({rows}, -1, at::kInt);
  int64_t* d = dst.data_ptr<int64_t>();
  int32_t* g = group.data_ptr<int32_t>();
  int64_t src = 0, start = 0;
  for (size_t e = 0; e < counts.size(); ++e) {
    for (int64_t i = 0; i < counts[e]; ++i) {
      d[src++] = start + i;
      g[start + i] = static_cast<int32_t>(e);
    }
    start += (counts[e] + kFp8BlockSize - 1) / kFp8BlockSize * kFp8BlockSize;
  }
  return {dst.to(device), group.to(device), rows};
}

// The 1x128 quantisation of x's rows, placed at their padded rows (padding rows: zero data and scale).
Fp8Tensor quantize_padded(const at::Tensor& x, const PaddedLayout& layout, bool ue8m0) {
  const Fp8Tensor q = quantize_fp8_rows(x, ue8m0);
  at::Tensor data = at::zeros({layout.rows, x.size(1)}, q.data.options().dtype(at::kByte));
  data.index_copy_(0, layout.dst, q.data.view(at::kByte));
  at::Tensor scale = at::zeros({layout.rows, q.scale.size(1)}, q.scale.options());
  scale.index_copy_(0, layout.dst, q.scale);
  return {data.view(at::kFloat8_e4m3fn), scale, 1};
}

class Fp8GroupedLinearFunction : public torch::autograd::Function<Fp8GroupedLinearFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& weight, Fp8Tensor wq,
                            std::vector<int64_t> counts, Fp8LinearOptions o) {
    if (!wq.data.defined()) wq = quantize_fp8_blocks_grouped(weight, o.ue8m0);
    const PaddedLayout layout = padded_layout(counts, x.device());
    const at::Tensor y = fp8_grouped_gemm_nt(quantize_padded(x, layout, o.ue8m0), wq, layout.m_group,
                                             x.scalar_type(), o.backend)
                             .index_select(0, layout.dst);
    ctx->saved_data["wq_data"] = wq.data;
    ctx->saved_data["wq_scale"] = wq.scale;
    ctx->saved_data["dst"] = layout.dst;
    ctx->saved_data["m_group"] = layout.m_group;
    ctx->saved_data["rows"] = layout.rows;
    ctx->saved_data["counts"] = counts;
    // The weight gradient groups x along the tokens of each expert; x is kept as it is until then.
    if (weight.requires_grad()) ctx->saved_data["x"] = x;
    ctx->saved_data["x_dtype"] = x.scalar_type();
    ctx->saved_data["w_dtype"] = weight.scalar_type();
    ctx->saved_data["ue8m0"] = o.ue8m0;
    ctx->saved_data["backend"] = static_cast<int64_t>(o.backend);
    return y;
  }

  static tensor_list backward(AutogradContext* ctx, tensor_list grads) {
    auto& d = ctx->saved_data;
    const Fp8Tensor wq{d["wq_data"].toTensor(), d["wq_scale"].toTensor(), kFp8BlockSize};
    const bool ue8m0 = d["ue8m0"].toBool();
    const auto backend = static_cast<Fp8Backend>(d["backend"].toInt());
    const std::vector<int64_t> counts = d["counts"].toIntVector();
    at::Tensor dy = grads[0].contiguous();
    if (dy.scalar_type() != at::kFloat && dy.scalar_type() != at::kBFloat16) dy = dy.to(at::kFloat);
    at::Tensor dx, dw;
    if (ctx->needs_input_grad(0)) {
      const PaddedLayout layout{d["dst"].toTensor(), d["m_group"].toTensor(), d["rows"].toInt()};
      const Fp8Tensor wt{wq.data.transpose(1, 2).contiguous(), wq.scale.transpose(1, 2).contiguous(),
                         kFp8BlockSize};
      dx = fp8_grouped_gemm_nt(quantize_padded(dy, layout, ue8m0), wt, layout.m_group,
                               d["x_dtype"].toScalarType(), backend)
               .index_select(0, layout.dst);
    }
    if (ctx->needs_input_grad(1)) {
      AHA_CHECK(d.count("x"),
                "fp8_grouped_linear: the weight gradient is needed but the weight did not require grad in "
                "the forward pass");
      const at::Tensor x = d["x"].toTensor();
      const int64_t out = wq.data.size(1), in = wq.data.size(2);
      dw = at::zeros({static_cast<int64_t>(counts.size()), out, in}, x.options().dtype(at::kFloat));
      int64_t begin = 0;
      for (size_t e = 0; e < counts.size(); ++e) {
        if (counts[e] == 0) continue;
        const at::Tensor x_e = x.narrow(0, begin, counts[e]), dy_e = dy.narrow(0, begin, counts[e]);
        dw[static_cast<int64_t>(e)].copy_(fp8_gemm_nt(quantize_fp8_rows_transposed(dy_e, ue8m0),
                                                      quantize_fp8_rows_transposed(x_e, ue8m0), at::kFloat,
                                                      backend));
        begin += counts[e];
      }
      dw = dw.to(d["w_dtype"].toScalarType());
    }
    return {dx, dw, at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

}  // namespace

Fp8Tensor quantize_fp8_blocks_grouped(const at::Tensor& w, bool ue8m0) {
  AHA_CHECK(w.defined() && w.dim() == 3, "quantize_fp8_blocks_grouped: expects [E, rows, cols] weights, got ",
            w.defined() ? w.sizes() : at::IntArrayRef{});
  std::vector<at::Tensor> data, scale;
  for (int64_t e = 0; e < w.size(0); ++e) {
    Fp8Tensor q = quantize_fp8_blocks(w[e], ue8m0);
    data.push_back(q.data.view(at::kByte));
    scale.push_back(q.scale);
  }
  return {at::stack(data).view(at::kFloat8_e4m3fn), at::stack(scale), kFp8BlockSize};
}

at::Tensor fp8_grouped_linear(const at::Tensor& x, const at::Tensor& weight,
                              const std::vector<int64_t>& counts, const Fp8Tensor& weight_q,
                              const Fp8LinearOptions& options) {
  constexpr const char* op = "fp8_grouped_linear";
  AHA_CHECK(x.defined() && weight.defined(), op, ": x and weight must be defined tensors");
  AHA_CHECK(weight.dim() == 3, op, ": weight must be [experts, out, in], got shape ", weight.sizes());
  AHA_CHECK(x.dim() == 2 && x.size(1) == weight.size(2), op, ": x must be [rows, ", weight.size(2),
            "], got shape ", x.sizes());
  AHA_CHECK(x.device() == weight.device(), op, ": x is on ", x.device(), " but the weight on ",
            weight.device());
  AHA_CHECK(static_cast<int64_t>(counts.size()) == weight.size(0), op, ": counts has ", counts.size(),
            " entries for ", weight.size(0), " experts");
  int64_t total = 0;
  for (const int64_t c : counts) {
    AHA_CHECK(c >= 0, op, ": negative row count ", c);
    total += c;
  }
  AHA_CHECK(total == x.size(0), op, ": counts sum to ", total, " but x has ", x.size(0), " rows");
  if (weight_q.data.defined())
    AHA_CHECK(weight_q.data.sizes() == weight.sizes() && weight_q.block_rows == kFp8BlockSize, op,
              ": weight_q must be the grouped 128x128-block quantisation of a weight of shape ",
              weight.sizes(), ", got data ", weight_q.data.sizes(), " with block_rows ", weight_q.block_rows);
  return Fp8GroupedLinearFunction::apply(x, weight, weight_q, counts, options);
}

}  // namespace aha::kernels
