// The reward API: registry, parameters, the weighted reward set, and the first built-ins.
#include "../support/error_of.h"
#include "aha/reward/reward.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "aha/reward/builtin.h"
#include "aha/reward/reward_set.h"

using ::testing::HasSubstr;

namespace {

aha::reward::Registry builtins() {
  aha::reward::Registry r;
  aha::reward::register_builtins(r);
  return r;
}

double score(const std::string& name, const aha::Json& params, std::string_view completion,
             const aha::Json& fields = aha::Json::object()) {
  const auto reward = builtins().create(name, params);
  aha::reward::Sample s;
  s.completion = completion;
  s.fields = &fields;
  const auto v = reward->score(s).value;
  return v ? *v : -1;  // -1 marks "skip" in these tests
}

using aha::test::error_of;

TEST(RewardFormat, StrictIsOpenR1sExactLayout) {
  const aha::Json strict = {{"mode", "strict"}};
  EXPECT_EQ(score("format", strict, "<think>\nadd 2 and 2\n</think>\n<answer>\n4\n</answer>"), 1);
  EXPECT_EQ(score("format", strict, "<think>\n\n</think>\n<answer>\n\n</answer>"),
            1);                                                                   // empty blocks are allowed
  EXPECT_EQ(score("format", strict, "<think>add</think><answer>4</answer>"), 0);  // newlines required
  EXPECT_EQ(score("format", strict, " <think>\nx\n</think>\n<answer>\n4\n</answer>"), 0);  // nothing before
  EXPECT_EQ(score("format", strict, "<think>\nx\n</think>\n<answer>\n4\n</answer>\nmore"), 0);  // nor after
  EXPECT_EQ(score("format", strict, "<think>\n</think>\n<answer>\n4\n</answer>"),
            0);  // the newline is not shared
  EXPECT_EQ(score("format", strict, "<think>\na <think> b\n</think>\n<answer>\n4\n</answer>"),
            0);  // tag twice
  EXPECT_EQ(score("format", strict, ""), 0);
}

TEST(RewardFormat, LenientWantsEachTagOnceInOrderWithOnlySpaceAround) {
  EXPECT_EQ(score("format", {}, "<think>a</think><answer>4</answer>"), 1);
  EXPECT_EQ(score("format", {}, "  <think> a </think>\n\n <answer> 4 </answer>\n"), 1);
  EXPECT_EQ(score("format", {}, "<answer>4</answer><think>a</think>"), 0);      // order
  EXPECT_EQ(score("format", {}, "<think>a</think> so <answer>4</answer>"), 0);  // text between the blocks
  EXPECT_EQ(score("format", {}, "<think>a</think><answer>4</answer> done"), 0);
  EXPECT_EQ(score("format", {}, "<think>a</think><answer>4"), 0);  // unclosed
  EXPECT_EQ(score("format", {}, "<think>a</think><answer>4</answer><answer>5</answer>"), 0);
  // A prompt that ends with "<think>": the completion starts inside the block.
  EXPECT_EQ(score("format", {{"prefix", "<think>"}}, " a</think> <answer>4</answer>"), 1);
  EXPECT_THAT(error_of([] {
                score("format", {{"mode", "loose"}}, "");
              }),
              HasSubstr("reward format: params.mode"));
}

TEST(RewardTagCount, QuarterPerTagPresentOnce) {
  EXPECT_EQ(score("tag_count", {}, "<think>\nx\n</think>\n<answer>\n4\n</answer>"), 1.0);
  EXPECT_EQ(score("tag_count", {}, "<think>\nx\n</think>\n4"), 0.5);
  EXPECT_EQ(score("tag_count", {}, "<think>\nx <think>\n y\n</think>\n<answer>\n4\n</answer>"), 0.75);
  EXPECT_EQ(score("tag_count", {}, "no tags"), 0.0);
  EXPECT_EQ(score("tag_count", {{"prefix", "<think>\n"}}, "x\n</think>\n"), 0.5);
}

TEST(RewardExactMatch, ComparesTheLastAnswerWithTheField) {
  const aha::Json truth = {{"answer", "Paris"}};
  EXPECT_EQ(score("exact_match", {}, "<answer> Paris </answer>", truth), 1);
  EXPECT_EQ(score("exact_match", {}, "<answer>Lyon</answer> <answer>Paris</answer>", truth),
            1);  // the last one
  EXPECT_EQ(score("exact_match", {}, "<answer>paris</answer>", truth), 0);
  EXPECT_EQ(score("exact_match", {{"ignore_case", true}}, "<answer>paris</answer>", truth), 1);
  EXPECT_EQ(score("exact_match", {}, "Paris", truth), 0);  // no tag, no answer
  EXPECT_EQ(score("exact_match", {{"extract", "none"}}, " Paris\n", truth), 1);
  EXPECT_EQ(score("exact_match", {{"field", "city"}}, "<answer>Nice</answer>", {{"city", "Nice"}}), 1);
  EXPECT_EQ(score("exact_match", {}, "<answer>42</answer>", {{"answer", 42}}), 1);  // numbers compare as text
  EXPECT_EQ(score("exact_match", {}, "<answer>x</answer>", aha::Json::object()), -1);  // no truth: skipped
  EXPECT_EQ(aha::reward::last_answer("<answer>a</answer><answer>b"), "a");
  EXPECT_FALSE(aha::reward::last_answer("</answer><answer>").has_value());
}

TEST(RewardOverlong, FollowsDaposSoftPunishment) {
  const auto reward = builtins().create("overlong", {{"max_length", 100}, {"cache", 20}});
  auto at = [&](int64_t tokens) {
    aha::reward::Sample s;
    s.completion_tokens = tokens;
    return *reward->score(s).value;
  };
  EXPECT_EQ(at(0), 0.0);
  EXPECT_EQ(at(80), 0.0);   // L_max - L_cache
  EXPECT_EQ(at(90), -0.5);  // halfway through the cache
  EXPECT_EQ(at(100), -1.0);
  EXPECT_EQ(at(150), -1.0);
  EXPECT_THAT(error_of([] {
                builtins().create("overlong", {{"max_length", 100}});
              }),
              HasSubstr("needs max_length"));
  EXPECT_THAT(error_of([] {
                builtins().create("overlong", {{"max_length", 10}, {"cache", 20}});
              }),
              HasSubstr("params.cache"));
}

TEST(RewardRegistry, NamesUnknownRewardsAndParameters) {
  const auto r = builtins();
  EXPECT_THAT(
      error_of([&] { r.create("acuracy", {}); }),
      HasSubstr("unknown reward \"acuracy\" (registered: countdown, exact_match, format, gsm8k, "
                "language_consistency, length_penalty, math_accuracy, overlong, process, regex_match, "
                "tag_count)"));
  EXPECT_THAT(error_of([&] {
                r.create("format", {{"mdoe", "strict"}});
              }),
              HasSubstr("reward format: params.mdoe: unknown parameter (known: mode, prefix)"));
  EXPECT_THAT(error_of([&] {
                r.create("exact_match", {{"ignore_case", "yes"}});
              }),
              HasSubstr("params.ignore_case: expected a boolean"));
  aha::reward::Registry mine = builtins();
  EXPECT_THROW(mine.add("format", [](const aha::Json&) { return nullptr; }), aha::Error);
}

// A reward a program defines and registers in code: way 1 of extending aha.
class LengthAtMost : public aha::reward::Reward {
 public:
  explicit LengthAtMost(int64_t limit) : limit_(limit) {}
  aha::reward::Score score(const aha::reward::Sample& s) const override {
    aha::reward::Score out = aha::reward::Score::of(s.completion_tokens <= limit_ ? 1.0 : 0.0);
    out.extras.emplace_back("tokens", static_cast<double>(s.completion_tokens));
    return out;
  }

