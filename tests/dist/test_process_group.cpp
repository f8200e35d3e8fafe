// The c10d World: one process needs nothing; two ranks on Gloo (two threads of this process, localhost, a
// free port) sum, take maxima, gather and broadcast (gradient sums: test_grad_reducer.cpp); a rendezvous
// nobody answers fails within its timeout naming the address, port and rank.
#include "aha/dist/process_group.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <thread>

#include "../support/error_of.h"
#include "../support/two_ranks.h"
#include "aha/dist/launch.h"

namespace aha::dist {
namespace {

using test::on_two_ranks;
using test::two_ranks;

TEST(DistWorld, OneProcessNeedsNoStoreAndReturnsItsInput) {
  WorldSpec s;
  s.master_port = 1;  // nothing listens there; a world of one must not try
  auto w = World::connect(s, c10::Device(c10::kCPU));
  EXPECT_EQ(w->size(), 1);
  EXPECT_EQ(w->backend(), "none");
  EXPECT_TRUE(w->is_main());
  at::Tensor t = at::arange(3, at::kFloat);
  w->all_reduce(t);
  EXPECT_TRUE(t.equal(at::arange(3, at::kFloat)));
  size_t offset = 7;
  EXPECT_EQ(w->all_gather({1.5, 2.5}, &offset), (std::vector<double>{1.5, 2.5}));
  EXPECT_EQ(offset, 0u);
  w->barrier();
}

TEST(DistWorld, FourGlooRanksGatherScatterExchangeRowsAndSplit) {
  if (!backend_available("gloo")) GTEST_SKIP() << "built without the gloo headers (Debian libgloo-dev)";
  test::on_ranks(4, [](const std::shared_ptr<World>& world) {
    World& w = *world;
    const int64_t r = w.rank();
    // all_gather: rank order; reduce_scatter: sums, this rank's slice.
    at::Tensor out = at::empty({8}, at::kFloat);
    w.all_gather(at::full({2}, static_cast<double>(r), at::kFloat), out);
    EXPECT_TRUE(out.equal(at::tensor({0, 0, 1, 1, 2, 2, 3, 3}, at::kFloat)));
    at::Tensor mine = at::empty({2}, at::kFloat);
    w.reduce_scatter(at::arange(8, at::kFloat) * static_cast<double>(r + 1), mine);
    EXPECT_TRUE(mine.equal(at::arange(2 * r, 2 * r + 2, at::kFloat) * 10));  // (1 + 2 + 3 + 4) x index
    // all_to_all: rank r sends j + 1 rows of value 10 r + j to rank j (rows of width 3).
    std::vector<int64_t> send, recv;
    std::vector<at::Tensor> rows;
    for (int64_t j = 0; j < 4; ++j) {
      send.push_back(j + 1);
      recv.push_back(r + 1);
      rows.push_back(at::full({j + 1, 3}, static_cast<double>(10 * r + j), at::kFloat));
    }
    const at::Tensor got = w.all_to_all(at::cat(rows), send, recv);
    ASSERT_EQ(got.sizes(), (std::vector<int64_t>{4 * (r + 1), 3}));
    for (int64_t j = 0; j < 4; ++j)
      EXPECT_TRUE(got.slice(0, j * (r + 1), (j + 1) * (r + 1))
                      .eq(static_cast<double>(10 * j + r))
                      .all()
                      .item<bool>());
    EXPECT_NE(test::error_of([&] {
                w.all_to_all(at::zeros({1, 3}), send, recv);
              }).find("rows to send"),
              std::string::npos);
    // Split: {0, 2} and {1, 3}, ranked by their world ranks; a group of one needs no process group.
    auto pairs = w.split(r % 2, "pair");
    EXPECT_EQ(pairs->size(), 2);
    EXPECT_EQ(pairs->rank(), r / 2);
    EXPECT_EQ(pairs->global_rank(), r);
    EXPECT_EQ(pairs->all_reduce({static_cast<double>(r)}), (std::vector<double>{r % 2 == 0 ? 2.0 : 4.0}));
    auto alone = w.split(r, "alone");
    EXPECT_EQ(alone->size(), 1);
    EXPECT_EQ(alone->backend(), "none");
    EXPECT_EQ(alone->all_reduce({5.0}), (std::vector<double>{5.0}));
    w.barrier();
  });
}

TEST(DistWorld, TwoGlooRanksReduceGatherAndBroadcast) {
  if (!backend_available("gloo")) GTEST_SKIP() << "built without the gloo headers (Debian libgloo-dev)";
  on_two_ranks([](const std::shared_ptr<World>& world) {
    World& w = *world;
    const auto r = static_cast<double>(w.rank());
    EXPECT_EQ(w.backend(), "gloo");
    EXPECT_EQ(w.all_reduce({1.0 + r, 10.0 * r}), (std::vector<double>{3.0, 10.0}));
    EXPECT_EQ(w.all_reduce({1.0 + r, -r}, ReduceOp::max), (std::vector<double>{2.0, 0.0}));
    at::Tensor counts = at::full({2, 3}, w.rank() + 1, at::kLong);
    w.all_reduce(counts);
    EXPECT_TRUE(counts.equal(at::full({2, 3}, 3, at::kLong)));
    // Variable lengths (rank 1 gives nothing the second time), NaN passes through unchanged.
    size_t offset = 9;
    const std::vector<double> g =
        w.all_gather(r == 0 ? std::vector<double>{1, 2} : std::vector<double>{3}, &offset);
    EXPECT_EQ(g, (std::vector<double>{1, 2, 3}));
    EXPECT_EQ(offset, r == 0 ? 0u : 2u);
    const std::vector<double> h =
        w.all_gather(r == 0 ? std::vector<double>{std::nan(""), -0.5} : std::vector<double>{});
    ASSERT_EQ(h.size(), 2u);
    EXPECT_TRUE(std::isnan(h[0]));
    EXPECT_EQ(h[1], -0.5);
    // Broadcast over two buckets of different dtypes.
    at::Tensor a = at::full({4}, r, at::kFloat), b = at::full({2, 2}, 7 * r, at::kLong);
    w.broadcast({a, b}, 1, /*bucket_bytes=*/8);
    EXPECT_TRUE(a.equal(at::full({4}, 1, at::kFloat)));
    EXPECT_TRUE(b.equal(at::full({2, 2}, 7, at::kLong)));
    // Two sums in flight at once, waited together; a tensor off the comm device is refused before starting.
    EXPECT_EQ(w.comm_device(), c10::Device(c10::kCPU));
    at::Tensor x = at::full({3}, 1 + r, at::kFloat), y = at::full({2}, 10 * r, at::kDouble);
    std::vector<std::shared_ptr<World::Work>> works{w.all_reduce_async(x), w.all_reduce_async(y)};
    w.wait(works, "test");
    EXPECT_TRUE(x.equal(at::full({3}, 3, at::kFloat)));
    EXPECT_TRUE(y.equal(at::full({2}, 10, at::kDouble)));
    EXPECT_NE(test::error_of([&] {
                w.all_reduce_async(at::zeros({2, 2}).t());
              }).find("(not contiguous)"),
              std::string::npos);
    w.barrier();
  });
}

TEST(DistWorld, AnUnansweredRendezvousNamesAddressPortAndRank) {
  const int64_t port = free_port();
  WorldSpec s = two_ranks(1, port);  // rank 1 waits for a store rank 0 never starts
  s.timeout_s = 1;
  const auto t0 = std::chrono::steady_clock::now();
  const std::string e = test::error_of([&] { World::connect(s, c10::Device(c10::kCPU)); });
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_NE(e.find("rendezvous failed: rank 1 of 2"), std::string::npos) << e;
  EXPECT_NE(e.find("127.0.0.1:" + std::to_string(port)), std::string::npos) << e;
  EXPECT_NE(e.find("within 1 s"), std::string::npos) << e;
  EXPECT_LT(seconds, 15);
}

TEST(DistWorld, NcclNeedsACudaDevice) {
  WorldSpec s = two_ranks(0, free_port());
  s.backend = "nccl";
  const std::string e = test::error_of([&] { World::connect(s, c10::Device(c10::kCPU)); });
  EXPECT_NE(e.find("NCCL needs a CUDA device"), std::string::npos) << e;
}

}  // namespace
}  // namespace aha::dist
