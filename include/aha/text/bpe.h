// Byte-level BPE from a HuggingFace tokenizer.json (GPT-2, Qwen2, DeepSeek-V3 and the like), giving the ids
// HF `tokenizers` gives.
//
// The pipeline is HF's, step by step: added/special tokens are cut out of the text first (leftmost-longest,
// with their single_word / lstrip / rstrip / normalized flags), the rest goes through the pre-tokenizer
// (Split regexes via PCRE2 with Unicode properties, then ByteLevel: optional prefix space, optional GPT-2
// regex, bytes mapped to the printable byte alphabet), each piece through BPE (lowest merge rank first,
// leftmost on ties; ignore_merges; a cache), then the post-processor (ByteLevel, TemplateProcessing,
// Bert/Roberta, Sequence). Decoding maps the byte alphabet back to bytes and replaces what is not UTF-8 by
// U+FFFD as HF does.
//
// Supported in tokenizer.json: model.type "BPE" (no dropout, no continuing_subword_prefix /
// end_of_word_suffix, no byte_fallback); normalizer null or an empty Sequence; pre_tokenizer ByteLevel, or a
// Sequence of Split / Digits steps ending in ByteLevel; post_processor null, ByteLevel, TemplateProcessing,
// BertProcessing, RobertaProcessing or a Sequence of these; decoder null or ByteLevel. Anything else is an
// aha::Error naming the file, the JSON path and the feature, at load time.
//
// tokenizer_config.json (optional, beside tokenizer.json) names bos_token / eos_token / pad_token (a string
// or an
// {"content": ...} object) and may set add_bos_token / add_eos_token, which encode(add_special_tokens = true)
// then honours as transformers does when the post-processor does not already add that token.
//
// Regex dialect: tokenizers compiles Split patterns with Oniguruma, aha with PCRE2. The patterns real
// tokenizer.json files use mean the same in both; one known difference: PCRE2's \s also matches U+180E.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "aha/text/tokenizer.h"

namespace aha::text {

class BpeTokenizer : public Tokenizer {
 public:
  // `tokenizer_json` is the parsed tokenizer.json, `config` the parsed tokenizer_config.json or null;
  // `source` names the file in error messages.
  BpeTokenizer(const nlohmann::json& tokenizer_json, const nlohmann::json& config, const std::string& source);
  // Reads tokenizer.json at `path` and tokenizer_config.json beside it when there is one.
  static std::unique_ptr<BpeTokenizer> from_file(const std::string& path);
  ~BpeTokenizer() override;

  std::vector<int64_t> encode(std::string_view text, bool add_special_tokens = false) const override;
  std::string decode(std::span<const int64_t> ids, bool skip_special_tokens = false) const override;
  int64_t vocab_size()
      const override;  // the largest id + 1 (ids without a token in between decode to nothing)
  std::optional<int64_t> token_to_id(std::string_view token) const override;
  std::string id_to_token(int64_t id) const override;  // "" for an id in range that has no token
  bool is_special(int64_t id) const override;
  SpecialTokens special_tokens() const override;

  // The bytes `id` stands for (what decode() concatenates before the UTF-8 repair); may be a partial
  // character.
  std::string token_bytes(int64_t id) const;

 private:
  struct Impl;
  std::unique_ptr<const Impl> impl_;
};

}  // namespace aha::text
