#include "aha/text/char_tokenizer.h"

#include <algorithm>
#include <cstdio>

#include "aha/core/error.h"
#include "aha/io/jsonl.h"
#include "aha/text/utf8.h"

namespace aha::text {

CharTokenizer::CharTokenizer(CharTokenizerConfig config) : config_(std::move(config)) {
  AHA_CHECK(!config_.vocab.empty(), "char tokenizer: the vocabulary is empty");
  by_first_byte_.resize(256);
  for (size_t i = 0; i < config_.vocab.size(); ++i) {
    const std::string& e = config_.vocab[i];
    AHA_CHECK(!e.empty(), "char tokenizer: vocab[", i, "] is empty");
    AHA_CHECK(!io::find_invalid_utf8(e), "char tokenizer: vocab[", i, "] is not valid UTF-8");
    auto [it, fresh] = ids_.emplace(e, static_cast<int64_t>(i));
    AHA_CHECK(fresh, "char tokenizer: vocab[", i, "] ", quote_bytes(e), " repeats vocab[", it->second, "]");
    by_first_byte_[static_cast<unsigned char>(e[0])].push_back(static_cast<int64_t>(i));
  }
  for (auto& list : by_first_byte_)
    std::stable_sort(list.begin(), list.end(),
                     [&](int64_t a, int64_t b) { return config_.vocab[a].size() > config_.vocab[b].size(); });
  special_.assign(config_.vocab.size(), false);
  auto entry = [&](const std::string& token, const char* key) -> std::optional<int64_t> {
    if (token.empty()) return std::nullopt;
    auto it = ids_.find(token);
    AHA_CHECK(it != ids_.end(), "char tokenizer: ", key, " ", quote_bytes(token),
              " is not in the vocabulary");
    special_[it->second] = true;
    return it->second;
  };
  unk_ = entry(config_.unk, "unk");
  specials_.bos = entry(config_.bos, "bos");
  specials_.eos = entry(config_.eos, "eos");
  specials_.pad = entry(config_.pad, "pad");
  for (const std::string& s : config_.special)
    entry(s, "special entry");
}

CharTokenizer CharTokenizer::from_json(const Json& j, const std::string& source) {
  CharTokenizerConfig config;
  aha::from_json(j, config, source);
  try {
    return CharTokenizer(std::move(config));
  } catch (const Error& e) {
    throw Error(e.message(), source);
  }
}

std::vector<int64_t> CharTokenizer::encode(std::string_view text, bool add_special_tokens) const {
  if (auto bad = io::find_invalid_utf8(text)) AHA_FAIL("encode: the text is not valid UTF-8 at byte ", *bad);
  std::vector<int64_t> ids;
  if (add_special_tokens && specials_.bos) ids.push_back(*specials_.bos);
  size_t pos = 0, chars = 0;
  while (pos < text.size()) {
    int64_t found = -1;
    for (int64_t id : by_first_byte_[static_cast<unsigned char>(text[pos])])
      if (text.substr(pos, config_.vocab[id].size()) == config_.vocab[id]) {
        found = id;
        break;
      }
    size_t length = found >= 0 ? config_.vocab[found].size() : utf8_step(text, pos).length;
    if (found < 0) {
      if (!unk_) {
        const std::string c(text.substr(pos, length));
        char code[16];
        std::snprintf(code, sizeof code, "U+%04X", static_cast<unsigned>(utf8_step(text, pos).code_point));
        AHA_FAIL("char tokenizer: character ", quote_bytes(c), " (", code, ") at position ", chars, " (byte ",
                 pos, ") is not in the vocabulary and there is no unk entry");
      }
      found = *unk_;
    }
    ids.push_back(found);
    for (size_t i = pos; i < pos + length; ++i)  // count characters, for error positions
      chars += (static_cast<unsigned char>(text[i]) & 0xC0) != 0x80;
    pos += length;
  }
  return ids;
}

std::string CharTokenizer::decode(std::span<const int64_t> ids, bool skip_special_tokens) const {
  std::string out;
  for (int64_t id : ids) {
    if (id < 0 || id >= vocab_size()) continue;  // as BPE: ids outside the vocabulary decode to nothing
    if (skip_special_tokens && special_[id]) continue;
    out += config_.vocab[id];
  }
  return out;
}

std::optional<int64_t> CharTokenizer::token_to_id(std::string_view token) const {
  auto it = ids_.find(std::string(token));
  if (it == ids_.end()) return std::nullopt;
  return it->second;
}

std::string CharTokenizer::id_to_token(int64_t id) const {
  AHA_CHECK(id >= 0 && id < vocab_size(), "id_to_token: id ", id, " is out of range [0, ", vocab_size(), ")");
  return config_.vocab[id];
}

bool CharTokenizer::is_special(int64_t id) const {
  return id >= 0 && id < vocab_size() && special_[id];
}

}  // namespace aha::text
