// length_penalty: Kimi k1.5's group-relative length reward, and the linear form.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "../support/error_of.h"
#include "aha/core/config.h"
#include "aha/reward/reward_set.h"
#include "cases.h"

namespace {

using aha::Json;
using aha::reward::Sample;
using ::testing::HasSubstr;

std::unique_ptr<aha::reward::Reward> make(const Json& params) {
  aha::reward::Registry r;
  aha::reward::register_builtins(r);
  return r.create("length_penalty", params);
}

struct Row {
  std::string prompt, completion;
  int64_t tokens;
  std::optional<double> want;
};

// Scores the rows as one batch and checks each; returns the number of rows.
size_t check_batch(const Json& params, const std::vector<Row>& rows, const Json& fields = Json::object()) {
  const auto reward = make(params);
  EXPECT_TRUE(reward->batched() == (params.value("mode", "kimi") == "kimi"));
  std::vector<Sample> batch(rows.size());
  for (size_t i = 0; i < rows.size(); ++i) {
    batch[i].prompt = rows[i].prompt;
    batch[i].completion = rows[i].completion;
    batch[i].completion_tokens = rows[i].tokens;
    batch[i].fields = &fields;
  }
  const auto scores = reward->score_batch(batch);
  for (size_t i = 0; i < rows.size(); ++i) {
    SCOPED_TRACE(params.dump() + " row " + std::to_string(i));
    EXPECT_EQ(scores[i].value.has_value(), rows[i].want.has_value());
    if (rows[i].want && scores[i].value) {
      EXPECT_NEAR(*scores[i].value, *rows[i].want, 1e-12);
    }
  }
  return rows.size();
}

TEST(LengthPenaltyReward, KimiIsRelativeToTheGroup) {
  size_t n = check_batch(Json::object(), {{"p", "", 10, 0.5}, {"p", "", 20, 0.0}, {"p", "", 30, -0.5}});
  // Two prompts in one batch are two groups; equal lengths give 0; a group of one gives 0.
  n += check_batch(Json::object(), {{"a", "", 10, 0.0},
                                    {"b", "", 5, 0.5},
                                    {"a", "", 10, 0.0},
                                    {"b", "", 15, -0.5},
                                    {"c", "", 99, 0.0},
                                    {"b", "", 10, 0.0}});
  n += check_batch(Json::object(), {{"p", "", 0, 0.5}, {"p", "", 1000000, -0.5}, {"p", "", 250000, 0.25}});
  // Correctness from a judge: a wrong answer never gains from being short (min(0, lambda)).
  const Json judged = {{"accuracy", {{"name", "math_accuracy"}}}};
  n += check_batch(judged,
                   {{"q", "<answer>4</answer>", 10, 0.5},
                    {"q", "<answer>5</answer>", 10, 0.0},
                    {"q", "<answer>4</answer>", 20, 0.0},
                    {"q", "<answer>4</answer>", 30, -0.5},
                    {"q", "<answer>5</answer>", 30, -0.5},
                    {"q", "no answer", 15, 0.0}},
                   {{"answer", "4"}});
  n += check_batch(judged, {{"q", "<answer>4</answer>", 10, std::nullopt}}, Json::object());  // judge skips
  // A lower threshold: a format judge's 1 counts as correct, 0 does not.
  n += check_batch(
      {{"accuracy", {{"name", "format"}}}, {"threshold", 0.5}},
      {{"q", "<think>a</think><answer>1</answer>", 5, 0.5}, {"q", "plain", 10, 0.0}, {"q", "x", 20, -0.5}});
  // Characters instead of tokens: code points, so three Han characters are 3.
  n += check_batch(
      {{"unit", "chars"}},
      {{"p", "abc", 0, 0.0}, {"p", "abcdef", 0, -0.5}, {"p", "中文字", 0, 0.0}, {"p", "", 0, 0.5}});
  EXPECT_GE(n, 20u);
  // Scored alone, a sample is its own group.
  Sample s;
  s.completion_tokens = 500;
  EXPECT_EQ(make(Json::object())->score(s).value, 0.0);
}

TEST(LengthPenaltyReward, LinearPastTheTarget) {
  std::vector<aha::test::RewardCase> cases;
  for (const auto& [tokens, want] : std::vector<std::pair<int64_t, double>>{
           {0, 0}, {50, 0}, {100, 0}, {101, -0.01}, {150, -0.5}, {200, -1}, {1000, -1}})
    cases.push_back({"", want, Json::object(), tokens});
  size_t n =
      aha::test::check_cases("length_penalty", {{"mode", "linear"}, {"target", 100}, {"slope", 0.01}}, cases);
  n += aha::test::check_cases("length_penalty",
                              {{"mode", "linear"}, {"target", 100}, {"slope", 0.01}, {"floor", -0.3}},
                              {{"", -0.3, Json::object(), 200}, {"", -0.2, Json::object(), 120}});
  n += aha::test::check_cases("length_penalty", {{"mode", "linear"}, {"target", 0}, {"slope", 0}},
                              {{"", 0, Json::object(), 1 << 30}});
  n += aha::test::check_cases("length_penalty",
                              {{"mode", "linear"}, {"target", 3}, {"slope", 0.5}, {"unit", "chars"}},
                              {{"ab", 0}, {"abcd", -0.5}, {"ünï", 0}, {"", 0}});
  EXPECT_GE(n, 14u);
}

TEST(LengthPenaltyReward, RewardSetGivesItTheWholeBatch) {
  aha::reward::Registry r;
  aha::reward::register_builtins(r);
  const aha::Config config = aha::parse_config(
      R"({"reward": {"functions": [{"name": "format"}, {"name": "length_penalty", "weight": 0.5}]}})",
      "test");
  const aha::reward::RewardSet set(config.reward.functions, r);
  std::vector<std::string> prompts(40);
  std::vector<Sample> samples(40);
  for (size_t i = 0; i < samples.size(); ++i) {
    prompts[i] = "prompt " + std::to_string(i % 4);
    samples[i].prompt = prompts[i];
    samples[i].completion = "<think>x</think><answer>1</answer>";
    samples[i].completion_tokens = static_cast<int64_t>(10 + i);  // group g: 10 + g, 14 + g, ..., 46 + g
  }
  for (int threads : {1, 4}) {
    const auto scores = set.score(samples, threads);
    EXPECT_EQ(scores.per_reward[1][0], 0.5);    // the shortest of group 0
    EXPECT_EQ(scores.per_reward[1][39], -0.5);  // the longest of group 3
    EXPECT_EQ(scores.total[0], 1.25);
  }
}

TEST(LengthPenaltyReward, BadParamsAreErrors) {
  using aha::test::error_of;
  EXPECT_THAT(error_of([] {
                make({{"mode", "linear"}, {"target", 10}});
              }),
              HasSubstr("needs target and slope"));
  EXPECT_THAT(error_of([] { make({{"target", 10}}); }), HasSubstr("params.target: only for mode \"linear\""));
  EXPECT_THAT(error_of([] {
                make({{"accuracy", "math_accuracy"}});
              }),
              HasSubstr("params.accuracy: expected"));
  EXPECT_THAT(error_of([] {
                make({{"accuracy", {{"name", "acc"}}}});
              }),
              HasSubstr("params.accuracy: unknown reward \"acc\""));
  EXPECT_THAT(error_of([] { make({{"unit", "bytes"}}); }), HasSubstr("params.unit"));
  EXPECT_THAT(error_of([] {
                make({{"mode", "linear"}, {"target", 10}, {"slope", -1}});
              }),
              HasSubstr("params.slope"));
}

}  // namespace