 private:
  int64_t limit_;
};

TEST(RewardSet, WeightsSkipsExtrasAndThreads) {
  aha::reward::Registry r = builtins();
  r.add("short", [](const aha::Json& p) {
    aha::reward::check_param_keys(p, "short", {"limit"});
    return std::make_unique<LengthAtMost>(
        static_cast<int64_t>(aha::reward::param_number(p, "short", "limit", 10)));
  });
  const aha::Config config = aha::parse_config(R"({"reward": {"functions": [
      {"name": "format", "weight": 1.0},
      {"name": "exact_match", "weight": 2.0},
      {"name": "short", "weight": 0.5, "params": {"limit": 5}}]}})",
                                               "run.json");
  const aha::reward::RewardSet set(config.reward.functions, r);
  const aha::Json truth = {{"answer", "4"}}, none = aha::Json::object();
  std::vector<aha::reward::Sample> samples;
  for (int i = 0; i < 200; ++i) {
    aha::reward::Sample s;
    s.completion = i % 2 ? "<think>x</think><answer>4</answer>" : "<answer>5</answer>";
    s.completion_tokens = i % 10;
    s.fields = i % 50 == 3 ? &none : &truth;
    samples.push_back(s);
  }
  const auto one = set.score(samples, 1);
  const auto four = set.score(samples, 4);
  EXPECT_EQ(one.total, four.total);
  ASSERT_EQ(one.names, (std::vector<std::string>{"format", "exact_match", "short"}));
  EXPECT_EQ(*one.total[1], 1.0 + 2.0 + 0.5);  // good layout, right answer, 1 token
  EXPECT_EQ(*one.total[8], 0.0 + 0.0 + 0.0);  // bad layout, wrong answer, 8 tokens
  EXPECT_FALSE(one.total[3].has_value());     // no ground truth: skipped as a whole
  EXPECT_EQ(one.per_reward[0][3], 1.0);       // ...but the other rewards' scores are kept for metrics
  EXPECT_EQ(one.extras[7], (std::vector<std::pair<std::string, double>>{{"short.tokens", 7.0}}));
  const auto bad = aha::parse_config(R"({"reward": {"functions": [{"name": "nope"}]}})", "run.json");
  EXPECT_THAT(error_of([&] { aha::reward::RewardSet(bad.reward.functions, r); }),
              HasSubstr("reward.functions[0]: unknown reward \"nope\""));
}

}  // namespace
