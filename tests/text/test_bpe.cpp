// Byte-level BPE against HF tokenizers: ids and decoded text equal Python's on every corpus line, for a
// trained Sequence[Split, ByteLevel] tokenizer, a GPT-2-style one and DeepSeek's real tokenizer.json
// (fixtures and expectations from scripts/make_tokenizer_fixtures.py, tokenizers 0.23.3); then the features
// one by one on small hand-written tokenizer.json files, and the errors for what aha does not support.
#include "aha/text/bpe.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <thread>

#include "aha/core/config_json.h"
#include "aha/io/file.h"
#include "aha/io/jsonl.h"
#include "aha/text/tokenizer.h"

namespace fs = std::filesystem;
using aha::text::BpeTokenizer;
using aha::text::load_tokenizer;
using aha::text::Tokenizer;
using ::testing::HasSubstr;
using Ids = std::vector<int64_t>;

namespace {

const std::string kText = std::string(AHA_TEST_DATA) + "/text";

struct CorpusLine {
  std::optional<std::string> text;  // valid UTF-8
  std::string bytes;                // the malformed ones (hex in the file)
};

const std::vector<CorpusLine>& corpus() {
  static const std::vector<CorpusLine> lines = [] {
    std::vector<CorpusLine> out;
    for (const auto& r : aha::io::read_jsonl(kText + "/corpus.jsonl")) {
      CorpusLine line;
      if (r.value.contains("text")) {
        line.text = r.value["text"].get<std::string>();
      } else {
        const std::string hex = r.value["hex"].get<std::string>();
        for (size_t i = 0; i < hex.size(); i += 2)
          line.bytes += static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16));
      }
      out.push_back(std::move(line));
    }
    return out;
  }();
  return lines;
}

struct Case {
  std::string name;
  std::string path;  // what load_tokenizer gets: a directory or a tokenizer.json
};

std::string PrintCase(const testing::TestParamInfo<Case>& info) {
  return info.param.name;
}
void PrintTo(const Case& c, std::ostream* os) {
  *os << c.name;
}

class BpeParity : public testing::TestWithParam<Case> {
 protected:
  static const Tokenizer& tok(const Case& c) {
    static std::map<std::string, std::unique_ptr<Tokenizer>> loaded;
    auto& t = loaded[c.name];
    if (!t) t = load_tokenizer(c.path);
    return *t;
  }
  static const aha::Json& expected(const Case& c) {
    static std::map<std::string, aha::Json> loaded;
    auto& j = loaded[c.name];
    if (j.is_null()) j = aha::read_json_file(kText + "/" + c.name + ".expected.json");
    return j;
  }
};

TEST_P(BpeParity, EncodeGivesPythonsIdsOnEveryLine) {
  const Tokenizer& t = tok(GetParam());
  const aha::Json& e = expected(GetParam());
  ASSERT_EQ(e["encode"].size(), corpus().size());
  size_t checked = 0, mismatched = 0;
  for (size_t i = 0; i < corpus().size(); ++i) {
    if (!corpus()[i].text) continue;
    const std::string& text = *corpus()[i].text;
    for (bool special : {false, true}) {
      const Ids want = e[special ? "encode_add_special_tokens" : "encode"][i].get<Ids>();
      const Ids got = t.encode(text, special);
      ++checked;
      if (got != want && ++mismatched <= 5)
        ADD_FAILURE() << "line " << i + 1 << (special ? " with special tokens" : "") << ": "
                      << testing::PrintToString(got) << " != tokenizers' " << testing::PrintToString(want)
                      << "\n  text: " << text.substr(0, 200);
    }
  }
  EXPECT_EQ(mismatched, 0u) << "of " << checked;
  EXPECT_GT(checked, 2 * 340u);
}

TEST_P(BpeParity, DecodeOfEncodeIsTheText) {
  const Tokenizer& t = tok(GetParam());
  size_t checked = 0;
  for (const auto& line : corpus()) {
    if (!line.text) continue;
    // bpe_seq's [MASK] (lstrip) and <tool> (rstrip) swallow the spaces beside them, by design.
    if (GetParam().name == "bpe_seq" &&
        (line.text->find("[MASK]") != std::string::npos || line.text->find("<tool>") != std::string::npos))
      continue;
    EXPECT_EQ(t.decode(t.encode(*line.text)), *line.text);
    ++checked;
  }
  EXPECT_GT(checked, 340u);
}

