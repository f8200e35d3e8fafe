// The external-process reward: the Python example scores batches; a worker that crashes, hangs or prints
// garbage costs its batch the fallback score, a log line with the sample ids and a restart, and the run goes
// on.
#include "aha/reward/process.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include <unistd.h>

#include "../support/error_of.h"
#include "aha/core/config.h"
#include "aha/core/log.h"
#include "aha/reward/reward_set.h"

namespace {

using aha::Json;
using aha::reward::ProcessOptions;
using aha::reward::ProcessReward;
using aha::reward::Sample;
using aha::reward::Score;
using aha::test::error_of;
using ::testing::HasSubstr;

const std::string kWorker = std::string(AHA_TEST_DATA) + "/reward/worker.py";

ProcessOptions worker(double timeout_s = 10) {
  ProcessOptions o;
  o.argv = {"python3", kWorker};
  o.timeout_s = timeout_s;
  return o;
}

// Warnings go to a file for the test to read instead of the console; one file per test and process, since
// ctest runs tests in parallel.
struct LogCapture {
  std::string path =
      (std::filesystem::temp_directory_path() /
       ("aha_test_process_" + std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()) +
        "_" + std::to_string(getpid()) + ".log"))
          .string();
  aha::log::Level saved = aha::log::level();
  LogCapture() {
    std::filesystem::remove(path);
    aha::log::set_console(false);
    aha::log::set_level(aha::log::Level::info);
    aha::log::open_file(path);
  }
  ~LogCapture() {
    aha::log::close_file();
    std::filesystem::remove(path);
    aha::log::set_level(saved);
    aha::log::set_console(true);
  }
  std::string text() const {
    aha::log::flush();
    std::ifstream in(path);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
};

// Scores `texts` as one batch with ids first_id, first_id + 1, ...
std::vector<Score> batch(const ProcessReward& reward, const std::vector<std::string>& texts,
                         int64_t first_id = 0) {
  static const Json none = Json::object();
  std::vector<Sample> samples(texts.size());
  for (size_t i = 0; i < texts.size(); ++i) {
    samples[i].completion = texts[i];
    samples[i].fields = &none;
    samples[i].id = first_id + static_cast<int64_t>(i);
  }
  return reward.score_batch(samples);
}

double extra(const Score& s, const std::string& key) {
  for (const auto& [k, v] : s.extras)
    if (k == key) return v;
  return -1;
}

TEST(ProcessReward, ThePythonExampleScoresBatches) {
  ProcessOptions o;
  o.argv = {"python3", std::string(AHA_SOURCE_DIR) + "/examples/reward_process/reward.py"};
  o.timeout_s = 10;
  const ProcessReward reward(o);
  const Json truth = {{"answer", "1000"}}, none = Json::object();
  std::vector<Sample> samples(4);
  samples[0].completion = "<think>..</think><answer>1,000</answer>";
  samples[1].completion = "<answer>999</answer>";
  samples[2].completion = "<answer>5</answer> and then <answer>1000</answer>";
  samples[3].completion = "<answer>1000</answer>";
  for (auto& s : samples)
    s.fields = &truth;
  samples[3].fields = &none;
  const auto scores = reward.score_batch(samples);
  ASSERT_EQ(scores.size(), 4u);
  EXPECT_EQ(scores[0].value, 1.0);
  EXPECT_EQ(scores[1].value, 0.0);
  EXPECT_EQ(scores[2].value, 1.0);
  EXPECT_EQ(extra(scores[2], "answers"), 2.0);
  EXPECT_FALSE(scores[3].value.has_value());  // no ground truth: skipped
  EXPECT_FALSE(scores[0].failed);
  EXPECT_EQ(reward.restarts(), 0);
}

TEST(ProcessReward, SurvivesAWorkerThatCrashesHangsAndPrintsGarbage) {
  LogCapture log;
  const ProcessReward reward(worker(/*timeout_s=*/1.0));
  auto expect_failed = [&](const std::vector<Score>& scores) {
    for (const auto& s : scores) {
      EXPECT_TRUE(s.failed);
      EXPECT_FALSE(s.value.has_value());  // no fallback_score param: RewardSet puts in reward.fallback_score
      EXPECT_EQ(extra(s, "failed"), 1.0);
    }
  };
  auto ok = batch(reward, {"ab", "abc"});
  EXPECT_EQ(ok[0].value, 2.0);
  EXPECT_EQ(ok[1].value, 3.0);
  const double first_pid = extra(ok[0], "pid");

  expect_failed(batch(reward, {"x", "CRASH"}, 10));
  ok = batch(reward, {"abcd"});
  EXPECT_EQ(ok[0].value, 4.0);
  EXPECT_NE(extra(ok[0], "pid"), first_pid);  // a fresh worker

  const auto start = std::chrono::steady_clock::now();
  expect_failed(batch(reward, {"HANG"}, 20));
  const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_GE(waited, 1.0);
  EXPECT_LT(waited, 5.0);

  expect_failed(batch(reward, {"GARBAGE", "y"}, 30));
  expect_failed(batch(reward, {"SEGV"}, 40));
  expect_failed(batch(reward, {"COUNT"}, 50));
  expect_failed(batch(reward, {"TWICE"}, 60));
  expect_failed(batch(reward, {"WRONGTYPE"}, 70));
  EXPECT_EQ(reward.restarts(), 6);  // 7 workers killed; the next is started with the next batch

  // A stray line after a good answer: that answer stands, and the worker is replaced before the next batch.
  EXPECT_EQ(batch(reward, {"LATE"})[0].value, 4.0);
  std::this_thread::sleep_for(std::chrono::seconds(1));  // the stray line comes 10 ms after the answer
  ok = batch(reward, {"abcde"});
  EXPECT_EQ(ok[0].value, 5.0);
  EXPECT_FALSE(ok[0].failed);
  EXPECT_EQ(reward.restarts(), 8);

  const std::string text = log.text();
  EXPECT_THAT(text, HasSubstr("the worker exited with status 3; samples 10, 11 get the fallback score "
                              "reward.fallback_score; restarting the worker"));
  EXPECT_THAT(text, HasSubstr("the worker did not answer within 1 s; samples 20 get the fallback score"));
  EXPECT_THAT(text, HasSubstr("answered something that is not JSON: \"Traceback"));
  EXPECT_THAT(text, HasSubstr("samples 30, 31 get"));
  EXPECT_THAT(text, HasSubstr("the worker was killed by signal 11"));
  EXPECT_THAT(text, HasSubstr("answered 0 scores for 1 samples; samples 50"));
  EXPECT_THAT(text, HasSubstr("wrote more than one line"));
  EXPECT_THAT(text, HasSubstr("score 0 is a string, not a number or null"));
  EXPECT_THAT(text, HasSubstr("wrote output (or exited) between requests"));
}

TEST(ProcessReward, FallbackFromTheRewardOrTheSection) {
  aha::reward::Registry r;
  aha::reward::register_builtins(r);
  aha::reward::RewardSetOptions section;
  section.fallback_score = -1;
  section.functions = {{"process", 1.0, {{"argv", {"python3", kWorker}}}, ""},
                       {"process", 2.0, {{"argv", {"python3", kWorker}}, {"fallback_score", 0.25}}, ""},
                       {"format", 1.0, Json::object(), ""}};
  const aha::reward::RewardSet set(section, r);
  const Json none = Json::object();
  std::vector<Sample> samples(2);
  samples[0].completion = "<think>a</think><answer>b</answer>";
  samples[1].completion = "CRASH";
  for (auto& s : samples)
    s.fields = &none;
  aha::log::set_console(false);
  const auto scores = set.score(samples, 2);
  aha::log::set_console(true);
  // Both workers got the whole batch in one request, so the crash costs both samples.
  EXPECT_EQ(scores.per_reward[0], (std::vector<std::optional<double>>{-1.0, -1.0}));
  EXPECT_EQ(scores.per_reward[1], (std::vector<std::optional<double>>{0.25, 0.25}));
  EXPECT_EQ(scores.per_reward[2], (std::vector<std::optional<double>>{1.0, 0.0}));
  EXPECT_EQ(scores.failed, (std::vector<int64_t>{2, 2, 0}));
  EXPECT_EQ(scores.total[0], -1.0 + 0.5 + 1.0);
  // The next batch is scored by fresh workers.
  samples[1].completion = "ab";
  const auto again = set.score(samples, 2);
  EXPECT_EQ(again.per_reward[0][1], 2.0);
  EXPECT_EQ(again.failed, (std::vector<int64_t>{0, 0, 0}));
}

TEST(ProcessReward, ChunksBatchesAndServesThreadsOneAtATime) {
  ProcessOptions o = worker();
  o.batch_size = 3;
  const ProcessReward reward(o);
  std::vector<std::string> texts;
  for (int i = 0; i < 10; ++i)
    texts.push_back(std::string(static_cast<size_t>(i + 1), 'x'));
  const auto scores = batch(reward, texts);
  for (size_t i = 0; i < scores.size(); ++i) {
    EXPECT_EQ(scores[i].value, static_cast<double>(i + 1));
    EXPECT_EQ(extra(scores[i], "batch"), i < 9 ? 3.0 : 1.0);
  }
  std::vector<std::thread> threads;
  std::vector<int> wrong(4, 0);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int k = 0; k < 20; ++k) {
        const std::string text(static_cast<size_t>(t * 20 + k), 'y');
        Sample s;
        s.completion = text;
        if (reward.score(s).value != static_cast<double>(text.size())) ++wrong[static_cast<size_t>(t)];
      }
    });
  }
  for (auto& th : threads)
    th.join();
  EXPECT_EQ(wrong, std::vector<int>(4, 0));
  EXPECT_EQ(reward.restarts(), 0);
}

