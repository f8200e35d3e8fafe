// Scripts by code point range, word counting, and the language_consistency reward (builtin.h).
#include "aha/reward/language.h"

#include <utility>
#include <vector>

#include "aha/core/error.h"
#include "aha/reward/builtin.h"
#include "aha/reward/reward.h"
#include "aha/text/utf8.h"

namespace aha::reward {
namespace {

bool in(char32_t c, char32_t lo, char32_t hi) {
  return c >= lo && c <= hi;
}

// Generic combining marks (accents written as separate code points): part of the word they follow, not
// letters of their own. Marks inside a script's block (Arabic harakat, Devanagari vowel signs, ...) count as
// that script's letters instead, which keeps their words whole too.
bool is_combining(char32_t c) {
  return in(c, 0x300, 0x36F) || in(c, 0x1AB0, 0x1AFF) || in(c, 0x1DC0, 0x1DFF) || in(c, 0x20D0, 0x20FF) ||
         in(c, 0xFE20, 0xFE2F) || c == 0x200C || c == 0x200D;
}

Script arabic_block(char32_t c) {  // U+0600..U+06FF
  if (in(c, 0x620, 0x65F) || in(c, 0x66E, 0x6D3) || in(c, 0x6D5, 0x6ED) || in(c, 0x6EE, 0x6EF) ||
      in(c, 0x6FA, 0x6FC) || c == 0x6FF || in(c, 0x610, 0x61A))
    return Script::arabic;
  return Script::none;  // signs, punctuation, Arabic-Indic digits
}

Script greek_extended(char32_t c) {  // U+1F00..U+1FFF: letters with accents, and a few spacing accents
  if (c == 0x1FBD || in(c, 0x1FBF, 0x1FC1) || in(c, 0x1FCD, 0x1FCF) || in(c, 0x1FDD, 0x1FDF) ||
      in(c, 0x1FED, 0x1FEF) || in(c, 0x1FFD, 0x1FFF))
    return Script::none;
  return Script::greek;
}

}  // namespace

Script script_of(char32_t c) {
  if (c < 0x80) return ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') ? Script::latin : Script::none;
  if (c < 0x2B0) {  // Latin-1 Supplement, Latin Extended-A and -B, IPA
    if (c == 0xAA || c == 0xBA) return Script::latin;
    return (c < 0xC0 || c == 0xD7 || c == 0xF7) ? Script::none : Script::latin;
  }
  if (c < 0x370) return Script::none;  // modifier letters, combining diacritics
  if (c < 0x400)
    return (c == 0x374 || c == 0x375 || c == 0x37E || c == 0x384 || c == 0x385 || c == 0x387) ? Script::none
                                                                                              : Script::greek;
  if (c < 0x530) return in(c, 0x482, 0x482) ? Script::none : Script::cyrillic;
  if (c < 0x590) return (in(c, 0x531, 0x556) || in(c, 0x560, 0x588)) ? Script::armenian : Script::none;
  if (c < 0x600)
    return (in(c, 0x591, 0x5BD) || c == 0x5BF || in(c, 0x5C1, 0x5C2) || in(c, 0x5C4, 0x5C5) || c == 0x5C7 ||
            in(c, 0x5D0, 0x5EA) || in(c, 0x5EF, 0x5F2))
               ? Script::hebrew
               : Script::none;
  if (c < 0x700) return arabic_block(c);
  if (in(c, 0x750, 0x77F) || in(c, 0x8A0, 0x8C9)) return Script::arabic;
  if (in(c, 0x900, 0x97F))
    return (in(c, 0x964, 0x96F) || c == 0x970) ? Script::none : Script::devanagari;  // dandas, digits
  if (in(c, 0x980, 0x9FF))
    return (in(c, 0x9E6, 0x9EF) || in(c, 0x9F2, 0x9FB)) ? Script::none : Script::bengali;  // digits, signs
  if (in(c, 0xA00, 0xDFF)) return Script::other;  // Gurmukhi .. Sinhala
  if (in(c, 0xE00, 0xE7F))
    return (in(c, 0xE01, 0xE3A) || in(c, 0xE40, 0xE4E)) ? Script::thai : Script::none;  // baht, digits
  if (in(c, 0xE80, 0x109F)) return Script::other;  // Lao, Tibetan, Myanmar
  if (in(c, 0x10A0, 0x10FF)) return c == 0x10FB ? Script::none : Script::georgian;
  if (in(c, 0x1100, 0x11FF)) return Script::hangul;
  if (in(c, 0x1200, 0x139F) || in(c, 0x1780, 0x17FF)) return Script::other;  // Ethiopic, Khmer
  if (in(c, 0x1C80, 0x1C8F)) return Script::cyrillic;
  if (in(c, 0x1C90, 0x1CBF)) return Script::georgian;
  if (in(c, 0x1E00, 0x1EFF)) return Script::latin;
  if (in(c, 0x1F00, 0x1FFF)) return greek_extended(c);
  if (in(c, 0x2C60, 0x2C7F) || in(c, 0xA720, 0xA7FF) || in(c, 0xAB30, 0xAB6F) || in(c, 0xFB00, 0xFB06))
    return Script::latin;
  if (in(c, 0x2D00, 0x2D2F)) return Script::georgian;
  if (in(c, 0x2DE0, 0x2DFF) || in(c, 0xA640, 0xA69F)) return Script::cyrillic;
  if (c == 0x3005 || c == 0x3007 || in(c, 0x3021, 0x3029) || in(c, 0x3038, 0x303B)) return Script::han;
  if (in(c, 0x3041, 0x3096) || in(c, 0x309D, 0x309F) || in(c, 0x30A1, 0x30FA) || in(c, 0x30FC, 0x30FF) ||
      in(c, 0x31F0, 0x31FF) || in(c, 0xFF66, 0xFF9D) || in(c, 0x1B000, 0x1B16F))
    return Script::kana;
  if (in(c, 0x3131, 0x318E) || in(c, 0xA960, 0xA97F) || in(c, 0xAC00, 0xD7A3) || in(c, 0xD7B0, 0xD7FF) ||
      in(c, 0xFFA0, 0xFFDC))
    return Script::hangul;
  if (in(c, 0x3400, 0x4DBF) || in(c, 0x4E00, 0x9FFF) || in(c, 0xF900, 0xFAFF) || in(c, 0x20000, 0x323AF))
    return Script::han;
  if (in(c, 0xFB13, 0xFB17)) return Script::armenian;
  if (in(c, 0xFB1D, 0xFB4F)) return c == 0xFB29 ? Script::none : Script::hebrew;
  if (in(c, 0xFB50, 0xFDFB) || in(c, 0xFE70, 0xFEFC))
    return (c == 0xFD3E || c == 0xFD3F) ? Script::none : Script::arabic;
  if (in(c, 0xFF21, 0xFF3A) || in(c, 0xFF41, 0xFF5A)) return Script::latin;  // fullwidth
  return Script::none;
}

std::optional<ScriptSet> parse_script_set(std::string_view name) {
  static constexpr std::pair<std::string_view, Script> kNames[] = {{"latin", Script::latin},
                                                                   {"greek", Script::greek},
                                                                   {"cyrillic", Script::cyrillic},
                                                                   {"armenian", Script::armenian},
                                                                   {"hebrew", Script::hebrew},
                                                                   {"arabic", Script::arabic},
                                                                   {"devanagari", Script::devanagari},
                                                                   {"bengali", Script::bengali},
                                                                   {"thai", Script::thai},
                                                                   {"georgian", Script::georgian},
                                                                   {"hangul", Script::hangul},
                                                                   {"kana", Script::kana},
                                                                   {"han", Script::han}};
  if (name == "cjk") return script_bit(Script::han) | script_bit(Script::kana) | script_bit(Script::hangul);
  for (const auto& [n, s] : kNames)
    if (n == name) return script_bit(s);
  return std::nullopt;
}

ScriptCount count_scripts(std::string_view text, ScriptSet target, CountUnit unit) {
  ScriptCount out;
  Script word = Script::none;  // the script of the word being read; none between words
  auto count = [&](Script s) {
    ++out.total;
    if (target & script_bit(s)) ++out.in_target;
  };
  for (size_t pos = 0; pos < text.size();) {
    const text::Utf8Step step = text::utf8_step(text, pos);
    pos += step.length;
    const char32_t cp = step.valid ? step.code_point : 0;
    if (step.valid && is_combining(cp)) continue;  // belongs to the letter before it
    const Script s = step.valid ? script_of(cp) : Script::none;
    if (unit == CountUnit::letters) {
      if (s != Script::none) count(s);
      continue;
    }
    if (s == Script::han || s == Script::kana) {  // ideographic text has no spaces: one character, one word
      count(s);
      word = Script::none;
    } else if (s != word) {
      if (s != Script::none) count(s);
      word = s;
    }
  }
  return out;
}

namespace {

// R1's language-consistency reward: the share of the chain of thought's words in the target script(s).
class LanguageConsistency : public Reward {
 public:
  explicit LanguageConsistency(const Json& p) {
    const std::string name = "language_consistency";
    check_param_keys(p, name, {"script", "unit", "source", "prefix"});
    std::vector<std::string> scripts;
    if (p.contains("script") && p["script"].is_array()) {
      scripts = param_strings(p, name, "script");
    } else {
      scripts.push_back(param_string(p, name, "script", "latin"));
    }
    if (scripts.empty()) throw Error("needs at least one script", "reward " + name + ": params.script");
    for (const auto& s : scripts) {
      const auto set = parse_script_set(s);
      if (!set)
        throw Error(
            "unknown script \"" + s +
                "\" (known: latin, greek, cyrillic, armenian, hebrew, arabic, devanagari, bengali, thai, "
                "georgian, hangul, kana, han, cjk)",
            "reward " + name + ": params.script");
      target_ |= *set;
    }
    const std::string unit = param_string(p, name, "unit", "words");
    if (unit != "words" && unit != "letters")
      throw Error("expected \"words\" or \"letters\", got \"" + unit + "\"",
                  "reward " + name + ": params.unit");
    unit_ = unit == "words" ? CountUnit::words : CountUnit::letters;
    const std::string source = param_string(p, name, "source", "think");
    if (source != "think" && source != "completion")
      throw Error("expected \"think\" or \"completion\", got \"" + source + "\"",
                  "reward " + name + ": params.source");
    whole_ = source == "completion";
    prefix_ = param_string(p, name, "prefix", "");
  }

  Score score(const Sample& s) const override {
    const std::string text = prefix_ + std::string(s.completion);
    std::optional<std::string_view> part = whole_ ? std::optional<std::string_view>(text) : think_block(text);
    if (!part) return Score::of(0.0);  // no chain of thought to judge
    const ScriptCount c = count_scripts(*part, target_, unit_);
    Score out =
        Score::of(c.total == 0 ? 1.0 : static_cast<double>(c.in_target) / static_cast<double>(c.total));
    out.extras.emplace_back("counted", static_cast<double>(c.total));
    return out;
  }

 private:
  ScriptSet target_ = 0;
  CountUnit unit_ = CountUnit::words;
  bool whole_ = false;
  std::string prefix_;
};

}  // namespace

void register_language(Registry& r) {
  r.add(
      "language_consistency", [](const Json& p) { return std::make_unique<LanguageConsistency>(p); },
      "R1's language consistency: the share of the chain of thought's words in the target script");
}

}  // namespace aha::reward
