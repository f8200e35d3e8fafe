// Final-answer extraction and number normalisation, and the GSM8K references end to end.
#include "aha/reward/math.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <random>

#include "aha/io/jsonl.h"
#include "aha/reward/builtin.h"
#include "aha/reward/reward_set.h"

namespace {

using aha::reward::AnswerSource;
using aha::reward::parse_number;

TEST(MathAnswer, ExtractsTheLastBoxedOrAnswerTag) {
  EXPECT_EQ(aha::reward::last_boxed("so \\boxed{1} then \\boxed{\\frac{1}{2}}"), "\\frac{1}{2}");
  EXPECT_EQ(aha::reward::last_boxed("\\boxed {x}"), "x");
  EXPECT_FALSE(aha::reward::last_boxed("\\boxed{unclosed").has_value());
  EXPECT_EQ(aha::reward::extract_answer("<answer>7</answer> \\boxed{8}", AnswerSource::automatic), "7");
  EXPECT_EQ(aha::reward::extract_answer("<answer>so \\boxed{9}</answer>", AnswerSource::automatic), "9");
  EXPECT_EQ(aha::reward::extract_answer("\\boxed{8}", AnswerSource::automatic), "8");
  EXPECT_EQ(aha::reward::extract_answer("<answer>7</answer> \\boxed{8}", AnswerSource::boxed), "8");
  EXPECT_FALSE(aha::reward::extract_answer("\\boxed{8}", AnswerSource::answer_tag).has_value());
}

TEST(MathAnswer, NormalisesWhatPeopleWrite) {
  const std::vector<std::pair<std::string, double>> cases = {
      {"42", 42},
      {" -7 ", -7},
      {"+3", 3},
      {"1,000", 1000},
      {"1,234,567", 1234567},
      {"3.25", 3.25},
      {".5", 0.5},
      {"12.", 12},
      {"3/4", 0.75},
      {"-3/4", -0.75},
      {"\\frac{3}{4}", 0.75},
      {"\\dfrac{10}{4}", 2.5},
      {"-\\frac{1}{2}", -0.5},
      {"\\frac{\\frac{1}{2}}{2}", 0.25},
      {"50%", 50},
      {"50\\%", 50},
      {"$18", 18},
      {"\\$18.00", 18},
      {"18 dollars", 18},
      {"5 km", 5},
      {"12apples.", 12},
      {"$\\text{20}$", 20},
      {"\\(42\\)", 42},
      {"{7}", 7},
      {"\\boxed{64}", 64},
      {"\\mathrm{9}", 9},
  };
  for (const auto& [text, want] : cases) {
    const auto got = parse_number(text);
    ASSERT_TRUE(got.has_value()) << text;
    EXPECT_DOUBLE_EQ(*got, want) << text;
  }
  for (const std::string& bad :
       std::vector<std::string>{"", "abc", "1,00", "12 + 3", "3/0", "\\frac{1}{0}", "1.2.3", "--5", "x = 5",
                                "1e999", "\\frac{1}", "{1", std::string(5000, '9')})
    EXPECT_FALSE(parse_number(bad).has_value()) << bad;
  EXPECT_TRUE(aha::reward::numbers_match(0.1 + 0.2, 0.3, 1e-9));
  EXPECT_FALSE(aha::reward::numbers_match(1000, 1001, 1e-6));
}

TEST(MathAnswer, ParsesHostileInputQuicklyAndSafely) {
  std::mt19937 rng(7);
  const std::string alphabet = "0123456789,.-+/%${}\\fracboxedtx <>answer";
  for (int i = 0; i < 20000; ++i) {
    std::string s(rng() % 64, ' ');
    for (auto& c : s)
      c = alphabet[rng() % alphabet.size()];
    (void)parse_number(s);
    (void)aha::reward::extract_answer(s, AnswerSource::automatic);
  }
  const std::string deep = std::string(100000, '{') + "1" + std::string(100000, '}');
  EXPECT_FALSE(parse_number(deep).has_value());
  EXPECT_TRUE(aha::reward::last_boxed("\\boxed" + deep).has_value());
}

TEST(MathReward, AccuracyAndGsm8kScoreTheFinalAnswer) {
  aha::reward::Registry r;
  aha::reward::register_builtins(r);
  auto check = [&](const std::string& name, const std::string& completion, const aha::Json& fields) {
    aha::reward::Sample s;
    s.completion = completion;
    s.fields = &fields;
    const auto v = r.create(name, aha::Json::object())->score(s).value;
    return v ? *v : -1.0;
  };
  EXPECT_EQ(check("math_accuracy", "<answer>\\frac{1}{2}</answer>", {{"answer", "0.5"}}), 1);
  EXPECT_EQ(check("math_accuracy", "<answer>1/3</answer>", {{"answer", "0.5"}}), 0);
  EXPECT_EQ(check("math_accuracy", "no answer here", {{"answer", "0.5"}}), 0);
  EXPECT_EQ(check("math_accuracy", "<answer>2</answer>", {{"answer", "two"}}), -1);  // unparsable truth: skip
  EXPECT_EQ(check("gsm8k", "<answer>$1,080</answer>", {{"answer", "so 3*360 = 1080\n#### 1080"}}), 1);
  EXPECT_EQ(check("gsm8k", "<answer>1081</answer>", {{"answer", "#### 1080"}}), 0);
  EXPECT_EQ(check("gsm8k", "<answer>-2</answer>", {{"answer", "#### -2"}}), 1);
}

// Every GSM8K test reference parses; written in the R1-Zero layout with its own final number it scores 1 on
// format + gsm8k, and 0 on accuracy with a wrong number.
TEST(MathReward, EveryGsm8kReferenceScoresItself) {
  const std::string path = std::string(AHA_SOURCE_DIR) + "/../shared/data/gsm8k/test.jsonl";
  if (!std::filesystem::exists(path)) GTEST_SKIP() << "../shared/data/gsm8k not present next to the clone";
  aha::reward::Registry registry;
  aha::reward::register_builtins(registry);
  const aha::Config config =
      aha::parse_config(R"({"reward": {"functions": [{"name": "format"}, {"name": "gsm8k"}]}})", "test");
  const aha::reward::RewardSet rewards(config.reward.functions, registry);
  const auto records = aha::io::read_jsonl(path);
  ASSERT_EQ(records.size(), 1319u);
  std::vector<std::string> right, wrong;
  for (const auto& r : records) {
    const std::string solution = r.value["answer"].get<std::string>();
    const auto truth = aha::reward::gsm8k_reference(solution);
    ASSERT_TRUE(truth.has_value()) << "line " << r.line << ": " << solution;
    const std::string reasoning = solution.substr(0, solution.rfind("####"));
    const std::string number = solution.substr(solution.rfind("####") + 4);
    right.push_back("<think>\n" + reasoning + "\n</think>\n<answer>\n" + number + "\n</answer>");
    wrong.push_back("<think>\n" + reasoning + "\n</think>\n<answer>\n" + std::to_string(*truth + 1) +
                    "\n</answer>");
  }
  std::vector<aha::reward::Sample> good(records.size()), bad(records.size());
  for (size_t i = 0; i < records.size(); ++i) {
    good[i].completion = right[i];
    good[i].fields = &records[i].value;
    bad[i].completion = wrong[i];
    bad[i].fields = &records[i].value;
  }
  const auto g = rewards.score(good), b = rewards.score(bad);
  for (size_t i = 0; i < records.size(); ++i) {
    ASSERT_EQ(g.total[i], 2.0) << "line " << records[i].line << ": " << right[i];
    ASSERT_EQ(b.per_reward[1][i], 0.0) << "line " << records[i].line;
    ASSERT_EQ(b.per_reward[0][i], 1.0);
  }
}

}  // namespace