TEST_P(BpeParity, DecodeOfArbitraryIdsGivesPythonsText) {
  const Tokenizer& t = tok(GetParam());
  const aha::Json& e = expected(GetParam());
  size_t with_replacement = 0;
  for (const auto& d : e["decode"]) {
    const Ids ids = d["ids"].get<Ids>();
    const std::string want = d["text"].get<std::string>();
    EXPECT_EQ(t.decode(ids, d["skip_special_tokens"].get<bool>()), want) << d.dump();
    with_replacement += want.find("\xEF\xBF\xBD") != std::string::npos;
  }
  EXPECT_GT(with_replacement, 10u);  // the check covers U+FFFD replacement, not only valid text
}

TEST_P(BpeParity, TokenBytesOfMalformedUtf8AreTheBytes) {
  const auto& t = dynamic_cast<const BpeTokenizer&>(tok(GetParam()));
  const aha::Json& e = expected(GetParam());
  size_t k = e["decode"].size();
  for (auto it = corpus().rbegin(); it != corpus().rend();
       ++it) {  // the malformed lines close the decode list
    if (it->text) continue;
    const Ids ids = e["decode"][--k]["ids"].get<Ids>();
    std::string bytes;
    for (int64_t id : ids)
      bytes += t.token_bytes(id);
    EXPECT_EQ(bytes, it->bytes);
  }
}

TEST_P(BpeParity, VocabularyLookupsAgree) {
  const Tokenizer& t = tok(GetParam());
  EXPECT_GE(t.vocab_size(), expected(GetParam())["vocab_size_with_added"].get<int64_t>());
  for (int64_t id = 0; id < t.vocab_size(); id += 97) {
    const std::string piece = t.id_to_token(id);
    if (!piece.empty()) {
      EXPECT_EQ(t.token_to_id(piece), id) << piece;
    }
  }
  EXPECT_FALSE(t.token_to_id("no such token, surely").has_value());
  // Ids outside the vocabulary decode to nothing, as in Python tokenizers (a model's vocabulary may be
  // larger).
  const Ids in_range = {t.token_to_id(t.id_to_token(5)).value()};
  EXPECT_EQ(t.decode(Ids{in_range[0], t.vocab_size(), -1, t.vocab_size() + 7}), t.decode(in_range));
}

INSTANTIATE_TEST_SUITE_P(Tokenizers, BpeParity,
                         testing::Values(Case{"bpe_seq", kText + "/bpe_seq"},
                                         Case{"gpt2_style", kText + "/gpt2_style/tokenizer.json"},
                                         Case{"deepseek_v4",
                                              std::string(AHA_TEST_UNPACKED) + "/text/deepseek_v4"}),
                         PrintCase);

TEST(Bpe, SpecialTokensAreMatchedBeforeSplitting) {
  const auto t = load_tokenizer(kText + "/bpe_seq");
  const int64_t think = *t->token_to_id("<think>"), end_think = *t->token_to_id("</think>");
  const int64_t bos = *t->token_to_id("<|begin_of_sentence|>");
  EXPECT_EQ(t->encode("<think>"), Ids{think});
  // The split regex alone would cut "x<think>y" as "x", "<", "think", ">y".
  const Ids ids = t->encode("x<think>y</think>");
  ASSERT_EQ(ids.size(), 4u);
  EXPECT_EQ(ids[1], think);
  EXPECT_EQ(ids[3], end_think);
  EXPECT_TRUE(t->is_special(think));
  EXPECT_FALSE(t->is_special(ids[0]));
  EXPECT_EQ(t->decode(ids, /*skip_special_tokens=*/true), "xy");
  // A prefix of a special token is ordinary text.
  for (int64_t id : t->encode("<think"))
    EXPECT_NE(id, think);
  // TemplateProcessing adds the BOS only when asked to.
  EXPECT_EQ(t->encode("<think>", true), (Ids{bos, think}));
}

