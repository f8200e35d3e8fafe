// regex_match (builtin.h): a PCRE2 pattern against the completion, its answer or its chain of thought.
//
// PCRE2 is told its subjects are valid UTF-8 (no per-match check), so text that is not is first made valid
// the way the tokenizers' decoder does (U+FFFD per invalid subpart). The match limit bounds the time a
// pattern with nested quantifiers can take on hostile text.
#include <memory>

#include "../text/regex.h"
#include "aha/core/error.h"
#include "aha/reward/builtin.h"
#include "aha/reward/reward.h"
#include "aha/text/utf8.h"

namespace aha::reward {
namespace {

constexpr uint32_t kMatchLimit = 1000000;

bool valid_utf8(std::string_view s) {
  for (size_t pos = 0; pos < s.size();) {
    const text::Utf8Step step = text::utf8_step(s, pos);
    if (!step.valid) return false;
    pos += step.length;
  }
  return true;
}

class RegexMatch : public Reward {
 public:
  enum class Part { completion, answer, think };

  explicit RegexMatch(const Json& p) {
    const std::string name = "regex_match";
    check_param_keys(p, name,
                     {"pattern", "in", "mode", "ignore_case", "match_score", "miss_score", "prefix"});
    if (!p.contains("pattern")) throw Error("needs a pattern (PCRE2 syntax)", "reward regex_match: params");
    const std::string pattern = param_string(p, name, "pattern", "");
    const std::string part = param_string(p, name, "in", "completion");
    if (part == "completion") {
      part_ = Part::completion;
    } else if (part == "answer") {
      part_ = Part::answer;
    } else if (part == "think") {
      part_ = Part::think;
    } else {
      throw Error("expected \"completion\", \"answer\" or \"think\", got \"" + part + "\"",
                  "reward regex_match: params.in");
    }
    const std::string mode = param_string(p, name, "mode", "search");
    if (mode != "search" && mode != "full")
      throw Error("expected \"search\" or \"full\", got \"" + mode + "\"", "reward regex_match: params.mode");
    match_score_ = param_number(p, name, "match_score", 1.0);
    miss_score_ = param_number(p, name, "miss_score", 0.0);
    prefix_ = param_string(p, name, "prefix", "");
    if (!valid_utf8(pattern))
      throw Error("the pattern is not valid UTF-8", "reward regex_match: params.pattern");
    // Compiled as written first, so that an error's offset points into the user's pattern.
    const std::string flags = param_bool(p, name, "ignore_case", false) ? "(?i)" : "";
    try {
      text::detail::Regex check(pattern);
      regex_ = std::make_unique<text::detail::Regex>(
          mode == "full" ? flags + "\\A(?:" + pattern + ")\\z" : flags + pattern, kMatchLimit);
    } catch (const Error& e) {
      throw Error(e.message(), "reward regex_match: params.pattern");
    }
  }

  Score score(const Sample& s) const override {
    const std::string text = prefix_ + std::string(s.completion);
    std::optional<std::string_view> part = text;
    if (part_ == Part::answer) part = last_answer(text);
    if (part_ == Part::think) part = think_block(text);
    if (!part) return Score::of(miss_score_);
    const bool valid = valid_utf8(*part);
    const std::string repaired = valid ? std::string() : text::decode_utf8_lossy(*part);
    try {
      return Score::of(regex_->search(valid ? *part : repaired) ? match_score_ : miss_score_);
    } catch (const Error&) {  // the match limit: treated as no match, and said so
      Score out = Score::of(miss_score_);
      out.extras.emplace_back("limit", 1.0);
      return out;
    }
  }

 private:
  Part part_ = Part::completion;
  double match_score_ = 1, miss_score_ = 0;
  std::string prefix_;
  std::unique_ptr<text::detail::Regex> regex_;
};

}  // namespace

void register_regex_match(Registry& r) {
  r.add(
      "regex_match", [](const Json& p) { return std::make_unique<RegexMatch>(p); },
      "a PCRE2 pattern matches the completion, its answer or its chain of thought (search or full match)");
}

}  // namespace aha::reward
