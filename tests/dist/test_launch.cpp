// aha launch's process handling, with shell commands as ranks: the variables each rank gets, a failing rank
// stopping the others with its exit code, a forwarded SIGTERM, and the option checks.
#include "aha/dist/launch.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <filesystem>
#include <thread>

#include "../support/error_of.h"
#include "../support/temp_dir.h"
#include "aha/io/file.h"

namespace aha::dist {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

fs::path temp_dir(const std::string& name) {
  return test::fresh_temp_dir(name);
}

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

TEST(DistLaunch, EveryRankGetsItsVariables) {
  const fs::path d = temp_dir("launch_vars");
  LaunchOptions o;
  o.nproc_per_node = 2;
  o.nnodes = 3;
  o.node_rank = 1;
  o.master_addr = "head";
  o.master_port = 23456;
  o.command = {
      "sh", "-c",
      "echo $RANK $WORLD_SIZE $LOCAL_RANK $LOCAL_WORLD_SIZE $GROUP_RANK $MASTER_ADDR $MASTER_PORT > " +
          d.string() + "/rank$RANK"};
  EXPECT_EQ(launch(o), 0);
  EXPECT_EQ(io::read_file((d / "rank2").string()), "2 6 0 2 1 head 23456\n");
  EXPECT_EQ(io::read_file((d / "rank3").string()), "3 6 1 2 1 head 23456\n");
  EXPECT_FALSE(fs::exists(d / "rank0"));
}

TEST(DistLaunch, OneNodePicksAFreePort) {
  const fs::path d = temp_dir("launch_port");
  LaunchOptions o;
  o.nproc_per_node = 1;
  o.command = {"sh", "-c", "echo $MASTER_PORT > " + d.string() + "/port"};
  EXPECT_EQ(launch(o), 0);
  const int port = std::stoi(io::read_file((d / "port").string()));
  EXPECT_GT(port, 0);
  EXPECT_NE(port, 29500);
}

TEST(DistLaunch, AFailingRankStopsTheOthersAndGivesItsExitCode) {
  LaunchOptions o;
  o.nproc_per_node = 3;
  o.grace_s = 2;
  o.command = {"sh", "-c", "if [ $RANK = 1 ]; then sleep 0.3; exit 3; fi; exec sleep 60"};
  const auto t0 = Clock::now();
  EXPECT_EQ(launch(o), 3);
  EXPECT_LT(seconds_since(t0), 10);  // the sleeping ranks were stopped, not waited for
}

TEST(DistLaunch, ARankThatIgnoresSigtermIsKilledAfterTheGracePeriod) {
  LaunchOptions o;
  o.nproc_per_node = 2;
  o.grace_s = 1;
  o.command = {"sh", "-c",
               "if [ $RANK = 0 ]; then sleep 0.3; exit 5; fi; trap '' TERM; while true; do sleep 0.1; done"};
  const auto t0 = Clock::now();
  EXPECT_EQ(launch(o), 5);
  EXPECT_LT(seconds_since(t0), 10);
}

TEST(DistLaunch, SigtermToTheLauncherReachesEveryRank) {
  const fs::path d = temp_dir("launch_signal");
  LaunchOptions o;
  o.nproc_per_node = 2;
  o.command = {"sh", "-c", "touch " + d.string() + "/up$RANK; exec sleep 60"};
  std::thread sender([&] {
    const auto t0 = Clock::now();
    while (!(fs::exists(d / "up0") && fs::exists(d / "up1")) && seconds_since(t0) < 20)
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    ::kill(::getpid(), SIGTERM);  // launch()'s handler is installed while it runs
  });
  const auto t0 = Clock::now();
  const int code = launch(o);
  sender.join();
  EXPECT_EQ(code, 128 + SIGTERM);
  EXPECT_LT(seconds_since(t0), 20);
}

TEST(DistLaunch, PrefixedOutputNamesTheRank) {
  const fs::path d = temp_dir("launch_prefix");
  LaunchOptions o;
  o.nproc_per_node = 2;
  o.prefix_output = true;
  // The launcher writes the prefixed lines to its stdout: send them to a file for the check.
  o.command = {"sh", "-c", "echo hello from $RANK; echo err $RANK >&2"};
  const int saved = ::dup(1);
  const std::string out = (d / "out").string();
  FILE* f = std::fopen(out.c_str(), "w");
  ::dup2(::fileno(f), 1);
  const int code = launch(o);
  std::fflush(stdout);
  ::dup2(saved, 1);
  ::close(saved);
  std::fclose(f);
  EXPECT_EQ(code, 0);
  const std::string text = io::read_file(out);
  EXPECT_NE(text.find("[rank 0] hello from 0\n"), std::string::npos) << text;
  EXPECT_NE(text.find("[rank 1] hello from 1\n"), std::string::npos) << text;
  EXPECT_NE(text.find("[rank 1] err 1\n"), std::string::npos) << text;
}

TEST(DistLaunch, BadOptionsAreRefusedBeforeAnyRankStarts) {
  LaunchOptions o;
  o.command = {"true"};
  o.nproc_per_node = 0;
  EXPECT_NE(test::error_of([&] { launch(o); }).find("--nproc-per-node must be at least 1"),
            std::string::npos);
  o.nproc_per_node = 1;
  o.nnodes = 2;
  o.node_rank = 2;
  EXPECT_NE(test::error_of([&] { launch(o); }).find("--node-rank 2 is outside 0..1"), std::string::npos);
  o.nnodes = 1;
  o.node_rank = 0;
  o.command.clear();
  EXPECT_NE(test::error_of([&] { launch(o); }).find("no command to launch"), std::string::npos);
  o.command = {"/nonexistent/program"};
  EXPECT_EQ(launch(o), 127);
}

}  // namespace
}  // namespace aha::dist
