// The built-in rewards that need no parsing of their own: format, tag_count, exact_match, overlong, and
// math_accuracy / gsm8k over math.h (see builtin.h); register_builtins adds the others from their files.
#include "aha/reward/builtin.h"

#include <algorithm>
#include <cctype>

#include "aha/core/error.h"
#include "aha/reward/math.h"
#include "aha/reward/reward.h"

namespace aha::reward {
namespace {

constexpr std::string_view kThinkOpen = "<think>", kThinkClose = "</think>", kAnswerOpen = "<answer>",
                           kAnswerClose = "</answer>";

size_t count(std::string_view text, std::string_view needle) {
  size_t n = 0;
  for (size_t pos = text.find(needle); pos != std::string_view::npos;
       pos = text.find(needle, pos + needle.size()))
    ++n;
  return n;
}

bool all_space(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isspace(c) != 0; });
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front())))
    s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back())))
    s.remove_suffix(1);
  return s;
}

// "<think>\n A \n</think>\n<answer>\n B \n</answer>", each tag exactly once (open-r1's layout).
bool strict_layout(std::string_view t) {
  for (auto tag : {kThinkOpen, kThinkClose, kAnswerOpen, kAnswerClose})
    if (count(t, tag) != 1) return false;
  if (t.substr(0, 8) != "<think>\n") return false;
  const size_t mid = t.find("\n</think>\n<answer>\n");
  if (mid == std::string_view::npos || mid < 8) return false;
  return t.size() >= 10 && t.substr(t.size() - 10) == "\n</answer>" && mid + 19 <= t.size() - 10;
}

// Each tag once, in order, with only whitespace before <think>, between </think> and <answer>, and after
// </answer>.
bool lenient_layout(std::string_view t) {
  for (auto tag : {kThinkOpen, kThinkClose, kAnswerOpen, kAnswerClose})
    if (count(t, tag) != 1) return false;
  const size_t a = t.find(kThinkOpen), b = t.find(kThinkClose), c = t.find(kAnswerOpen),
               d = t.find(kAnswerClose);
  if (!(a < b && b < c && c < d)) return false;
  return all_space(t.substr(0, a)) &&
         all_space(t.substr(b + kThinkClose.size(), c - b - kThinkClose.size())) &&
         all_space(t.substr(d + kAnswerClose.size()));
}

class Format : public Reward {
 public:
  explicit Format(const Json& p) {
    check_param_keys(p, "format", {"mode", "prefix"});
    const std::string mode = param_string(p, "format", "mode", "lenient");
    if (mode != "strict" && mode != "lenient")
      throw Error("expected \"strict\" or \"lenient\", got \"" + mode + "\"", "reward format: params.mode");
    strict_ = mode == "strict";
    prefix_ = param_string(p, "format", "prefix", "");
  }
  Score score(const Sample& s) const override {
    const std::string text = prefix_ + std::string(s.completion);
    return Score::of((strict_ ? strict_layout(text) : lenient_layout(text)) ? 1.0 : 0.0);
  }

 private:
  bool strict_ = false;
  std::string prefix_;
};

class TagCount : public Reward {
 public:
  explicit TagCount(const Json& p) {
    check_param_keys(p, "tag_count", {"prefix"});
    prefix_ = param_string(p, "tag_count", "prefix", "");
  }
  Score score(const Sample& s) const override {
    const std::string text = prefix_ + std::string(s.completion);
    double v = 0;
    for (std::string_view piece : {"<think>\n", "\n</think>\n", "\n<answer>\n", "\n</answer>"})
      if (count(text, piece) == 1) v += 0.25;
    return Score::of(v);
  }

 private:
  std::string prefix_;
};

class ExactMatch : public Reward {
 public:
  explicit ExactMatch(const Json& p) {
    check_param_keys(p, "exact_match", {"field", "extract", "ignore_case"});
    field_ = param_string(p, "exact_match", "field", "answer");
    const std::string extract = param_string(p, "exact_match", "extract", "answer_tag");
    if (extract != "answer_tag" && extract != "none")
      throw Error("expected \"answer_tag\" or \"none\", got \"" + extract + "\"",
                  "reward exact_match: params.extract");
    from_tag_ = extract == "answer_tag";
    ignore_case_ = param_bool(p, "exact_match", "ignore_case", false);
  }
  Score score(const Sample& s) const override {
    const auto truth = s.field(field_);
    if (!truth) return Score::skip();  // nothing to compare with: leave the sample out rather than punish it
    std::optional<std::string_view> got = from_tag_ ? last_answer(s.completion) : std::optional(s.completion);
    if (!got) return Score::of(0.0);
    std::string a(trim(*got)), b(trim(*truth));
    if (ignore_case_) {
      for (auto* str : {&a, &b})
        std::transform(str->begin(), str->end(), str->begin(),
                       [](unsigned char c) { return std::tolower(c); });
    }
    return Score::of(a == b ? 1.0 : 0.0);
  }

 private:
  std::string field_;
  bool from_tag_ = true, ignore_case_ = false;
};

