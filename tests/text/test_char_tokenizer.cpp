// The character tokenizer: longest entry first, unknown characters named with their position, unk, specials.
#include "../support/error_of.h"
#include "aha/text/char_tokenizer.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>

#include "aha/io/file.h"

using aha::text::CharTokenizer;
using aha::text::CharTokenizerConfig;
using ::testing::HasSubstr;
using Ids = std::vector<int64_t>;

namespace {

CharTokenizerConfig arithmetic() {
  CharTokenizerConfig c;
  c.vocab = {"<pad>", "<bos>", "<eos>", "1", "2", "+", "=", " ", "<", "<think>", "</think>", "é", "<t"};
  c.bos = "<bos>";
  c.eos = "<eos>";
  c.pad = "<pad>";
  c.special = {"<think>", "</think>"};
  return c;
}

using aha::test::error_of;

TEST(CharTokenizer, LongestEntryWins) {
  const CharTokenizer t(arithmetic());
  EXPECT_EQ(t.encode("1+2"), (Ids{3, 5, 4}));
  // "<think>" beats "<t" and "<"; "<" alone stays "<"; "<t" is its own entry.
  EXPECT_EQ(t.encode("<think>1</think>"), (Ids{9, 3, 10}));
  EXPECT_EQ(t.encode("<<t<"), (Ids{8, 12, 8}));
  EXPECT_EQ(t.encode("é=2"), (Ids{11, 6, 4}));
  EXPECT_EQ(t.encode(""), Ids{});
}

TEST(CharTokenizer, SpecialTokensAndDecode) {
  const CharTokenizer t(arithmetic());
  EXPECT_EQ(t.encode("1", /*add_special_tokens=*/true), (Ids{1, 3}));
  const auto s = t.special_tokens();
  EXPECT_EQ(s.bos, 1);
  EXPECT_EQ(s.eos, 2);
  EXPECT_EQ(s.pad, 0);
  EXPECT_TRUE(t.is_special(9));
  EXPECT_TRUE(t.is_special(0));
  EXPECT_FALSE(t.is_special(3));
  const Ids ids = {1, 9, 3, 5, 4, 10, 2};
  EXPECT_EQ(t.decode(ids), "<bos><think>1+2</think><eos>");
  EXPECT_EQ(t.decode(ids, /*skip_special_tokens=*/true), "1+2");
  EXPECT_EQ(t.vocab_size(), 13);
  EXPECT_EQ(t.token_to_id("<think>"), 9);
  EXPECT_FALSE(t.token_to_id("x").has_value());
  EXPECT_EQ(t.id_to_token(11), "é");
  EXPECT_EQ(t.decode(Ids{13}), "");  // outside the vocabulary: nothing, as BPE and HF do
  EXPECT_THROW(t.id_to_token(-1), aha::Error);
}

TEST(CharTokenizer, UnknownCharacterIsNamedWithItsPosition) {
  const CharTokenizer t(arithmetic());
  EXPECT_THAT(error_of([&] { t.encode("1+é+x"); }),
              HasSubstr("character \"x\" (U+0078) at position 4 (byte 5) is not in the vocabulary"));
  EXPECT_THAT(error_of([&] { t.encode("12€"); }), HasSubstr("\"€\" (U+20AC) at position 2"));
  EXPECT_THROW(t.encode("1\xff"), aha::Error);
}

TEST(CharTokenizer, UnkEntryTakesUnknownCharacters) {
  auto c = arithmetic();
  c.vocab.push_back("?");
  c.unk = "?";
  const CharTokenizer t(c);
  EXPECT_EQ(t.encode("1x€2"), (Ids{3, 13, 13, 4}));
  EXPECT_TRUE(t.is_special(13));
}

TEST(CharTokenizer, BadConfigsAreErrors) {
  auto c = arithmetic();
  c.vocab.push_back("1");
  EXPECT_THAT(error_of([&] { CharTokenizer{c}; }), HasSubstr("vocab[13] \"1\" repeats vocab[3]"));
  c = arithmetic();
  c.eos = "</s>";
  EXPECT_THAT(error_of([&] { CharTokenizer{c}; }), HasSubstr("eos \"</s>\" is not in the vocabulary"));
  c = arithmetic();
  c.vocab.push_back("");
  EXPECT_THAT(error_of([&] { CharTokenizer{c}; }), HasSubstr("vocab[13] is empty"));
  EXPECT_THAT(error_of([&] { CharTokenizer{CharTokenizerConfig{}}; }), HasSubstr("the vocabulary is empty"));
}

TEST(CharTokenizer, LoadsFromAFileThroughLoadTokenizer) {
  const auto path = (std::filesystem::temp_directory_path() / "aha_char_tokenizer.json").string();
  aha::io::write_file_atomic(path, R"({"type": "char", "vocab": ["<eos>", "a", "b"], "eos": "<eos>"})");
  const auto t = aha::text::load_tokenizer(path);
  EXPECT_EQ(t->encode("ab<eos>"), (Ids{1, 2, 0}));
  EXPECT_EQ(t->special_tokens().eos, 0);
  aha::io::write_file_atomic(path, R"({"type": "char", "vocab": ["a"], "eso": "a"})");
  EXPECT_THAT(error_of([&] { aha::text::load_tokenizer(path); }), HasSubstr(path + ": eso: unknown key"));
  std::filesystem::remove(path);
}

}  // namespace
