// regex_match: search and full match over the completion, the answer or the chain of thought.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>

#include "../support/error_of.h"
#include "cases.h"

namespace {

using aha::Json;
using aha::test::check_cases;
using ::testing::HasSubstr;

TEST(RegexMatchReward, Cases) {
  size_t n = check_cases("regex_match", {{"pattern", "\\d+"}},
                         {
                             {"abc 123", 1},
                             {"abc", 0},
                             {"", 0},
                             {"-1.5", 1},
                             {std::string(1 << 20, 'x') + "7", 1},  // huge, the match at the very end
                         });
  n += check_cases("regex_match", {{"pattern", "^\\d+$"}}, {{"12\n34", 0}, {"1234", 1}, {"1234\n", 1}});
  n += check_cases("regex_match", {{"pattern", "\\d+"}, {"mode", "full"}},
                   {{"123", 1}, {"123 ", 0}, {"a123", 0}, {"12\n", 0}});
  // Full match means the whole text, whatever the alternation order (as Python's re.fullmatch).
  n += check_cases("regex_match", {{"pattern", "a|ab"}, {"mode", "full"}}, {{"ab", 1}, {"abc", 0}});
  n += check_cases("regex_match", {{"pattern", "^-?\\d+(\\.\\d+)?$"}, {"in", "answer"}},
                   {
                       {"<answer>-3.5</answer>", 1},
                       {"<answer>3.5 apples</answer>", 0},
                       {"-3.5", 0},  // no answer tag: miss
                       {"<answer>1</answer><answer>x</answer>", 0},
                       {"<answer>x</answer><answer>1,000</answer>", 0},
                       {"<answer>x</answer><answer>1000</answer>", 1},
                       {"<answer>1</answer", 0},  // malformed tag
                   });
  n += check_cases("regex_match", {{"pattern", "wait"}, {"in", "think"}, {"ignore_case", true}},
                   {
                       {"<think>Wait, let me re-check</think><answer>1</answer>", 1},
                       {"<think>ok</think><answer>wait</answer>", 0},
                       {"no think block, wait", 0},
                       {"<think>cut off while I wait", 1},
                       {"<think>a</think><think>wait</think>", 0},  // the first block only
                   });
  n += check_cases("regex_match", {{"pattern", "^\\s*<think>"}, {"prefix", "<think>"}}, {{"x", 1}});
  n += check_cases("regex_match", {{"pattern", "\\p{Han}"}, {"match_score", -1}, {"miss_score", 0.5}},
                   {{"中文", -1}, {"abc", 0.5}});
  n += check_cases("regex_match", {{"pattern", "^\\p{Cyrillic}+$"}}, {{"привет", 1}, {"privet", 0}});
  n += check_cases("regex_match", {{"pattern", "\\\\boxed\\{\\d+\\}"}},
                   {{"so \\boxed{42}", 1}, {"\\boxed{4x}", 0}});
  // Bytes that are not UTF-8 are matched as U+FFFD.
  n += check_cases("regex_match", {{"pattern", "abc"}},
                   {{"\xff\xfe"
                     "abc",
                     1}});
  n += check_cases("regex_match", {{"pattern", "\\x{FFFD}"}},
                   {{"a\xc3"
                     "b",
                     1},
                    {"ab", 0}});
  EXPECT_GE(n, 20u);
}

TEST(RegexMatchReward, NestedQuantifiersStopAtTheMatchLimit) {
  aha::reward::Registry r;
  aha::reward::register_builtins(r);
  const auto reward = r.create("regex_match", {{"pattern", "^(a|aa)+$"}});
  const std::string text = std::string(64, 'a') + "b";
  aha::reward::Sample s;
  s.completion = text;
  const auto start = std::chrono::steady_clock::now();
  const auto score = reward->score(s);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_EQ(score.value, 0.0);
  EXPECT_LT(seconds, 2.0);
  ASSERT_EQ(score.extras.size(), 1u);
  EXPECT_EQ(score.extras[0], (std::pair<std::string, double>{"limit", 1.0}));
}

TEST(RegexMatchReward, BadParamsAreErrors) {
  aha::reward::Registry r;
  aha::reward::register_builtins(r);
  using aha::test::error_of;
  EXPECT_THAT(error_of([&] { r.create("regex_match", Json::object()); }), HasSubstr("needs a pattern"));
  EXPECT_THAT(error_of([&] {
                r.create("regex_match", {{"pattern", "(a"}});
              }),
              HasSubstr("reward regex_match: params.pattern: regex /(a/ does not compile"));
  EXPECT_THAT(error_of([&] {
                r.create("regex_match", {{"pattern", "a"}, {"in", "prompt"}});
              }),
              HasSubstr("params.in"));
  EXPECT_THAT(error_of([&] {
                r.create("regex_match", {{"pattern", "a"}, {"mode", "fullmatch"}});
              }),
              HasSubstr("params.mode"));
  EXPECT_THAT(error_of([&] {
                r.create("regex_match", {{"pattern", 5}});
              }),
              HasSubstr("params.pattern: expected a string"));
}

}  // namespace