TEST(Bpe, AddedTokenFlagsStripSpacesAndRespectWordBoundaries) {
  const auto t = load_tokenizer(kText + "/bpe_seq");
  const int64_t mask = *t->token_to_id("[MASK]"), tool = *t->token_to_id("<tool>");
  // [MASK] has lstrip: the spaces before it belong to the token, so they are gone after a round trip.
  const Ids m = t->encode("a   [MASK]");
  EXPECT_EQ(m.back(), mask);
  EXPECT_EQ(t->decode(m), "a[MASK]");
  // <tool> has rstrip: the spaces after it are swallowed.
  const Ids r = t->encode("<tool>   x");
  EXPECT_EQ(r.front(), tool);
  EXPECT_EQ(t->decode(r), "<tool>x");
  // "yes" is single_word: inside "eyes" or "yesterday" it is no added token, alone it is.
  const int64_t yes = *t->token_to_id("yes");
  EXPECT_EQ(t->encode("yes"), Ids{yes});
  EXPECT_EQ(t->decode(t->encode("eyes yesterday")), "eyes yesterday");
}

TEST(Bpe, SpecialTokensComeFromTokenizerConfig) {
  const auto ds = load_tokenizer(std::string(AHA_TEST_UNPACKED) + "/text/deepseek_v4");
  const auto s = ds->special_tokens();
  EXPECT_EQ(s.bos, ds->token_to_id("<｜begin▁of▁sentence｜>"));
  EXPECT_EQ(s.eos, ds->token_to_id("<｜end▁of▁sentence｜>"));
  EXPECT_EQ(s.pad, s.eos);
  EXPECT_EQ(ds->vocab_size(), 129280);
  EXPECT_TRUE(ds->is_special(*s.bos));
  const auto g = load_tokenizer(kText + "/gpt2_style");
  EXPECT_EQ(g->special_tokens().bos, g->token_to_id("<|endoftext|>"));
  EXPECT_FALSE(g->special_tokens().pad.has_value());
}

TEST(Bpe, AddBosTokenInTokenizerConfigPrependsTheBos) {
  const fs::path dir = fs::temp_directory_path() / "aha_test_add_bos";
  fs::create_directories(dir);
  fs::copy_file(kText + "/gpt2_style/tokenizer.json", dir / "tokenizer.json",
                fs::copy_options::overwrite_existing);
  aha::io::write_file_atomic((dir / "tokenizer_config.json").string(),
                             R"({"bos_token": "<|endoftext|>", "add_bos_token": true})");
  const auto t = load_tokenizer(dir.string());
  const int64_t bos = *t->token_to_id("<|endoftext|>");
  const Ids plain = t->encode("Hello world");
  Ids with_bos = plain;
  with_bos.insert(with_bos.begin(), bos);
  EXPECT_EQ(t->encode("Hello world", true), with_bos);
  aha::io::write_file_atomic((dir / "tokenizer_config.json").string(),
                             R"({"add_bos_token": true, "bos_token": {"content": "<nope>"}})");
  try {
    load_tokenizer(dir.string());
    ADD_FAILURE() << "a bos_token that is no token must be an error";
  } catch (const aha::Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("tokenizer_config.json: bos_token \"<nope>\" is not a token"));
  }
  fs::remove_all(dir);
}

TEST(Bpe, EncodeRejectsInvalidUtf8) {
  const auto t = load_tokenizer(kText + "/gpt2_style");
  EXPECT_THROW(t->encode("ab\xff"), aha::Error);
}

TEST(Bpe, SharedBetweenThreadsGivesTheSameIds) {
  const auto t = load_tokenizer(kText + "/bpe_seq");
  std::vector<Ids> want;
  for (const auto& line : corpus())
    if (line.text) want.push_back(t->encode(*line.text));
  std::vector<std::thread> threads;
  std::vector<size_t> bad(4, 0);
  for (size_t k = 0; k < 4; ++k)
    threads.emplace_back([&, k] {
      size_t i = 0;
      for (const auto& line : corpus())
        if (line.text) bad[k] += t->encode(*line.text) != want[i++];
    });
  for (auto& th : threads)
    th.join();
  EXPECT_EQ(bad, std::vector<size_t>(4, 0));
}

// ---- small hand-written tokenizer.json files
// --------------------------------------------------------------------

// Merges as [a, b] pairs (nlohmann would read {{"a", "b"}} as an object).
nlohmann::json pairs(std::initializer_list<std::pair<const char*, const char*>> merges) {
  nlohmann::json out = nlohmann::json::array();
  for (auto [a, b] : merges)
    out.push_back(nlohmann::json::array({a, b}));
  return out;
}

