#include "aha/core/error.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

using ::testing::HasSubstr;

namespace {

int checked_div(int a, int b) {
  AHA_CHECK(b != 0, "cannot divide ", a, " by zero");
  return a / b;
}

TEST(Error, CheckPassesThroughWhenTrue) {
  EXPECT_EQ(checked_div(6, 3), 2);
}

TEST(Error, CheckThrowsWithMessageConditionAndLocation) {
  try {
    checked_div(7, 0);
    FAIL() << "expected aha::Error";
  } catch (const aha::Error& e) {
    const std::string what = e.what();
    EXPECT_THAT(what, HasSubstr("cannot divide 7 by zero"));
    EXPECT_THAT(what, HasSubstr("`b != 0`"));
    EXPECT_THAT(what, HasSubstr("tests/core/test_error.cpp:"));
  }
}

TEST(Error, ContextPrefixesTheMessage) {
  aha::Error e("expected a number", "run.json: optim.lr");
  EXPECT_STREQ(e.what(), "run.json: optim.lr: expected a number");
  EXPECT_EQ(e.message(), "expected a number");
  EXPECT_EQ(e.context(), "run.json: optim.lr");
  EXPECT_STREQ(aha::Error("plain").what(), "plain");
}

TEST(Error, FailConcatenatesAndIsARuntimeError) {
  EXPECT_THROW(AHA_FAIL("x=", 3), std::runtime_error);
  try {
    AHA_FAIL("x=", 3, " y=", 2.5);
  } catch (const aha::Error& e) {
    EXPECT_STREQ(e.what(), "x=3 y=2.5");
  }
}

TEST(Error, CheckEvaluatesMessageOnlyOnFailure) {
  int evaluated = 0;
  auto expensive = [&] {
    ++evaluated;
    return "msg";
  };
  AHA_CHECK(true, expensive());
  EXPECT_EQ(evaluated, 0);
  EXPECT_THROW(AHA_CHECK(false, expensive()), aha::Error);
  EXPECT_EQ(evaluated, 1);
}

}  // namespace
