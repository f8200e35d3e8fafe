// StepMetrics (rl/step_metrics.h): one process reduces to itself; three Gloo ranks (threads) get sums,
// maxima and every rank's list values in rank order (a rank with none included); ranks that recorded
// different names get an error naming the counts, not a hang.
#include "aha/rl/step_metrics.h"

#include <gtest/gtest.h>

#include <cmath>

#include "../support/error_of.h"
#include "../support/two_ranks.h"
#include "aha/dist/process_group.h"

namespace aha::rl {
namespace {

TEST(StepMetrics, OneProcessReducesToItself) {
  StepMetrics m;
  m.sum("tokens", 3);
  m.sum("tokens", 4);
  m.max("longest", 2);
  m.max("longest", 9);
  m.gather("rewards", {1.0, std::nan("")});
  m.gather("rewards", {0.5});
  dist::World one;
  m.reduce(one);
  EXPECT_EQ(m.total("tokens"), 7);
  EXPECT_EQ(m.largest("longest"), 9);
  ASSERT_EQ(m.all("rewards").size(), 3u);
  EXPECT_TRUE(std::isnan(m.all("rewards")[1]));
  EXPECT_NE(test::error_of([&] { m.total("missing"); }).find("no sum named missing"), std::string::npos);
}

TEST(StepMetrics, ThreeRanksSumTakeMaximaAndGatherInRankOrder) {
  if (!dist::backend_available("gloo")) GTEST_SKIP() << "built without the gloo headers (Debian libgloo-dev)";
  test::on_ranks(3, [](const std::shared_ptr<dist::World>& world) {
    const auto r = static_cast<double>(world->rank());
    StepMetrics m;
    m.sum("rows", 10 * r);
    m.max("seconds", r == 1 ? 5.0 : 1.0);
    // Rank 1 has no rewards at all; the others two and one.
    m.gather("rewards", r == 0   ? std::vector<double>{0.25, 0.5}
                        : r == 1 ? std::vector<double>{}
                                 : std::vector<double>{-1});
    m.gather("lengths", {r});
    m.reduce(*world);
    EXPECT_EQ(m.total("rows"), 30);
    EXPECT_EQ(m.largest("seconds"), 5);
    EXPECT_EQ(m.all("rewards"), (std::vector<double>{0.25, 0.5, -1}));
    EXPECT_EQ(m.all("lengths"), (std::vector<double>{0, 1, 2}));
    // A rank that records a figure the others do not: every rank learns it from reduce().
    StepMetrics odd;
    if (r == 2) odd.sum("extra", 1);
    odd.sum("rows", 1);
    EXPECT_NE(test::error_of([&] { odd.reduce(*world); }).find("different sets of figures (1 to 2"),
              std::string::npos);
  });
}

}  // namespace
}  // namespace aha::rl
