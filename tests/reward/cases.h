// Table-driven reward tests: each case is a completion (with its prompt's fields, token count, prompt) and
// the score a built-in must give it; check_cases scores every case and returns how many it ran, so that a
// test can assert it covers a built-in with enough of them.
#pragma once

#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <vector>

#include "aha/reward/reward.h"

namespace aha::test {

struct RewardCase {
  std::string completion;
  std::optional<double> want;  // nullopt: the sample must be skipped
  Json fields = Json::object();
  int64_t tokens = 0;
  std::string prompt;
};

inline std::string preview(const std::string& s) {
  return s.size() <= 120 ? s : s.substr(0, 100) + "... (" + std::to_string(s.size()) + " bytes)";
}

inline size_t check_cases(const std::string& name, const Json& params, const std::vector<RewardCase>& cases) {
  reward::Registry registry;
  reward::register_builtins(registry);
  const auto reward = registry.create(name, params);
  for (size_t i = 0; i < cases.size(); ++i) {
    const RewardCase& c = cases[i];
    reward::Sample s;
    s.completion = c.completion;
    s.prompt = c.prompt;
    s.fields = &c.fields;
    s.completion_tokens = c.tokens;
    const auto got = reward->score(s).value;
    SCOPED_TRACE(name + " " + params.dump() + " case " + std::to_string(i) + ": " + preview(c.completion) +
                 " fields " + c.fields.dump());
    if (!c.want) {
      EXPECT_FALSE(got.has_value()) << "expected a skip, got " << got.value_or(0);
    } else {
      EXPECT_TRUE(got.has_value()) << "expected " << *c.want << ", got a skip";
      if (got) {
        EXPECT_NEAR(*got, *c.want, 1e-12);
      }
    }
  }
  return cases.size();
}

}  // namespace aha::test
