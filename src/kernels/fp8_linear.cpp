#include "aha/kernels/fp8_linear.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/custom_function.h>

#include "aha/core/error.h"

namespace aha::kernels {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::tensor_list;

class Fp8LinearFunction : public torch::autograd::Function<Fp8LinearFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& weight, Fp8Tensor wq,
                            Fp8LinearOptions o) {
    const int64_t in = weight.size(1), out = weight.size(0);
    const at::Tensor x2 = x.reshape({-1, in});
    if (!wq.data.defined()) wq = quantize_fp8_blocks(weight, o.ue8m0);
    const at::Tensor y = fp8_gemm_nt(quantize_fp8_rows(x2, o.ue8m0), wq, x.scalar_type(), o.backend);
    ctx->saved_data["wq_data"] = wq.data;
    ctx->saved_data["wq_scale"] = wq.scale;
    if (weight.requires_grad()) {
      const Fp8Tensor xt = quantize_fp8_rows_transposed(x2, o.ue8m0);
      ctx->saved_data["xt_data"] = xt.data;
      ctx->saved_data["xt_scale"] = xt.scale;
    }
    ctx->saved_data["x_sizes"] = x.sizes().vec();
    ctx->saved_data["x_dtype"] = x.scalar_type();
    ctx->saved_data["w_dtype"] = weight.scalar_type();
    ctx->saved_data["ue8m0"] = o.ue8m0;
    ctx->saved_data["backend"] = static_cast<int64_t>(o.backend);
    std::vector<int64_t> y_sizes = x.sizes().vec();
    y_sizes.back() = out;
    return y.view(y_sizes);
  }

  static tensor_list backward(AutogradContext* ctx, tensor_list grads) {
    auto& d = ctx->saved_data;
    const Fp8Tensor wq{d["wq_data"].toTensor(), d["wq_scale"].toTensor(), kFp8BlockSize};
    const bool ue8m0 = d["ue8m0"].toBool();
    const auto backend = static_cast<Fp8Backend>(d["backend"].toInt());
    const int64_t out = wq.data.size(0);
    at::Tensor dy = grads[0].reshape({-1, out});
    if (dy.scalar_type() != at::kFloat && dy.scalar_type() != at::kBFloat16) dy = dy.to(at::kFloat);
    at::Tensor dx, dw;
    if (ctx->needs_input_grad(0)) {
      const std::vector<int64_t> x_sizes = d["x_sizes"].toIntVector();
      dx = fp8_gemm_nt(quantize_fp8_rows(dy, ue8m0), transpose_fp8_blocks(wq), d["x_dtype"].toScalarType(),
                       backend)
               .view(x_sizes);
    }
    if (ctx->needs_input_grad(1)) {
      AHA_CHECK(d.count("xt_data"),
                "fp8_linear: the weight gradient is needed but the weight did not require "
                "grad in the forward pass");
      const Fp8Tensor xt{d["xt_data"].toTensor(), d["xt_scale"].toTensor(), 1};
      dw = fp8_gemm_nt(quantize_fp8_rows_transposed(dy, ue8m0), xt, at::kFloat, backend)
               .to(d["w_dtype"].toScalarType());
    }
    return {dx, dw, at::Tensor(), at::Tensor()};
  }
};

}  // namespace

at::Tensor fp8_linear(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias,
                      const Fp8Tensor& weight_q, const Fp8LinearOptions& options) {
  AHA_CHECK(x.defined() && weight.defined(), "fp8_linear: x and weight must be defined tensors");
  AHA_CHECK(weight.dim() == 2, "fp8_linear: weight must be [out, in], got shape ", weight.sizes());
  AHA_CHECK(x.dim() >= 1 && x.size(-1) == weight.size(1), "fp8_linear: x has shape ", x.sizes(),
            " but the weight takes ", weight.size(1), " input features");
  AHA_CHECK(x.device() == weight.device(), "fp8_linear: x is on ", x.device(), " but the weight on ",
            weight.device());
  if (weight_q.data.defined())
    AHA_CHECK(weight_q.data.sizes() == weight.sizes() && weight_q.block_rows == kFp8BlockSize,
              "fp8_linear: weight_q must be the 128x128-block quantisation of a weight of shape ",
              weight.sizes(), ", got data ", weight_q.data.sizes(), " with block_rows ", weight_q.block_rows);
  at::Tensor y = Fp8LinearFunction::apply(x, weight, weight_q, options);
  return bias.defined() ? y + bias.to(y.scalar_type()) : y;
}

}  // namespace aha::kernels