TEST(ProcessReward, ArgvIsPassedAsIsWithoutAShell) {
  ProcessOptions o = worker();
  const std::string marker =
      (std::filesystem::temp_directory_path() / ("aha_no_shell_marker_" + std::to_string(getpid()))).string();
  std::filesystem::remove(marker);
  o.argv.push_back("a b; touch " + marker);
  o.argv.push_back("$(touch " + marker + ")");
  const ProcessReward reward(o);
  const auto scores = batch(reward, {"abc"});
  EXPECT_EQ(extra(scores[0], "argc"), 3.0);  // the script and two arguments, unsplit
  EXPECT_FALSE(std::filesystem::exists(marker));
}

TEST(ProcessReward, AWorkerThatExitsAtOnceFailsEachBatchAndTheRunGoesOn) {
  LogCapture log;
  ProcessOptions o = worker();
  o.argv.push_back("--noread");
  o.fallback_score = -0.5;
  const ProcessReward reward(o);
  for (int round = 0; round < 3; ++round) {
    const auto scores = batch(reward, {"a", "b"}, 100 * round);
    EXPECT_EQ(scores[0].value, -0.5);
    EXPECT_TRUE(scores[1].failed);
  }
  EXPECT_THAT(log.text(),
              HasSubstr("the worker exited with status 5; samples 200, 201 get the fallback score -0.5"));
}

TEST(ProcessReward, ConfigErrors) {
  aha::reward::Registry r;
  aha::reward::register_builtins(r);
  EXPECT_THAT(error_of([&] { r.create("process", Json::object()); }),
              HasSubstr("reward process: params.argv: needs the worker's argv"));
  EXPECT_THAT(error_of([&] {
                r.create("process", {{"argv", "python3 reward.py"}});
              }),
              HasSubstr("params.argv: expected a list of strings"));
  EXPECT_THAT(error_of([&] {
                r.create("process", {{"argv", {"python3", 3}}});
              }),
              HasSubstr("params.argv[1]: expected a string"));
  EXPECT_THAT(error_of([&] {
                r.create("process", {{"argv", {"python3"}}, {"timeout_s", 0}});
              }),
              HasSubstr("params.timeout_s: must be > 0"));
  EXPECT_THAT(error_of([&] {
                r.create("process", {{"argv", {"python3"}}, {"batch_size", 1.5}});
              }),
              HasSubstr("params.batch_size"));
  EXPECT_THAT(error_of([&] {
                r.create("process", {{"argv", {"aha-no-such-program", "x"}}});
              }),
              HasSubstr("reward process [aha-no-such-program, x]: cannot start: No such file or directory"));
}

}  // namespace
