// The tokenizer interface: text to token ids and back, plus the special tokens a run needs to know.
//
// Implementations: byte-level BPE from HF tokenizer.json (bpe.h) and a character tokenizer for small
// synthetic tasks (char_tokenizer.h). Tokenizers are immutable after construction and safe to share between
// threads.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace aha::text {

struct SpecialTokens {
  std::optional<int64_t> bos, eos, pad;
};

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  // Token ids of `text`. Added/special tokens written literally in the text are matched as single tokens.
  // With add_special_tokens, the tokenizer's post-processing (e.g. a leading BOS) is applied too.
  virtual std::vector<int64_t> encode(std::string_view text, bool add_special_tokens = false) const = 0;
  // The text of `ids` (bytes that do not form valid UTF-8 decode as U+FFFD, and ids outside the vocabulary
  // decode to nothing, as HF does).
  virtual std::string decode(std::span<const int64_t> ids, bool skip_special_tokens = false) const = 0;

  virtual int64_t vocab_size() const = 0;  // ids are in [0, vocab_size)
  // The id of a vocabulary entry or added token written exactly as stored, if there is one.
  virtual std::optional<int64_t> token_to_id(std::string_view token) const = 0;
  // The vocabulary entry of `id` as stored (byte-level BPE pieces use the byte-to-unicode alphabet).
  virtual std::string id_to_token(int64_t id) const = 0;
  virtual bool is_special(int64_t id) const = 0;
  virtual SpecialTokens special_tokens() const = 0;
};

// Loads a tokenizer from a path: an HF tokenizer.json, or a directory holding one (and optionally
// tokenizer_config.json, which names bos/eos/pad), or a {"type": "char", ...} file (char_tokenizer.h). Throws
// aha::Error naming the file and the unsupported feature.
std::unique_ptr<Tokenizer> load_tokenizer(const std::string& path);

}  // namespace aha::text
