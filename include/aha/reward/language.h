// Which writing system a text is in, for the language-consistency reward: R1 adds to the accuracy reward the
// share of target-language words in the chain of thought, so that the model does not drift between
// languages while it reasons.
//
// Scripts are told apart by code point ranges (no ICU, no tables): Latin, Greek, Cyrillic, Armenian, Hebrew,
// Arabic, Devanagari, Bengali, Thai, Georgian, Hangul, Kana (hiragana and katakana) and Han. Digits,
// punctuation, symbols, emoji, spaces and combining marks are no letters and belong to no script. Bytes that
// are not UTF-8 count as non-letters. Counting is linear in the text's length and total on any input.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace aha::reward {

enum class Script : uint8_t {
  none,  // not a letter
  latin,
  greek,
  cyrillic,
  armenian,
  hebrew,
  arabic,
  devanagari,
  bengali,
  thai,
  georgian,
  hangul,
  kana,
  han,
  other,  // a letter of a script not listed
};

// The script of one code point (Script::none for digits, punctuation, symbols, spaces, marks).
Script script_of(char32_t cp);

// A set of scripts, one bit per Script value.
using ScriptSet = uint32_t;
constexpr ScriptSet script_bit(Script s) {
  return ScriptSet{1} << static_cast<unsigned>(s);
}
// "latin", "greek", ..., "han", or "cjk" (han + kana + hangul); nullopt for an unknown name.
std::optional<ScriptSet> parse_script_set(std::string_view name);

enum class CountUnit {
  words,    // maximal runs of letters of one script; every Han or Kana character is a word of its own
  letters,  // every letter
};

struct ScriptCount {
  int64_t in_target = 0;  // words (letters) in one of the target scripts
  int64_t total = 0;      // all words (letters)
};

ScriptCount count_scripts(std::string_view text, ScriptSet target, CountUnit unit);

}  // namespace aha::reward