// DAPO's soft overlong punishment on the completion's token count |y|: 0 up to max_length - cache, then
// falling linearly to -1 at max_length, and -1 beyond.
class Overlong : public Reward {
 public:
  explicit Overlong(const Json& p) {
    check_param_keys(p, "overlong", {"max_length", "cache"});
    if (!p.contains("max_length") || !p.contains("cache"))
      throw Error("needs max_length (L_max) and cache (L_cache), in tokens", "reward overlong: params");
    max_length_ = param_number(p, "overlong", "max_length", 0);
    cache_ = param_number(p, "overlong", "cache", 0);
    if (!(cache_ > 0 && cache_ <= max_length_))
      throw Error("must satisfy 0 < cache <= max_length", "reward overlong: params.cache");
  }
  Score score(const Sample& s) const override {
    const double len = static_cast<double>(s.completion_tokens), free = max_length_ - cache_;
    if (len <= free) return Score::of(0.0);
    if (len <= max_length_) return Score::of((free - len) / cache_);
    return Score::of(-1.0);
  }

 private:
  double max_length_ = 0, cache_ = 0;
};

// math_accuracy and gsm8k: the completion's final answer against the ground truth, numerically.
class MathAccuracy : public Reward {
 public:
  MathAccuracy(const Json& p, std::string name, bool gsm8k) : name_(std::move(name)), gsm8k_(gsm8k) {
    check_param_keys(p, name_, {"source", "field", "tolerance"});
    const std::string source = param_string(p, name_, "source", "auto");
    if (source == "auto") {
      source_ = AnswerSource::automatic;
    } else if (source == "boxed") {
      source_ = AnswerSource::boxed;
    } else if (source == "answer_tag") {
      source_ = AnswerSource::answer_tag;
    } else {
      throw Error("expected \"auto\", \"boxed\" or \"answer_tag\", got \"" + source + "\"",
                  "reward " + name_ + ": params.source");
    }
    field_ = param_string(p, name_, "field", "answer");
    tolerance_ = param_number(p, name_, "tolerance", 1e-9);
    if (tolerance_ < 0) throw Error("must be >= 0", "reward " + name_ + ": params.tolerance");
  }
  Score score(const Sample& s) const override {
    const auto truth_text = s.field(field_);
    if (!truth_text) return Score::skip();
    const auto truth = gsm8k_ ? gsm8k_reference(*truth_text) : parse_number(*truth_text);
    if (!truth) return Score::skip();  // an unparsable reference says nothing about the completion (open-r1)
    const auto answer = extract_answer(s.completion, source_);
    if (!answer) return Score::of(0.0);
    const auto got = parse_number(*answer);
    return Score::of(got && numbers_match(*got, *truth, tolerance_) ? 1.0 : 0.0);
  }

 private:
  std::string name_;
  bool gsm8k_;
  AnswerSource source_ = AnswerSource::automatic;
  std::string field_;
  double tolerance_ = 1e-9;
};

}  // namespace

std::optional<std::string_view> last_answer(std::string_view text) {
  const size_t close = text.rfind(kAnswerClose);
  if (close == std::string_view::npos) return std::nullopt;
  const size_t open = text.rfind(kAnswerOpen, close);
  if (open == std::string_view::npos) return std::nullopt;
  return text.substr(open + kAnswerOpen.size(), close - open - kAnswerOpen.size());
}

std::optional<std::string_view> think_block(std::string_view text) {
  const size_t open = text.find(kThinkOpen);
  if (open == std::string_view::npos) return std::nullopt;
  const size_t start = open + kThinkOpen.size();
  const size_t close = text.find(kThinkClose, start);
  return text.substr(start, close == std::string_view::npos ? std::string_view::npos : close - start);
}

// Defined next to their rewards.
void register_countdown(Registry& r);
void register_regex_match(Registry& r);
void register_length_penalty(Registry& r);
void register_language(Registry& r);
void register_process(Registry& r);

void register_builtins(Registry& r) {
  register_countdown(r);
  register_regex_match(r);
  register_length_penalty(r);
  register_language(r);
  register_process(r);
  r.add(
      "overlong", [](const Json& p) { return std::make_unique<Overlong>(p); },
      "DAPO's soft overlong punishment: 0, then down to -1 over the last `cache` tokens before `max_length`");
  r.add(
      "format", [](const Json& p) { return std::make_unique<Format>(p); },
      "the R1-Zero <think>/<answer> layout (strict or lenient): 1 or 0");
  r.add(
      "tag_count", [](const Json& p) { return std::make_unique<TagCount>(p); },
      "0.25 per think/answer tag present exactly once");
  r.add(
      "math_accuracy",
      [](const Json& p) { return std::make_unique<MathAccuracy>(p, "math_accuracy", false); },
      "the final answer (answer tag or \\boxed{}) equals the numeric field `answer`");
  r.add(
      "gsm8k", [](const Json& p) { return std::make_unique<MathAccuracy>(p, "gsm8k", true); },
      "the final answer equals the number after #### in GSM8K's reference solution");
  r.add(
      "exact_match", [](const Json& p) { return std::make_unique<ExactMatch>(p); },
      "the answer equals a field of the prompt (trimmed)");
}

}  // namespace aha::reward