// A byte-level BPE over a, b, c, "-" and "Ġ" (the space) with the given merges and pre-tokenizer.
nlohmann::json tiny(nlohmann::json merges, nlohmann::json pre_tokenizer, bool ignore_merges = false) {
  nlohmann::json vocab = {{"a", 0}, {"b", 1}, {"c", 2}, {"-", 3}, {"Ġ", 4}};
  int next = 5;
  for (const auto& m : merges) {
    std::string merged;
    if (m.is_string()) {
      merged = m.get<std::string>();
      merged.erase(merged.find(' '), 1);
    } else {
      merged = m[0].get<std::string>() + m[1].get<std::string>();
    }
    if (!vocab.contains(merged)) vocab[merged] = next++;
  }
  return {
      {"version", "1.0"},
      {"truncation", nullptr},
      {"padding", nullptr},
      {"added_tokens", nlohmann::json::array()},
      {"normalizer", nullptr},
      {"pre_tokenizer", pre_tokenizer},
      {"post_processor", nullptr},
      {"decoder", {{"type", "ByteLevel"}}},
      {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", merges}, {"ignore_merges", ignore_merges}}}};
}

const nlohmann::json kByteLevel = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}};

std::vector<std::string> pieces(const BpeTokenizer& t, std::string_view text) {
  std::vector<std::string> out;
  for (int64_t id : t.encode(text))
    out.push_back(t.id_to_token(id));
  return out;
}

using Pieces = std::vector<std::string>;

TEST(BpeTiny, MergesApplyLowestRankFirst) {
  const BpeTokenizer bc_first(tiny(pairs({{"b", "c"}, {"a", "b"}}), kByteLevel), nullptr, "tiny.json");
  EXPECT_EQ(pieces(bc_first, "abc"), (Pieces{"a", "bc"}));
  const BpeTokenizer ab_first(tiny(pairs({{"a", "b"}, {"b", "c"}}), kByteLevel), nullptr, "tiny.json");
  EXPECT_EQ(pieces(ab_first, "abc"), (Pieces{"ab", "c"}));
  // Merges as "a b" strings mean the same.
  const BpeTokenizer legacy(tiny({"b c", "a b"}, kByteLevel), nullptr, "tiny.json");
  EXPECT_EQ(pieces(legacy, "abc"), (Pieces{"a", "bc"}));
  // Equal ranks: leftmost first ("aaa" -> "aa" "a").
  const BpeTokenizer aa(tiny(pairs({{"a", "a"}}), kByteLevel), nullptr, "tiny.json");
  EXPECT_EQ(pieces(aa, "aaa"), (Pieces{"aa", "a"}));
  EXPECT_EQ(pieces(aa, "aaaa"), (Pieces{"aa", "aa"}));
}

TEST(BpeTiny, IgnoreMergesTakesAWholeVocabularyWord) {
  // "abc" is in the vocabulary (from the merge "ab c") but the merge "b c" comes first.
  auto j = tiny(pairs({{"b", "c"}, {"a", "b"}, {"ab", "c"}}), kByteLevel);
  EXPECT_EQ(pieces(BpeTokenizer(j, nullptr, "tiny.json"), "abc"), (Pieces{"a", "bc"}));
  j["model"]["ignore_merges"] = true;
  EXPECT_EQ(pieces(BpeTokenizer(j, nullptr, "tiny.json"), "abc"), (Pieces{"abc"}));
}

