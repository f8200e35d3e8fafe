// language_consistency and the script counting under it.
#include "aha/reward/language.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "../support/error_of.h"
#include "cases.h"

namespace {

using aha::Json;
using aha::reward::Script;
using aha::reward::script_of;
using aha::test::check_cases;
using ::testing::HasSubstr;

TEST(Scripts, ByCodePoint) {
  EXPECT_EQ(script_of(U'a'), Script::latin);
  EXPECT_EQ(script_of(U'Z'), Script::latin);
  EXPECT_EQ(script_of(U'é'), Script::latin);
  EXPECT_EQ(script_of(U'ß'), Script::latin);
  EXPECT_EQ(script_of(U'×'), Script::none);
  EXPECT_EQ(script_of(U'7'), Script::none);
  EXPECT_EQ(script_of(U'.'), Script::none);
  EXPECT_EQ(script_of(U'д'), Script::cyrillic);
  EXPECT_EQ(script_of(U'λ'), Script::greek);
  EXPECT_EQ(script_of(U'ש'), Script::hebrew);
  EXPECT_EQ(script_of(U'ك'), Script::arabic);
  EXPECT_EQ(script_of(U'٣'), Script::none);  // an Arabic-Indic digit
  EXPECT_EQ(script_of(U'क'), Script::devanagari);
  EXPECT_EQ(script_of(U'ก'), Script::thai);
  EXPECT_EQ(script_of(U'한'), Script::hangul);
  EXPECT_EQ(script_of(U'ひ'), Script::kana);
  EXPECT_EQ(script_of(U'カ'), Script::kana);
  EXPECT_EQ(script_of(U'中'), Script::han);
  EXPECT_EQ(script_of(U'𠀀'), Script::han);  // extension B
  EXPECT_EQ(script_of(U'。'), Script::none);
  EXPECT_EQ(script_of(U'😀'), Script::none);
  EXPECT_EQ(script_of(U'Ａ'), Script::latin);  // fullwidth
  EXPECT_EQ(*aha::reward::parse_script_set("cjk"), aha::reward::script_bit(Script::han) |
                                                       aha::reward::script_bit(Script::kana) |
                                                       aha::reward::script_bit(Script::hangul));
  EXPECT_FALSE(aha::reward::parse_script_set("klingon").has_value());
}

TEST(LanguageConsistencyReward, Cases) {
  const std::string many_words = [] {
    std::string s = "<think>";
    for (int i = 0; i < 199999; ++i)
      s += "word ";
    return s + "中</think>";
  }();
  size_t n = check_cases("language_consistency", Json::object(),
                         {
                             {"<think>Let me compute this</think><answer>4</answer>", 1},
                             {"<think>Let me 计算 this</think>", 0.6},  // Let, me, 计, 算, this
                             {"<think>Давайте посчитаем</think>", 0},
                             {"<think>2+2=4, 4*3=12</think>", 1},  // no letters: nothing in a wrong script
                             {"<think></think>", 1},
                             {"no think block at all", 0},
                             {"", 0},
                             {"<think>cut off while thinking", 1},
                             {"<think>café résumé naïve</think>", 1},
                             {"<think>cafe\u0301 ok</think>", 1},  // a combining accent stays in its word
                             {"<think>Hello世界</think>", 1.0 / 3},
                             {"<think>x2y</think>", 1},
                             {"<think>abc\xff\xfe"
                              "def</think>",
                              1},  // not UTF-8: a word break
                             {"<think>ＡＢＣ</think>", 1},
                             {"<think>😀 ok</think>", 1},
                             {"<think>a</think> Давайте <answer>б</answer>", 1},  // only the chain of thought
                             {many_words, 199999.0 / 200000},
                         });
  n += check_cases("language_consistency", {{"script", "han"}},
                   {{"<think>Let me 计算 this</think>", 0.4}, {"<think>全部中文</think>", 1}});
  n += check_cases("language_consistency", {{"script", "cjk"}},
                   {{"<think>안녕하세요 中文 ひらがな</think>", 1}});
  n += check_cases("language_consistency", {{"script", "cyrillic"}},
                   {{"<think>Давайте посчитаем</think>", 1}});
  n += check_cases("language_consistency", {{"script", Json::array({"han", "kana"})}},
                   {{"<think>これは漢字です</think>", 1}, {"<think>this</think>", 0}});
  n += check_cases("language_consistency", {{"script", "hangul"}}, {{"<think>안녕하세요 세계</think>", 1}});
  n += check_cases("language_consistency", {{"script", "arabic"}}, {{"<think>كِتَابٌ جميل</think>", 1}});
  n += check_cases("language_consistency", {{"script", "greek"}}, {{"<think>αβγ δ and</think>", 2.0 / 3}});
  n += check_cases("language_consistency", {{"unit", "letters"}}, {{"<think>ab где</think>", 0.4}});
  n += check_cases("language_consistency", {{"source", "completion"}}, {{"Hello мир", 0.5}});
  n += check_cases("language_consistency",
                   {{"source", "completion"}, {"script", Json::array({"latin", "cyrillic"})}},
                   {{"Hello мир", 1}});
  n += check_cases("language_consistency", {{"prefix", "<think>"}}, {{"Let me think</think>", 1}});
  EXPECT_GE(n, 20u);
}

TEST(LanguageConsistencyReward, BadParamsAreErrors) {
  aha::reward::Registry r;
  aha::reward::register_builtins(r);
  using aha::test::error_of;
  EXPECT_THAT(error_of([&] {
                r.create("language_consistency", {{"script", "klingon"}});
              }),
              HasSubstr("reward language_consistency: params.script: unknown script \"klingon\""));
  EXPECT_THAT(error_of([&] {
                r.create("language_consistency", {{"script", Json::array()}});
              }),
              HasSubstr("needs at least one script"));
  EXPECT_THAT(error_of([&] {
                r.create("language_consistency", {{"unit", "tokens"}});
              }),
              HasSubstr("params.unit"));
  EXPECT_THAT(error_of([&] {
                r.create("language_consistency", {{"source", "answer"}});
              }),
              HasSubstr("params.source"));
}

}  // namespace
