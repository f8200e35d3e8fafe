#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>
#include <gtest/gtest.h>
#include <torch/optim/adamw.h>

#include <algorithm>
#include <cmath>
#include <iostream>

#include "../kernels/test_fp8_bound.h"
#include "aha/core/config.h"
#include "aha/io/safetensors.h"
#include "aha/kernels/axpy.h"
#include "aha/kernels/fp8_linear.h"
#include "aha/model/checkpoint.h"
#include "aha/model/linear.h"
#include "aha/model/transformer.h"
#include "aha/rl/policy.h"
#include "fp8_test_helpers.h"
#include "model_fixtures.h"

namespace k = aha::kernels;
namespace m = aha::model;

namespace {

using aha::test::bits;
using aha::test::expect_within_bound;
using aha::test::spread;

TEST(Fp8Linear, ForwardAndBackwardMatchFp32AutogradWithinTheE4m3Bound) {
  // 300 input features: two full 128-groups and a partial one; 2 x 45 = 90 tokens: a partial token group.
  const at::Tensor x0 = spread({2, 45, 300}, 1), w0 = spread({200, 300}, 2) * 0.05, b0 = spread({200}, 3);
  const at::Tensor dy = spread({2, 45, 200}, 4);
  const at::Tensor x = x0.clone().requires_grad_(), w = w0.clone().requires_grad_(),
                   b = b0.clone().requires_grad_();
  const at::Tensor y = k::fp8_linear(x, w, b);
  y.backward(dy);

  const at::Tensor x2 = x0.view({90, 300}), dy2 = dy.view({90, 200});
  const at::Tensor y_exact = at::mm(x2.to(at::kDouble), w0.to(at::kDouble).t()).to(at::kFloat);
  expect_within_bound(y.detach().view({90, 200}) - b0, y_exact,
                      aha::test::fp8_gemm_bound(x2, k::quantize_fp8_rows(x2), w0, k::quantize_fp8_blocks(w0)),
                      "forward");
  // dx = dy W: the operands are dy (1x128 along out) and W^T (the same 128x128 blocks, transposed).
  const at::Tensor wt = w0.t().contiguous();
  expect_within_bound(
      x.grad().view({90, 300}), at::mm(dy2.to(at::kDouble), w0.to(at::kDouble)).to(at::kFloat),
      aha::test::fp8_gemm_bound(dy2, k::quantize_fp8_rows(dy2), wt, k::quantize_fp8_blocks(wt)),
      "input grad");
  // dW = dy^T x: both operands grouped along the tokens.
  const at::Tensor dyt = dy2.t().contiguous(), xt = x2.t().contiguous();
  expect_within_bound(w.grad(), at::mm(dyt.to(at::kDouble), xt.to(at::kDouble).t()).to(at::kFloat),
                      aha::test::fp8_gemm_bound(dyt, k::quantize_fp8_rows(dyt), xt, k::quantize_fp8_rows(xt)),
                      "weight grad");
  EXPECT_EQ(w.grad().scalar_type(), at::kFloat);
  EXPECT_TRUE(at::allclose(b.grad(), dy2.sum(0), 1e-5, 1e-4));
}

TEST(Fp8Linear, ModuleUsesTheFp8PathAndRequantisesOnlyWhenTheWeightChanges) {
  m::Linear lin(300, 200, true);
  {
    torch::NoGradGuard no_grad;
    lin->weight.copy_(spread({200, 300}, 5) * 0.05);
    lin->bias.copy_(spread({200}, 6));
  }
  const at::Tensor x = spread({7, 300}, 7);
  const at::Tensor fp32 = lin(x);
  lin->set_fp8(true);
  const at::Tensor fp8 = lin(x);
  EXPECT_TRUE(at::equal(fp8, k::fp8_linear(x, lin->weight, lin->bias)));
  EXPECT_FALSE(at::allclose(fp8, fp32, 1e-5, 1e-5));
  // Cached between calls, redone after an update of the weight.
  const void* cached = lin->fp8_weight().data.data_ptr();
  lin(x);
  EXPECT_EQ(lin->fp8_weight().data.data_ptr(), cached);
  {
    torch::NoGradGuard no_grad;
    lin->weight.mul_(1.5);
  }
  EXPECT_TRUE(
      at::equal(bits(lin->fp8_weight().data), bits(k::quantize_fp8_blocks(lin->weight.detach()).data)));
  EXPECT_TRUE(at::equal(lin(x), k::fp8_linear(x, lin->weight, lin->bias)));
  // A cache made while sampling (InferenceMode) serves the training pass that follows.
  {
    torch::NoGradGuard no_grad;
    lin->weight.mul_(0.5);
  }
  {
    c10::InferenceMode sampling;
    lin(x);
  }
  lin(x).sum().backward();
  ASSERT_TRUE(lin->weight.grad().defined());
  EXPECT_GT(lin->weight.grad().abs().sum().item<float>(), 0.0f);
}

TEST(Fp8Linear, EnableSwitchesAttentionAndMlpLinearsOnly) {
  m::Transformer model(aha::test::two_layer_moe_config());
  // Per layer: q_proj, kv_a_proj_with_mqa, kv_b_proj, o_proj; layer 0's dense MLP and layer 1's shared
  // experts: gate/up/down each.
  EXPECT_EQ(m::enable_fp8_linears(*model), 2 * 4 + 2 * 3);
  for (const auto& item : model->named_modules()) {
    auto* lin = dynamic_cast<m::LinearImpl*>(item.value().get());
    if (!lin) continue;
    const bool want =
        item.key().find("self_attn.") != std::string::npos || item.key().find("mlp.") != std::string::npos;
    EXPECT_EQ(lin->fp8(), want) << item.key();
  }
  ASSERT_TRUE(model->lm_head);
  EXPECT_FALSE(model->lm_head->fp8());
}

TEST(Fp8Linear, PrecisionFp8InTheRunConfigSelectsIt) {
  aha::ModelSection ms;
  ms.precision = "fp8";
  ms.device = "cpu";
  aha::rl::Policy p = aha::rl::make_policy(ms, aha::DataSection{});
  EXPECT_EQ(p.dtype, at::kFloat);
  int64_t fp8 = 0;
  for (const auto& item : p.model->named_modules())
    if (auto* lin = dynamic_cast<m::LinearImpl*>(item.value().get())) fp8 += lin->fp8();
  EXPECT_GT(fp8, 0);
  EXPECT_FALSE(p.model->lm_head->fp8());
}

// Trains a fresh tiny model on next-token prediction of short arithmetic sequences; returns the losses.
std::vector<double> train(bool fp8, int steps) {
  at::manual_seed(0);
  m::Transformer model(aha::test::two_layer_moe_config());
  model->init_weights(3);
  if (fp8) m::enable_fp8_linears(*model);
  torch::optim::AdamW opt(model->parameters(), torch::optim::AdamWOptions(3e-3).weight_decay(0));
  // Rows: start + step * t (mod 40) with random start and step: learnable from the context.
  const int64_t rows = 16, length = 24;
  const at::Tensor start = at::randint(0, 40, {rows, 1}), step = at::randint(1, 4, {rows, 1});
  const at::Tensor ids = (start + step * at::arange(length).view({1, length})).remainder(40);
  std::vector<double> losses;
  for (int s = 0; s < steps; ++s) {
    m::ForwardInput in;
    in.input_ids = ids;
    const at::Tensor logits = model->forward(in).logits;
    const at::Tensor loss = at::cross_entropy_loss(logits.narrow(1, 0, length - 1).reshape({-1, 48}),
                                                   ids.narrow(1, 1, length - 1).reshape({-1}));
    opt.zero_grad();
    loss.backward();
    opt.step();
    losses.push_back(loss.item<double>());
  }
  return losses;
}

TEST(Fp8Linear, ShortTrainRunLearnsLikeFp32) {
  const int steps = 30;
  const std::vector<double> fp32 = train(false, steps), fp8 = train(true, steps);
  std::cout << "loss fp32 " << fp32.front() << " -> " << fp32.back() << ", fp8 " << fp8.front() << " -> "
            << fp8.back() << " after " << steps << " steps\n";
  EXPECT_NEAR(fp8.front(), fp32.front(), 0.02 * fp32.front());
  EXPECT_LT(fp32.back(), 0.5 * fp32.front());
  EXPECT_LT(fp8.back(), 0.5 * fp8.front());
  // Step by step the two runs follow the same curve (FP8 noise of a few per cent on every GEMM).
  double worst = 0;
  for (int i = 0; i < steps; ++i) {
    EXPECT_NEAR(fp8[i], fp32[i], 0.1 * fp32[i] + 0.02) << "step " << i;
    worst = std::max(worst, std::fabs(fp8[i] - fp32[i]) / fp32[i]);
  }
  std::cout << "largest relative loss gap " << worst << " (loss at step 10: fp32 " << fp32[10] << ", fp8 "
            << fp8[10] << ")\n";
  EXPECT_NE(fp8.back(), fp32.back());  // the FP8 run really took another path
}

TEST(Fp8Linear, Fp8CheckpointWeightsGoStraightIntoFp8Compute) {
  const std::string dir = aha::test::model_fixture("fp8_blocks");
  const auto ckpt = aha::io::Checkpoint::open(dir);
  m::Transformer model = m::load_pretrained(dir);
  EXPECT_GT(m::enable_fp8_linears(*model), 0);
  int64_t checked = 0;
  for (const auto& item : model->named_modules()) {
    auto* lin = dynamic_cast<m::LinearImpl*>(item.value().get());
    const std::string key = item.key() + ".weight";
    if (!lin || !lin->fp8() || !ckpt.contains(key) || ckpt.tensor(key).scalar_type() != at::kFloat8_e4m3fn)
      continue;
    // The shipped E4M3 bits and scales, not a requantisation of the dequantised master weight.
    const k::Fp8Tensor q = lin->fp8_weight();
    EXPECT_TRUE(at::equal(bits(q.data), bits(ckpt.tensor(key)))) << key;
    EXPECT_TRUE(at::equal(q.scale, ckpt.tensor(key + "_scale_inv").to(at::kFloat))) << key;
    EXPECT_TRUE(at::equal(lin->weight.detach(), m::dequantize_fp8_blocks(q.data, q.scale))) << key;
    ++checked;
  }
  EXPECT_EQ(checked,
            2 * 5 + 3 + 3);  // 5 attention projections per layer, layer 0's MLP, layer 1's shared experts
  // The model runs with them, and its logits stay near the dequantised fp32 model's: each of the 16 FP8
  // linears adds a few per cent of relative error (the bound of the kernel tests), about 0.15 compounded
  // here.
  m::Transformer ref = m::load_pretrained(dir);
  const m::ForwardInput in = aha::test::fixture_inputs("fp8_blocks");
  const at::Tensor a = model->forward(in).logits, b = ref->forward(in).logits;
  EXPECT_LT(((a - b).norm() / b.norm()).item<double>(), 0.3);
  EXPECT_FALSE(at::equal(a, b));
}

TEST(Fp8Cuda, LinearForwardAndBackwardMatchTheCpuPath) {
  if (!at::hasCUDA() || !k::cuda_kernels_built())
    GTEST_SKIP() << "no CUDA device (or built without CUDA kernels): checked by scripts/gpu_check.sh";
  // 90 tokens (the weight-gradient GEMM's K, padded on the device) and 300 features (K of the forward GEMM).
  const at::Tensor x0 = spread({2, 45, 300}, 11), w0 = spread({200, 300}, 12) * 0.05,
                   dy = spread({2, 45, 200}, 13);
  auto run = [&](at::Device device, at::ScalarType dtype) {
    const at::Tensor x = x0.to(device, dtype).requires_grad_(), w = w0.to(device).requires_grad_();
    const at::Tensor y = k::fp8_linear(x, w, at::Tensor());
    y.backward(dy.to(device, dtype));
    return std::vector<at::Tensor>{y.detach().cpu().to(at::kFloat), x.grad().cpu().to(at::kFloat),
                                   w.grad().cpu()};
  };
  const auto cpu = run(at::kCPU, at::kFloat);
  for (auto dtype : {at::kFloat, at::kBFloat16}) {
    const auto gpu = run(at::Device(at::kCUDA), dtype);
    const auto ref = dtype == at::kFloat ? cpu : run(at::kCPU, at::kBFloat16);
    const double tol = dtype == at::kFloat ? 1e-3 : 8e-3;
    const char* names[] = {"y", "dx", "dW"};
    for (int i = 0; i < 3; ++i) {
      const double worst = (gpu[i] - ref[i]).abs().max().item<double>(),
                   scale = ref[i].abs().max().item<double>();
      EXPECT_LE(worst, tol * scale) << names[i] << " " << dtype;
    }
  }
}

}  // namespace