TEST(BpeTiny, SplitBehaviours) {
  // Merges that reveal where the pre-tokenizer cut: "a-", "-b" and "--" form only inside one piece.
  const nlohmann::json merges = pairs({{"a", "-"}, {"-", "b"}, {"-", "-"}});
  auto with = [&](const char* behavior, bool invert = false) {
    nlohmann::json split = {
        {"type", "Split"}, {"pattern", {{"String", "-"}}}, {"behavior", behavior}, {"invert", invert}};
    return BpeTokenizer(tiny(merges, {{"type", "Sequence"}, {"pretokenizers", {split, kByteLevel}}}), nullptr,
                        "tiny.json");
  };
  EXPECT_EQ(pieces(with("Removed"), "a-b"), (Pieces{"a", "b"}));
  EXPECT_EQ(pieces(with("Isolated"), "a-b"), (Pieces{"a", "-", "b"}));
  EXPECT_EQ(pieces(with("MergedWithPrevious"), "a-b"), (Pieces{"a-", "b"}));
  EXPECT_EQ(pieces(with("MergedWithNext"), "a-b"), (Pieces{"a", "-b"}));
  EXPECT_EQ(pieces(with("Isolated"), "a--b"), (Pieces{"a", "-", "-", "b"}));
  EXPECT_EQ(pieces(with("Contiguous"), "a--b"), (Pieces{"a", "--", "b"}));
  EXPECT_EQ(pieces(with("Removed", /*invert=*/true), "a-b"), (Pieces{"-"}));
  // The same with a regex pattern.
  nlohmann::json split = {
      {"type", "Split"}, {"pattern", {{"Regex", "-+"}}}, {"behavior", "Isolated"}, {"invert", false}};
  const BpeTokenizer regex(tiny(merges, {{"type", "Sequence"}, {"pretokenizers", {split, kByteLevel}}}),
                           nullptr, "tiny.json");
  EXPECT_EQ(pieces(regex, "a--b"), (Pieces{"a", "--", "b"}));
}

TEST(BpeTiny, ByteLevelPrefixSpaceAndGpt2Regex) {
  const nlohmann::json merges = pairs({{"Ġ", "a"}, {"a", "b"}});
  nlohmann::json pre = {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"use_regex", true}};
  const BpeTokenizer t(tiny(merges, pre), nullptr, "tiny.json");
  EXPECT_EQ(pieces(t, "ab"), (Pieces{"Ġa", "b"}));  // " ab" after the prefix space
  EXPECT_EQ(t.decode(t.encode("ab")), " ab");
  pre["add_prefix_space"] = false;
  const BpeTokenizer no_prefix(tiny(merges, pre), nullptr, "tiny.json");
  EXPECT_EQ(pieces(no_prefix, "ab ab"), (Pieces{"ab", "Ġa", "b"}));
}

TEST(BpeTiny, DecodeReplacesBrokenUtf8AsHfDoes) {
  // Bytes C3 A9 ("é") are "Ã" "©" in the byte alphabet.
  nlohmann::json j = tiny(nlohmann::json::array(), kByteLevel);
  j["model"]["vocab"]["Ã"] = 10;
  j["model"]["vocab"]["©"] = 11;
  j["model"]["vocab"]["ÿ"] = 12;  // byte FF
  const BpeTokenizer t(j, nullptr, "tiny.json");
  EXPECT_EQ(t.decode(Ids{10, 11}), "é");
  EXPECT_EQ(t.decode(Ids{10}), "\xEF\xBF\xBD");
  EXPECT_EQ(t.decode(Ids{0, 10, 0, 12, 12}),
            "a\xEF\xBF\xBD"
            "a\xEF\xBF\xBD\xEF\xBF\xBD");
  EXPECT_EQ(t.token_bytes(10), "\xC3");
}

// ---- what aha does not support is an error naming it
// --------------------------------------------------------------

