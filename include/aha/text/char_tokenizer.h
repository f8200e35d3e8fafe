// A character tokenizer for small synthetic tasks: every vocabulary entry is one token, id = its index.
//
// Entries are single characters or longer strings ("<think>", "<|eos|>"); encoding takes the longest entry
// that matches at each position, so multi-character entries win over their first character. A character that
// no entry covers is an error naming it and its position, or the `unk` entry when one is configured. In a
// file it is a JSON object with "type": "char" (load_tokenizer dispatches on that):
//   {"type": "char", "vocab": ["<pad>", "<bos>", "<eos>", "0", "1", ..., "+", "=", "<think>"],
//    "bos": "<bos>", "eos": "<eos>", "pad": "<pad>"}
#pragma once

#include <string>
#include <unordered_map>
#include <vector>

#include "aha/core/config_json.h"
#include "aha/text/tokenizer.h"

namespace aha::text {

struct CharTokenizerConfig {
  std::string type = "char";
  std::vector<std::string> vocab;    // the tokens; id = index; non-empty, distinct, valid UTF-8
  std::string unk;                   // entry for characters not in vocab; "" makes them an error
  std::string bos, eos, pad;         // entries, or "" for none
  std::vector<std::string> special;  // more entries that decode(skip_special_tokens = true) drops

  template <class V>
  void visit(V& v) {
    v("type", type, "tokenizer kind", Constraint::one_of({"char"}));
    v("vocab", vocab, "the tokens, one per entry (a character or a longer string); id = index");
    v("unk", unk, "entry used for characters not in vocab; empty makes them an error");
    v("bos", bos, "beginning-of-sequence entry (added by encode with add_special_tokens); empty for none");
    v("eos", eos, "end-of-sequence entry; empty for none");
    v("pad", pad, "padding entry; empty for none");
    v("special", special, "further special entries (bos, eos, pad and unk are special already)");
  }
};

class CharTokenizer : public Tokenizer {
 public:
  // Throws aha::Error when the vocabulary is empty, has duplicates, empty or invalid entries, or names a
  // special token that is not an entry.
  explicit CharTokenizer(CharTokenizerConfig config);
  // From a parsed {"type": "char", ...} object; errors name `source` and the key.
  static CharTokenizer from_json(const Json& j, const std::string& source);

  // With add_special_tokens, the bos entry (if any) comes first.
  std::vector<int64_t> encode(std::string_view text, bool add_special_tokens = false) const override;
  std::string decode(std::span<const int64_t> ids, bool skip_special_tokens = false) const override;
  int64_t vocab_size() const override { return static_cast<int64_t>(config_.vocab.size()); }
  std::optional<int64_t> token_to_id(std::string_view token) const override;
  std::string id_to_token(int64_t id) const override;
  bool is_special(int64_t id) const override;
  SpecialTokens special_tokens() const override { return specials_; }

  const CharTokenizerConfig& config() const { return config_; }

 private:
  CharTokenizerConfig config_;
  std::unordered_map<std::string, int64_t> ids_;
  std::vector<std::vector<int64_t>> by_first_byte_;  // [256]: entries starting with that byte, longest first
  std::vector<bool> special_;
  std::optional<int64_t> unk_;
  SpecialTokens specials_;
};

}  // namespace aha::text
