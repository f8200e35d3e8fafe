// Recursive descent over:  expr := term (('+'|'-') term)* ;  term := factor (('*'|'/') factor)* ;
//                          factor := ('-'|'+') factor | integer | '(' expr ')'
#include "aha/reward/countdown.h"

#include <algorithm>
#include <cmath>

#include "aha/core/error.h"
#include "aha/reward/builtin.h"
#include "aha/reward/reward.h"

namespace aha::reward {
namespace {

class Parser {
 public:
  explicit Parser(std::string_view s) : s_(s) {}

  std::optional<ParsedExpression> run() {
    ParsedExpression out;
    numbers_ = &out.numbers;
    auto v = expr(0);
    skip();
    if (!v || pos_ != s_.size() || !std::isfinite(*v)) return std::nullopt;
    out.value = *v;
    return out;
  }

 private:
  void skip() {
    while (pos_ < s_.size() && s_[pos_] == ' ')
      ++pos_;
  }
  bool eat(char c) {
    skip();
    if (pos_ < s_.size() && s_[pos_] == c) {
      ++pos_;
      return true;
    }
    return false;
  }
  std::optional<double> expr(int depth) {
    auto v = term(depth);
    while (v) {
      if (eat('+')) {
        auto r = term(depth);
        if (!r) return std::nullopt;
        *v += *r;
      } else if (eat('-')) {
        auto r = term(depth);
        if (!r) return std::nullopt;
        *v -= *r;
      } else {
        break;
      }
    }
    return v;
  }
  std::optional<double> term(int depth) {
    auto v = factor(depth);
    while (v) {
      if (eat('*')) {
        auto r = factor(depth);
        if (!r) return std::nullopt;
        *v *= *r;
      } else if (eat('/')) {
        auto r = factor(depth);
        if (!r || *r == 0) return std::nullopt;
        *v /= *r;
      } else {
        break;
      }
    }
    return v;
  }
  std::optional<double> factor(int depth) {
    if (depth > 64) return std::nullopt;
    if (eat('-')) {
      auto v = factor(depth + 1);
      return v ? std::optional(-*v) : std::nullopt;
    }
    if (eat('+')) return factor(depth + 1);
    if (eat('(')) {
      auto v = expr(depth + 1);
      if (!v || !eat(')')) return std::nullopt;
      return v;
    }
    skip();
    const size_t start = pos_;
    int64_t n = 0;
    while (pos_ < s_.size() && s_[pos_] >= '0' && s_[pos_] <= '9') {
      if (pos_ - start >= 18) return std::nullopt;
      n = n * 10 + (s_[pos_++] - '0');
    }
    if (pos_ == start) return std::nullopt;
    numbers_->push_back(n);
    return static_cast<double>(n);
  }

  std::string_view s_;
  size_t pos_ = 0;
  std::vector<int64_t>* numbers_ = nullptr;
};

std::vector<int64_t> numbers_of(const Json& j) {
  std::vector<int64_t> out;
  if (j.is_array()) {
    for (const auto& v : j)
      if (v.is_number_integer()) out.push_back(v.get<int64_t>());
  }
  return out;
}

// TinyZero's countdown reward: 0 without an answer, format_score for a well-formed answer that is wrong or
// does not use exactly the given numbers, score when it equals the target within 1e-5.
class Countdown : public Reward {
 public:
  explicit Countdown(const Json& p) {
    check_param_keys(p, "countdown", {"numbers_field", "target_field", "format_score", "score"});
    numbers_field_ = param_string(p, "countdown", "numbers_field", "numbers");
    target_field_ = param_string(p, "countdown", "target_field", "target");
    format_score_ = param_number(p, "countdown", "format_score", 0.1);
    score_ = param_number(p, "countdown", "score", 1.0);
  }
  Score score(const Sample& s) const override {
    if (!s.fields || !s.fields->contains(numbers_field_) || !s.fields->contains(target_field_))
      return Score::skip();
    const Json& target = (*s.fields)[target_field_];
    if (!target.is_number()) return Score::skip();
    std::vector<int64_t> given = numbers_of((*s.fields)[numbers_field_]);
    const auto answer = last_answer(s.completion);
    if (!answer) return Score::of(0.0);
    const auto parsed = parse_expression(*answer);
    if (!parsed) return Score::of(format_score_);
    std::vector<int64_t> used = parsed->numbers;
    std::sort(used.begin(), used.end());
    std::sort(given.begin(), given.end());
    if (used != given) return Score::of(format_score_);
    return Score::of(std::abs(parsed->value - target.get<double>()) < 1e-5 ? score_ : format_score_);
  }

 private:
  std::string numbers_field_, target_field_;
  double format_score_ = 0.1, score_ = 1.0;
};

}  // namespace

std::optional<ParsedExpression> parse_expression(std::string_view text) {
  if (text.size() > 1000) return std::nullopt;
  while (!text.empty() && (text.front() == ' ' || text.front() == '\n' || text.front() == '\t'))
    text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\n' || text.back() == '\t'))
    text.remove_suffix(1);
  return Parser(text).run();
}

void register_countdown(Registry& r) {
  r.add(
      "countdown", [](const Json& p) { return std::make_unique<Countdown>(p); },
      "TinyZero's countdown: the answer's expression uses exactly the given numbers and equals the target");
}

}  // namespace aha::reward
