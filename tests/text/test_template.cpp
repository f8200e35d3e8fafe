// Prompt templates: the R1-Zero text exactly, placeholders, brace escapes, and errors that name what is
// wrong.
#include "../support/error_of.h"
#include "aha/text/template.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

using aha::Json;
using aha::text::render;
using aha::text::resolve_template;
using ::testing::HasSubstr;

namespace {

using aha::test::error_of;

TEST(Template, R1ZeroIsThePapersTemplate) {
  // DeepSeek-R1 (arXiv 2501.12948) Table 1, as quoted in shared/spec/grpo.md, with "prompt" -> the question.
  const std::string want =
      "A conversation between User and Assistant. The user asks a question, and the Assistant solves it. The "
      "assistant first thinks about the reasoning process in the mind and then provides the user with the "
      "answer. The reasoning process and answer are enclosed within <think> </think> and <answer> </answer> "
      "tags, respectively, i.e., <think> reasoning process here </think> <answer> answer here </answer>. "
      "User: "
      "What is 2+3?. Assistant:";
  EXPECT_EQ(render(resolve_template("r1_zero"), Json{{"question", "What is 2+3?"}}), want);
  EXPECT_EQ(render(resolve_template("plain"), Json{{"question", "Q?"}, {"answer", "4"}}), "Q?");
}

TEST(Template, PlaceholdersAndEscapes) {
  const Json fields = {{"a", "x"}, {"n", 3}, {"f", 2.5}, {"b", true}, {"q", "{not a field}"}};
  EXPECT_EQ(render("{a}-{n}-{f}-{b}", fields), "x-3-2.5-true");
  EXPECT_EQ(render("{{a}} {{{a}}} }}{{", fields), "{a} {x} }{");
  EXPECT_EQ(render("{q}", fields), "{not a field}");  // values are not templates
  EXPECT_EQ(render("no placeholders", fields), "no placeholders");
  EXPECT_EQ(render("", fields), "");
  // A template text that is no built-in name comes back as it is.
  EXPECT_EQ(resolve_template("Solve: {question}"), "Solve: {question}");
}

TEST(Template, ErrorsNameTheFieldAndTheTemplate) {
  const Json fields = {{"question", "q"}, {"list", Json::array({1})}, {"none", nullptr}};
  EXPECT_THAT(
      error_of([&] { render("Q: {problem}", fields); }),
      HasSubstr("template \"Q: {problem}\": field \"problem\" is missing from the prompt (its fields: "
                "question, list, none)"));
  EXPECT_THAT(error_of([&] {
                render(resolve_template("r1_zero"), Json{{"prompt", "q"}});
              }),
              HasSubstr("field \"question\" is missing"));
  EXPECT_THAT(error_of([&] { render("{list}", fields); }), HasSubstr("field \"list\" is array"));
  EXPECT_THAT(error_of([&] { render("{none}", fields); }), HasSubstr("field \"none\" is null"));
  EXPECT_THAT(error_of([&] { render("a {question", fields); }), HasSubstr("unclosed '{' at offset 2"));
  EXPECT_THAT(error_of([&] { render("a } b", fields); }), HasSubstr("lone '}' at offset 2"));
  EXPECT_THAT(error_of([&] { render("{}", fields); }), HasSubstr("bad placeholder at offset 0"));
  EXPECT_THAT(error_of([&] { render("{a{b}", fields); }), HasSubstr("bad placeholder"));
  EXPECT_THAT(error_of([&] { render("{question}", Json::array()); }), HasSubstr("must be a JSON object"));
  EXPECT_THAT(error_of([&] { resolve_template("r1zero"); }),
              HasSubstr("unknown prompt template \"r1zero\" (built-in: r1_zero, plain"));
}

}  // namespace
