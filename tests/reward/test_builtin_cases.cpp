// At least 20 cases for each of the first built-ins, the tricky ones included: answers in several places,
// nested braces, negative and fractional numbers, 1,000 vs 1000, malformed tags, empty and huge completions.
#include <gtest/gtest.h>

#include "cases.h"

namespace {

using aha::Json;
using aha::test::check_cases;
using aha::test::RewardCase;

const std::string kHuge(1 << 20, 'x');  // a 1 MiB chain of thought

TEST(RewardCases, Format) {
  size_t n =
      check_cases("format", Json::object(),
                  {
                      {"", 0},
                      {"<think></think><answer></answer>", 1},
                      {"<think>a</think>\n<answer>4</answer>", 1},
                      {"\n\n<think>a</think><answer>4</answer>\n\n", 1},
                      {"<think>a</think>\t\r\n<answer>4</answer>", 1},
                      {"<think>" + kHuge + "</think><answer>4</answer>", 1},
                      {"<think>计算 2+2</think><answer>四</answer>", 1},
                      {"<think>a</think><answer>4</answer>.", 0},
                      {"text <think>a</think><answer>4</answer>", 0},
                      {"<Think>a</Think><answer>4</answer>", 0},
                      {"< think>a</think><answer>4</answer>", 0},
                      {"<think>a<think>b</think><answer>4</answer>", 0},
                      {"<think>a</think><answer>4</answer></answer>", 0},
                      {"</think><think>a<answer>4</answer>", 0},
                      {"<think>a<answer>4</answer></think>", 0},
                      {"<think>a</think>", 0},
                      {"<answer>4</answer>", 0},
                      {"<think>a</think><answer>4</answer\n>", 0},
                      {"<think>a</think><answer>4</answer><think>b</think>", 0},
                      {"<think>a</think>\u00a0<answer>4</answer>", 0},  // no-break space is not whitespace
                      {"<think>" + kHuge, 0},                           // cut off while thinking
                  });
  n += check_cases("format", {{"mode", "strict"}},
                   {
                       {"<think>\na\n</think>\n<answer>\n4\n</answer>", 1},
                       {"<think>\nmulti\nline\n</think>\n<answer>\n4\n</answer>", 1},
                       {"<think>\n\n</think>\n<answer>\n\n</answer>", 1},
                       {"<think>\r\na\r\n</think>\r\n<answer>\r\n4\r\n</answer>", 0},
                       {"<think>\na\n</think>\n<answer>\n4\n</answer>\n", 0},
                       {"<think>\na\n</think>\n\n<answer>\n4\n</answer>", 0},
                       {"<think>\na\n</think>\n<answer>\n4\n</answer><answer>\n5\n</answer>", 0},
                       {"", 0},
                   });
  n += check_cases("format", {{"prefix", "<think>"}},
                   {{" a</think><answer>4</answer>", 1}, {"<think>a</think>", 0}});
  EXPECT_GE(n, 20u);
}

TEST(RewardCases, TagCount) {
  const size_t n =
      check_cases("tag_count", Json::object(),
                  {
                      {"", 0},
                      {"<think>\nx\n</think>\n<answer>\n4\n</answer>", 1},
                      {"<think>\nx\n</think>\n<answer>\n4\n</answer>\n", 1},
                      {"<think>\n x \n</think>\n<answer>\n 4 \n</answer>", 1},
                      {"<think>\n" + kHuge + "\n</think>\n<answer>\n4\n</answer>", 1},
                      {"思考<think>\n中文\n</think>\n<answer>\n四\n</answer>", 1},
                      {"<think>x</think><answer>4</answer>", 0},
                      {"<think>\nx</think><answer>4</answer>", 0.25},
                      {"<think>\n\n</think>\n", 0.5},
                      {"<think>\n</think>\n", 0.5},  // the newline serves both tags
                      {"<think>\nx\n</think>\n<think>\ny\n</think>\n<answer>\n4\n</answer>", 0.5},
                      {"\n<answer>\n4\n</answer>", 0.5},
                      {"<answer>\n4\n</answer>", 0.25},
                      {"\n</answer>\n</answer>", 0},
                      {"<THINK>\nx\n</THINK>\n", 0},
                      {"<think>\r\nx\r\n</think>\r\n", 0},
                      {"<think>\nx\n</think>\n<answer>\n", 0.75},  // cut off
                      {"\n</think>\n", 0.25},
                      {"<think>\n<think>\n", 0},
                      {"<think>\nx\n</think>\n<answer>\n4\n</answer>\n<answer>\n5\n</answer>", 0.5},
                      {"<think >\nx\n</think>\n", 0.25},
                  });
  EXPECT_GE(
      n + check_cases("tag_count", {{"prefix", "<think>\n"}}, {{"x\n</think>\n<answer>\n4\n</answer>", 1}}),
      20u);
}

TEST(RewardCases, ExactMatch) {
  const Json paris = {{"answer", "Paris"}};
  size_t n = check_cases("exact_match", Json::object(),
                         {
                             {"<answer>Paris</answer>", 1, paris},
                             {"<answer>\n Paris \n</answer>", 1, paris},
                             {"<answer>Paris.</answer>", 0, paris},
                             {"<answer>paris</answer>", 0, paris},
                             {"<answer>Lyon</answer><answer>Paris</answer>", 1, paris},
                             {"<answer>Paris</answer><answer>Lyon</answer>", 0, paris},
                             {"<answer>Paris", 0, paris},
                             {"Paris</answer>", 0, paris},
                             {"", 0, paris},
                             {"<answer></answer>", 0, paris},
                             {"<answer><answer>Paris</answer>", 1, paris},
                             {"<answer>Paris</answer >", 0, paris},
                             {"<answer>1,000</answer>", 0, {{"answer", 1000}}},  // text, not numbers
                             {"<answer>1000</answer>", 1, {{"answer", 1000}}},
                             {"<answer>-3.5</answer>", 1, {{"answer", -3.5}}},
                             {"<answer>  spaced</answer>", 1, {{"answer", "  spaced  "}}},
                             {"<answer>x</answer>", std::nullopt, Json::object()},
                             {"<answer>x</answer>", std::nullopt, {{"answer", nullptr}}},
                             {"<answer>\\frac{1}{2}</answer>", 1, {{"answer", "\\frac{1}{2}"}}},
                             {"<answer>北京</answer>", 1, {{"answer", "北京"}}},
                             {"<answer>" + kHuge + "</answer>", 0, {{"answer", "x"}}},
                             {"<answer>true</answer>", 1, {{"answer", true}}},
                         });
  n += check_cases("exact_match", {{"ignore_case", true}},
                   {{"<answer>PARIS</answer>", 1, paris}, {"<answer>ÉTÉ</answer>", 0, {{"answer", "été"}}}});
  n += check_cases("exact_match", {{"extract", "none"}},
                   {{" Paris\n", 1, paris}, {"<answer>Paris</answer>", 0, paris}});
  EXPECT_GE(n, 20u);
}

TEST(RewardCases, Overlong) {
  std::vector<RewardCase> cases;
  for (const auto& [tokens, want] : std::vector<std::pair<int64_t, double>>{{0, 0},
                                                                            {1, 0},
                                                                            {79, 0},
                                                                            {80, 0},
                                                                            {81, -0.05},
                                                                            {85, -0.25},
                                                                            {90, -0.5},
                                                                            {99, -0.95},
                                                                            {100, -1},
                                                                            {101, -1},
                                                                            {1000000000, -1},
                                                                            {-5, 0}})
    cases.push_back({"", want, Json::object(), tokens});
  size_t n = check_cases("overlong", {{"max_length", 100}, {"cache", 20}}, cases);
  n += check_cases("overlong", {{"max_length", 1}, {"cache", 1}},
                   {{"", 0, Json::object(), 0}, {"", -1, Json::object(), 1}, {"", -1, Json::object(), 2}});
  n += check_cases("overlong", {{"max_length", 10}, {"cache", 10}},
                   {{"", 0, Json::object(), 0}, {"", -0.5, Json::object(), 5}, {"", -1, Json::object(), 10}});
  // The text does not count, only the tokens: a huge completion of few tokens is not punished.
  n += check_cases("overlong", {{"max_length", 100}, {"cache", 20}},
                   {{kHuge, 0, Json::object(), 50}, {"", -0.75, Json::object(), 95}});
  n += check_cases("overlong", {{"max_length", 4096}, {"cache", 512}},
                   {{"", 0, Json::object(), 3584}, {"", -0.5, Json::object(), 3840}});
  EXPECT_GE(n, 20u);
}

TEST(RewardCases, MathAccuracy) {
  auto truth = [](const char* a) { return Json{{"answer", a}}; };
  size_t n =
      check_cases("math_accuracy", Json::object(),
                  {
                      {"<answer>42</answer>", 1, truth("42")},
                      {"<answer>1,000</answer>", 1, truth("1000")},
                      {"<answer>1000</answer>", 1, truth("1,000")},
                      {"<answer>1,00</answer>", 0, truth("100")},  // not a thousands separator
                      {"<answer>-7</answer>", 1, truth("-7")},
                      {"<answer>7</answer>", 0, truth("-7")},
                      {"<answer>-0</answer>", 1, truth("0")},
                      {"<answer>\\frac{3}{4}</answer>", 1, truth("0.75")},
                      {"<answer>3/4</answer>", 1, truth("\\frac{3}{4}")},
                      {"<answer>-\\dfrac{1}{2}</answer>", 1, truth("-0.5")},
                      {"\\boxed{\\frac{1}{\\frac{1}{2}}}", 1, truth("2")},  // nested braces
                      {"\\boxed{{6}}", 1, truth("6")},
                      {"The answer is \\boxed{5}. Wait, \\boxed{6}", 1, truth("6")},  // the last box
                      {"<answer>5</answer> but \\boxed{6}", 0, truth("6")},           // the answer tag wins
                      {"<answer>so \\boxed{6}</answer>", 1, truth("6")},
                      {"<answer>\\boxed{7}\\boxed{8}</answer>", 1, truth("8")},
                      {"\\boxed{\\frac{\\sqrt{2}}{2}}", 0, truth("0.5")},  // an expression, not a number
                      {"\\boxed{\\sqrt{4}}", 0, truth("4")},               // not read as 4
                      {"", 0, truth("1")},
                      {"<answer></answer>", 0, truth("1")},
                      {"<answer>50%</answer>", 1, truth("50")},
                      {"<answer>$18.00</answer>", 1, truth("18")},
                      {"<answer>12 apples</answer>", 1, truth("12")},
                      {"<answer>x = 5</answer>", 0, truth("5")},
                      {"<answer>1e3</answer>", 0, truth("1000")},
                      {"<answer>1000001</answer>", 0, truth("1000000")},
                      {"<answer>0.333333</answer>", 0, truth("1/3")},
                      {"<answer>" + std::string(5000, '9') + "</answer>", 0, truth("9")},
                      {"<answer>2</answer>", std::nullopt, truth("two")},  // an unparsable reference: skip
                      {"<answer>2</answer>", std::nullopt, Json::object()},
                      {"<answer>2.5</answer>", 1, {{"answer", 2.5}}},  // a numeric field
                  });
  n += check_cases("math_accuracy", {{"tolerance", 1e-5}}, {{"<answer>0.333333</answer>", 1, truth("1/3")}});
  n +=
      check_cases("math_accuracy", {{"source", "boxed"}}, {{"<answer>5</answer> \\boxed{6}", 0, truth("5")}});
  n += check_cases("math_accuracy", {{"source", "answer_tag"}}, {{"\\boxed{5}", 0, truth("5")}});
  n +=
      check_cases("math_accuracy", {{"field", "solution"}}, {{"<answer>9</answer>", 1, {{"solution", "9"}}}});
  EXPECT_GE(n, 20u);
}

TEST(RewardCases, Gsm8k) {
  auto ref = [](const char* a) { return Json{{"answer", a}}; };
  const size_t n = check_cases(
      "gsm8k", Json::object(),
      {
          {"<answer>72</answer>", 1, ref("Natalia sold 48/2 = 24 clips in May.\n48+24 = 72\n#### 72")},
          {"<answer>72</answer>", 0, ref("#### 71")},
          {"<answer>1,080</answer>", 1, ref("#### 1080")},
          {"<answer>1080</answer>", 1, ref("#### 1,080")},
          {"<answer>-3</answer>", 1, ref("#### -3")},
          {"<answer>0.5</answer>", 1, ref("#### .5")},
          {"<answer>5</answer>", std::nullopt, ref("no hashes")},
          {"<answer>5</answer>", std::nullopt, ref("#### five")},
          {"<answer>5</answer>", std::nullopt, Json::object()},
          {"<answer>18</answer>", std::nullopt, {{"answer", 18}}},  // a bare number is no solution
          {"", 0, ref("#### 5")},
          {"\\boxed{5}", 1, ref("#### 5")},
          {"<answer>$5</answer>", 1, ref("#### 5")},
          {"<answer>5</answer>", 1, ref("#### 3 #### 5")},
          {"<answer>10</answer>", 1, ref("a\n#### 10\n")},
          {"<answer>10.0</answer>", 1, ref("#### 10")},
          {"<answer>10.01</answer>", 0, ref("#### 10")},
          {"<answer>10</answer><answer>11</answer>", 0, ref("#### 10")},
          {"<answer>  18  </answer>", 1, ref("#### 18")},
          {"<answer>18 dollars</answer>", 1, ref("#### 18")},
          {"<answer>\\frac{36}{2}</answer>", 1, ref("#### 18")},
          {"<answer>" + kHuge + "</answer>", 0, ref("#### 18")},
      });
  EXPECT_GE(n, 20u);
}

TEST(RewardCases, Countdown) {
  const Json f = {{"numbers", {44, 19, 35}}, {"target", 98}};
  size_t n = check_cases(
      "countdown", Json::object(),
      {
          {"<answer>44 + 19 + 35</answer>", 1, f},
          {"<answer>(44 + 19) + 35</answer>", 1, f},
          {"<answer> 35+44+19 </answer>", 1, f},
          {"<answer>((44 + 19) + 35)</answer>", 1, f},
          {"<answer>44 + 19 + 35\n</answer>", 1, f},
          {"<answer>-(-44) + 19 + 35</answer>", 1, f},
          {"<answer>44 + 19 + 35</answer> then <answer>1</answer>", 0.1, f},  // the last answer counts
          {"", 0, f},
          {"<answer>44 + 19 + 35", 0, f},
          {"<answer></answer>", 0.1, f},
          {"<answer>44+19+35+0</answer>", 0.1, f},
          {"<answer>44 * 19 / 35</answer>", 0.1, f},
          {"<answer>44 + 19 + 35 = 98</answer>", 0.1, f},
          {"<answer>44.0 + 19 + 35</answer>", 0.1, f},
          {"<answer>4 4 + 19 + 35</answer>", 0.1, f},
          {"<answer>44 ** 19</answer>", 0.1, f},
          {"<answer>" + std::string(100, '(') + "44+19+35" + std::string(100, ')') + "</answer>", 0.1, f},
          {"<answer>" + std::string(2000, ' ') + "44+19+35</answer>", 0.1, f},  // over 1000 characters
          {"<answer>44 + 19 + 35</answer>", 1, {{"numbers", {44, 19, 35}}, {"target", 98.000001}}},
          {"<answer>44 + 19 + 35</answer>", 0.1, {{"numbers", {44, 19, 35}}, {"target", 98.0001}}},
          {"<answer>1 + 2 + 1</answer>", 1, {{"numbers", {1, 1, 2}}, {"target", 4}}},
          {"<answer>2 + 2</answer>", 0.1, {{"numbers", {1, 1, 2}}, {"target", 4}}},  // a multiset
          {"<answer>7 / 2</answer>", 1, {{"numbers", {7, 2}}, {"target", 3.5}}},     // fractional
          {"<answer>2 - 7</answer>", 1, {{"numbers", {7, 2}}, {"target", -5}}},      // negative
          {"<answer>44 + 19 + 35</answer>", std::nullopt, {{"target", 98}}},
          {"<answer>44 + 19 + 35</answer>", std::nullopt, {{"numbers", {44, 19, 35}}, {"target", "98"}}},
      });
  n += check_cases("countdown", {{"format_score", 0}, {"score", 2}},
                   {{"<answer>44 + 19 + 35</answer>", 2, f}, {"<answer>44 + 19</answer>", 0, f}});
  EXPECT_GE(n, 20u);
}

}  // namespace