std::string load_error(const nlohmann::json& j) {
  try {
    BpeTokenizer t(j, nullptr, "tok/tokenizer.json");
  } catch (const aha::Error& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(BpeErrors, UnsupportedFeaturesAreNamed) {
  const auto base = tiny(pairs({{"a", "b"}}), kByteLevel);
  auto j = base;
  j["model"]["type"] = "Unigram";
  EXPECT_THAT(load_error(j), HasSubstr("tok/tokenizer.json: model.type \"Unigram\" is not supported"));
  j = base;
  j["normalizer"] = {{"type", "NFC"}};
  EXPECT_THAT(load_error(j), HasSubstr("normalizer \"NFC\" is not supported"));
  j = base;
  j["normalizer"] = {{"type", "Sequence"}, {"normalizers", {{{"type", "Lowercase"}}}}};
  EXPECT_THAT(load_error(j), HasSubstr("normalizer.normalizers[0] \"Lowercase\" is not supported"));
  j = base;
  j["pre_tokenizer"] = {{"type", "Metaspace"}};
  EXPECT_THAT(load_error(j), HasSubstr("pre_tokenizer \"Metaspace\" is not supported"));
  j = base;
  j["pre_tokenizer"] = nullptr;
  EXPECT_THAT(load_error(j), HasSubstr("pre_tokenizer null is not supported"));
  j = base;
  j["pre_tokenizer"] = {{"type", "Sequence"}, {"pretokenizers", {kByteLevel, {{"type", "Digits"}}}}};
  EXPECT_THAT(load_error(j), HasSubstr("ByteLevel before other pre-tokenizers is not supported"));
  j = base;
  j["decoder"] = {{"type", "WordPiece"}};
  EXPECT_THAT(load_error(j), HasSubstr("decoder \"WordPiece\" is not supported"));
  j = base;
  j["post_processor"] = {{"type", "Whatever"}};
  EXPECT_THAT(load_error(j), HasSubstr("post_processor \"Whatever\" is not supported"));
  j = base;
  j["model"]["dropout"] = 0.1;
  EXPECT_THAT(load_error(j), HasSubstr("model.dropout 0.1 is not supported"));
  j = base;
  j["model"]["byte_fallback"] = true;
  EXPECT_THAT(load_error(j), HasSubstr("model.byte_fallback true is not supported"));
  j = base;
  j["model"]["continuing_subword_prefix"] = "##";
  EXPECT_THAT(load_error(j), HasSubstr("model.continuing_subword_prefix \"##\" is not supported"));
  j = base;
  j["truncation"] = {{"max_length", 8}};
  EXPECT_THAT(load_error(j), HasSubstr("truncation is not supported"));
}

TEST(BpeErrors, BrokenFilesAreNamed) {
  auto j = tiny(pairs({{"a", "b"}}), kByteLevel);
  j["model"]["merges"] = pairs({{"a", "x"}});
  EXPECT_THAT(load_error(j), HasSubstr("model.merges[0]: \"x\" is not in model.vocab"));
  j["model"]["merges"] = {"a b c"};
  EXPECT_THAT(load_error(j), HasSubstr("model.merges[0]: expected \"a b\""));
  j = tiny(
      nlohmann::json::array(),
      {{"type", "Sequence"},
       {"pretokenizers",
        {{{"type", "Split"}, {"pattern", {{"Regex", "(unclosed"}}}, {"behavior", "Isolated"}}, kByteLevel}}});
  EXPECT_THAT(load_error(j),
              HasSubstr("pre_tokenizer.pretokenizers[0].pattern: regex /(unclosed/ does not compile"));
  j = tiny(nlohmann::json::array(),
           {{"type", "Sequence"},
            {"pretokenizers",
             {{{"type", "Split"}, {"pattern", {{"String", "-"}}}, {"behavior", "Sideways"}}, kByteLevel}}});
  EXPECT_THAT(load_error(j), HasSubstr("behavior \"Sideways\" is not supported"));
  try {
    load_tokenizer(kText + "/no_such_dir");
    ADD_FAILURE();
  } catch (const aha::Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("no_such_dir: no such file or directory"));
  }
  try {
    load_tokenizer(kText);  // a directory without tokenizer.json
    ADD_FAILURE();
  } catch (const aha::Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("no tokenizer.json in this directory"));
  }
  const fs::path bad = fs::temp_directory_path() / "aha_test_bad_tokenizer.json";
  aha::io::write_file_atomic(bad.string(), "{\"model\": ");
  EXPECT_THROW(load_tokenizer(bad.string()), aha::Error);
  fs::remove(bad);
}

// For information: how fast encode runs on GSM8K's training questions (printed, not checked).
TEST(BpeSpeed, EncodeGsm8kQuestions) {
  const std::string train = std::string(AHA_SOURCE_DIR) + "/../shared/data/gsm8k/train.jsonl";
  if (!fs::exists(train)) GTEST_SKIP() << "no " << train;
  std::vector<std::string> questions;
  for (const auto& r : aha::io::read_jsonl(train))
    questions.push_back(r.value["question"].get<std::string>());
  for (const char* name : {"deepseek_v4"}) {
    const auto t = load_tokenizer(std::string(AHA_TEST_UNPACKED) + "/text/" + name);
    size_t tokens = 0;
    const auto start = std::chrono::steady_clock::now();
    for (const auto& q : questions)
      tokens += t->encode(q).size();
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::printf("[ info ] %s: %zu GSM8K questions, %zu tokens in %.3f s = %.0f tokens/s\n", name,
                questions.size(), tokens, s, tokens / s);
  }
}

}  // namespace
