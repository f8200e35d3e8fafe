#include "aha/reward/countdown.h"

#include <gtest/gtest.h>

#include <random>

#include "aha/reward/builtin.h"
#include "aha/reward/reward.h"

namespace {

TEST(CountdownParser, EvaluatesWithPrecedenceAndListsTheNumbers) {
  auto v = aha::reward::parse_expression("(95 - 19) / 4 + 3 * 2");
  ASSERT_TRUE(v.has_value());
  EXPECT_DOUBLE_EQ(v->value, 25.0);
  EXPECT_EQ(v->numbers, (std::vector<int64_t>{95, 19, 4, 3, 2}));
  EXPECT_DOUBLE_EQ(aha::reward::parse_expression("-(2 - 5)*-1")->value, -3.0);
  EXPECT_DOUBLE_EQ(aha::reward::parse_expression(" 7/2 ")->value, 3.5);
  for (const char* bad : {"", "2 +", "(1 + 2", "1 + 2)", "2 ** 3", "1/0", "1/(2-2)", "x + 1",
                          "__import__('os')", "1e3", "1.5 + 1", "2 ^ 3", "12345678901234567890"})
    EXPECT_FALSE(aha::reward::parse_expression(bad).has_value()) << bad;
  EXPECT_FALSE(
      aha::reward::parse_expression(std::string(500, '(') + "1" + std::string(500, ')')).has_value());
  std::mt19937 rng(5);
  const std::string alphabet = "0123456789+-*/() ";
  for (int i = 0; i < 20000; ++i) {
    std::string s(rng() % 40, ' ');
    for (auto& c : s)
      c = alphabet[rng() % alphabet.size()];
    (void)aha::reward::parse_expression(s);
  }
}

TEST(CountdownReward, ScoresLikeTinyZero) {
  aha::reward::Registry r;
  aha::reward::register_builtins(r);
  const auto reward = r.create("countdown", aha::Json::object());
  const aha::Json fields = {{"numbers", {44, 19, 35}}, {"target", 98}};
  auto score = [&](std::string_view completion) {
    aha::reward::Sample s;
    s.completion = completion;
    s.fields = &fields;
    return *reward->score(s).value;
  };
  EXPECT_EQ(score("<think>44+19+35=98</think><answer>44 + 19 + 35</answer>"), 1.0);
  EXPECT_EQ(score("<answer>(44 - 35) * 19 - 73</answer>"), 0.1);              // 73 is not given
  EXPECT_EQ(score("<answer>44 + 19 + 35 + 0</answer>"), 0.1);                 // an extra number
  EXPECT_EQ(score("<answer>44 + 19</answer>"), 0.1);                          // a number unused
  EXPECT_EQ(score("<answer>44 + 19 - 35</answer>"), 0.1);                     // all numbers, wrong value
  EXPECT_EQ(score("<answer>44 + 19 + 35 = 98</answer>"), 0.1);                // not an expression
  EXPECT_EQ(score("44 + 19 + 35"), 0.0);                                      // no answer tag
  EXPECT_EQ(score("<answer>1</answer> <answer>35 + 19 + 44</answer>"), 1.0);  // the last answer counts
  aha::reward::Sample missing;
  missing.completion = "<answer>1</answer>";
  EXPECT_FALSE(reward->score(missing).value.has_value());
}

}  // namespace
