// The gradient reducer on two Gloo ranks (threads of this process):
//   - buckets start during the backward pass: when autograd reaches the first layer, the buckets of the three
//     later layers are already on their way (a parameter the loss does not use does not hold its bucket
//     back), and the first layer's starts before backward() returns;
//   - the sums equal the ranks' locally accumulated gradients added up (two micro-batches, the first
//   unarmed);
//   - a gradient missing on one rank counts as zeros there (used by one rank only, or present from an earlier
//     micro-batch only), missing on both stays undefined; a rank with no backward pass at all still joins;
//   - one process installs no hook and changes nothing.
#include "aha/dist/grad_reducer.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/csrc/autograd/variable.h>

#include <vector>

#include "../support/error_of.h"
#include "../support/two_ranks.h"
#include "aha/dist/process_group.h"

namespace aha::dist {
namespace {

using test::on_two_ranks;

constexpr int64_t kWidth = 8;

// Four layers x -> relu(x W + b), W [in, out]: parameters W0, b0, ..., W3, b3 in forward order.
std::vector<at::Tensor> make_layers() {
  std::vector<at::Tensor> ps;
  for (int64_t i = 0; i < 4; ++i) {
    const double shift = static_cast<double>(i);
    ps.push_back(
        (at::sin(at::arange(kWidth * kWidth, at::kFloat) * 0.37 + shift) * 0.5).view({kWidth, kWidth}));
    ps.push_back(at::cos(at::arange(kWidth, at::kFloat) + shift) * 0.1);
  }
  for (auto& p : ps)
    p.requires_grad_();
  return ps;
}

at::Tensor input(int64_t rank, int64_t micro_batch) {
  const double f = 0.3 + 0.7 * static_cast<double>(rank) + 0.2 * static_cast<double>(micro_batch);
  return at::sin(at::arange(4 * kWidth, at::kFloat) * f).view({4, kWidth});
}

// The loss of one micro-batch; `first_layer_out` (optional) receives the first layer's output.
at::Tensor mlp_loss(const std::vector<at::Tensor>& ps, const at::Tensor& x,
                    at::Tensor* first_layer_out = nullptr) {
  at::Tensor h = x;
  for (size_t i = 0; i < 4; ++i) {
    h = at::relu(at::addmm(ps[2 * i + 1], h, ps[2 * i]));
    if (i == 0 && first_layer_out) *first_layer_out = h;
  }
  return h.pow(2).sum();
}

// Rank r's gradients after its two micro-batches, computed here on fresh copies (no hooks).
std::vector<at::Tensor> local_gradients(const std::vector<at::Tensor>& ps, int64_t rank) {
  std::vector<at::Tensor> copy;
  for (size_t i = 0; i < 8; ++i)
    copy.push_back(ps[i].detach().clone().requires_grad_());
  for (int64_t mb = 0; mb < 2; ++mb)
    mlp_loss(copy, input(rank, mb)).backward();
  std::vector<at::Tensor> g;
  for (const auto& p : copy)
    g.push_back(p.grad());
  return g;
}

TEST(DistGradReducer, StartsBucketsBeforeTheBackwardPassReachesTheFirstLayer) {
  if (!backend_available("gloo")) GTEST_SKIP() << "built without the gloo headers (Debian libgloo-dev)";
  on_two_ranks([](const std::shared_ptr<World>& w) {
    std::vector<at::Tensor> ps = make_layers();
    // A parameter the loss never uses, last in forward order: it shares the first bucket with the last layer
    // and must not hold it back until finish().
    at::Tensor unused = at::zeros({3}).requires_grad_();
    ps.push_back(unused);
    // One layer's W and b per bucket (the unused parameter's 12 bytes with the last layer's): 4 buckets.
    GradReducer reducer(w, ps, (kWidth * kWidth + kWidth) * 4 + 12);
    ASSERT_TRUE(reducer.active());
    ASSERT_EQ(reducer.buckets(), 4);
    // Micro-batch 1 accumulates locally: nothing starts.
    mlp_loss(ps, input(w->rank(), 0)).backward();
    EXPECT_EQ(reducer.launched(), 0);
    // Micro-batch 2 completes the gradients.
    at::Tensor h0;
    at::Tensor loss = mlp_loss(ps, input(w->rank(), 1), &h0);
    reducer.arm(loss);
    EXPECT_EQ(reducer.launched(), 0);  // every bucket still waits for a gradient of this pass
    int64_t started_at_first_layer = -1;
    // Runs when autograd has the gradient of layer 0's output, before layer 0's own backward.
    h0.register_hook([&](const at::Tensor&) { started_at_first_layer = reducer.launched(); });
    loss.backward();
    EXPECT_EQ(started_at_first_layer, 3);  // layers 3, 2, 1 already on their way
    EXPECT_EQ(reducer.launched(), 4);      // layer 0's too, before backward() returned
    reducer.finish();
    EXPECT_EQ(reducer.last().buckets, 4);
    EXPECT_EQ(reducer.last().during_backward, 4);
    EXPECT_EQ(reducer.launched(), 0);  // disarmed, ready for the next step

    const std::vector<at::Tensor> g0 = local_gradients(ps, 0), g1 = local_gradients(ps, 1);
    EXPECT_FALSE(unused.grad().defined());
    for (size_t i = 0; i + 1 < ps.size(); ++i) {
      ASSERT_TRUE(ps[i].grad().defined()) << i;
      EXPECT_TRUE(at::allclose(ps[i].grad(), g0[i] + g1[i], 1e-6, 1e-7))
          << "parameter " << i << ": largest difference "
          << (ps[i].grad() - g0[i] - g1[i]).abs().max().item<float>();
      EXPECT_FALSE(at::allclose(g0[i], g1[i])) << i;  // the ranks' parts differ: the sum is not a copy
    }
  });
}

TEST(DistGradReducer, GradientsMissingOnSomeRanksCountAsZerosAndOnAllStayUndefined) {
  if (!backend_available("gloo")) GTEST_SKIP() << "built without the gloo headers (Debian libgloo-dev)";
  on_two_ranks([](const std::shared_ptr<World>& w) {
    const int64_t r = w->rank();
    at::Tensor both = at::zeros({3, 2}).requires_grad_(), only1 = at::zeros({5}).requires_grad_(),
               early0 = at::zeros({4}).requires_grad_(), none = at::zeros({2}).requires_grad_();
    GradReducer reducer(w, {both, only1, early0, none}, /*bucket_bytes=*/16);  // several buckets
    EXPECT_GE(reducer.buckets(), 3);
    // Rank 0's earlier micro-batch is the only use of early0: its gradient exists but no hook fires for it in
    // the armed pass.
    if (r == 0) ((early0 * 2.0).sum() + both.sum()).backward();
    at::Tensor loss = (both * static_cast<double>(1 + r)).sum();
    if (r == 1) loss = loss + (only1 * at::arange(5, at::kFloat)).sum();
    reducer.arm(loss);
    loss.backward();
    reducer.finish();
    // both: rank 0 had 1 + 1 (two micro-batches), rank 1 had 2.
    EXPECT_TRUE(both.grad().equal(at::full({3, 2}, 4.0f)));
    ASSERT_TRUE(only1.grad().defined());  // rank 0 had none: it counts as zeros there
    EXPECT_TRUE(only1.grad().equal(at::arange(5, at::kFloat)));
    ASSERT_TRUE(early0.grad().defined());  // rank 1 had none
    EXPECT_TRUE(early0.grad().equal(at::full({4}, 2.0f)));
    EXPECT_FALSE(none.grad().defined());  // no rank had one: AdamW skips it, as in one process
  });
}

TEST(DistGradReducer, ARankWithoutABackwardPassStillJoinsEveryBucket) {
  if (!backend_available("gloo")) GTEST_SKIP() << "built without the gloo headers (Debian libgloo-dev)";
  on_two_ranks([](const std::shared_ptr<World>& w) {
    std::vector<at::Tensor> ps = make_layers();
    GradReducer reducer(w, ps, /*bucket_bytes=*/300);
    const std::vector<at::Tensor> g0 = local_gradients(ps, 0);
    // Two steps: the buffers are reused, and each step's sums are its own.
    for (int step = 0; step < 2; ++step) {
      for (auto& p : ps)
        p.mutable_grad() = at::Tensor();
      // Rank 0 runs its two micro-batches (the second armed); rank 1 had no rows this step: it only finishes.
      if (w->rank() == 0) {
        mlp_loss(ps, input(0, 0)).backward();
        at::Tensor loss = mlp_loss(ps, input(0, 1));
        reducer.arm(loss);
        loss.backward();
        EXPECT_EQ(reducer.launched(), reducer.buckets());
      }
      reducer.finish();
      EXPECT_EQ(reducer.last().during_backward, w->rank() == 0 ? reducer.buckets() : 0);
      for (size_t i = 0; i < ps.size(); ++i) {
        ASSERT_TRUE(ps[i].grad().defined()) << i;
        EXPECT_TRUE(at::allclose(ps[i].grad(), g0[i], 1e-6, 1e-7)) << "step " << step << ", parameter " << i;
      }
    }
  });
}

TEST(DistGradReducer, ArmingTwiceAndASecondReducerOnTheSameParametersAreErrors) {
  if (!backend_available("gloo")) GTEST_SKIP() << "built without the gloo headers (Debian libgloo-dev)";
  on_two_ranks([](const std::shared_ptr<World>& w) {
    at::Tensor p = at::ones({2}).requires_grad_();
    GradReducer reducer(w, {p}, 1 << 20);
    at::Tensor loss = (p * 3.0).sum();
    reducer.arm(loss);
    EXPECT_NE(test::error_of([&] { reducer.arm(loss); }).find("arm() twice without finish()"),
              std::string::npos);
    loss.backward();
    reducer.finish();
    EXPECT_TRUE(p.grad().equal(at::full({2}, 6.0f)));
    // A second reducer on the same parameters would replace the first one's hooks.
    EXPECT_NE(test::error_of([&] {
                GradReducer other(w, {p}, 1 << 20);
              }).find("already has a post-accumulation hook"),
              std::string::npos);
  });
}

TEST(DistGradReducer, OneProcessInstallsNothingAndChangesNothing) {
  auto w = std::make_shared<World>();
  std::vector<at::Tensor> ps = make_layers();
  GradReducer reducer(w, ps, 64);
  EXPECT_FALSE(reducer.active());
  EXPECT_EQ(reducer.buckets(), 0);
  for (const auto& p : ps)
    EXPECT_EQ(torch::autograd::impl::post_acc_grad_hooks(p), nullptr);
  mlp_loss(ps, input(0, 0)).backward();
  at::Tensor loss = mlp_loss(ps, input(0, 1));
  reducer.arm(loss);
  loss.backward();
  reducer.finish();
  const std::vector<at::Tensor> g = local_gradients(ps, 0);
  for (size_t i = 0; i < ps.size(); ++i)
    EXPECT_TRUE(ps[i].grad().equal(g[i])) << i;
}

TEST(DistGradReducer, HooksAreRemovedWithTheReducer) {
  if (!backend_available("gloo")) GTEST_SKIP() << "built without the gloo headers (Debian libgloo-dev)";
  on_two_ranks([](const std::shared_ptr<World>& w) {
    at::Tensor p = at::ones({2}).requires_grad_();
    {
      GradReducer reducer(w, {p}, 64);
      EXPECT_NE(torch::autograd::impl::post_acc_grad_hooks(p), nullptr);
    }
    EXPECT_EQ(torch::autograd::impl::post_acc_grad_hooks(p), nullptr);
    (p * 2.0).sum().backward();  // no hook left to call into the destroyed reducer
    EXPECT_TRUE(p.grad().equal(at::full({2}, 2.0f)));
  });
}

}  // namespace
}  // namespace aha::dist
