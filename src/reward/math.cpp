#include "aha/reward/math.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <string>

#include "aha/reward/builtin.h"

namespace aha::reward {
namespace {

bool is_space(char c) {
  return std::isspace(static_cast<unsigned char>(c)) != 0;
}
bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && is_space(s.front()))
    s.remove_prefix(1);
  while (!s.empty() && is_space(s.back()))
    s.remove_suffix(1);
  return s;
}

// Commands that only dress a number up: they vanish, their braced content stays.
bool wrapper(std::string_view cmd) {
  for (std::string_view w : {"text", "textbf", "textit",       "textrm", "mathrm", "mathbf", "mathit",
                             "mbox", "boxed",  "displaystyle", "left",   "right",  "bigl",   "bigr",
                             "Bigl", "Bigr",   "big",          "Big",    "quad",   "qquad",  "hbox"})
    if (cmd == w) return true;
  return false;
}

// Removes "\cmd{" ... "}" wrappers (keeping the content) and "\cmd" spellings of symbols; drops $, \(, \),
// spaces.
std::string unwrap_latex(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    if (s[i] == '\\') {
      size_t j = i + 1;
      while (j < s.size() && std::isalpha(static_cast<unsigned char>(s[j])))
        ++j;
      const std::string_view cmd = s.substr(i + 1, j - i - 1);
      if (cmd == "frac" || cmd == "dfrac" || cmd == "tfrac") {
        out += "\\frac";  // kept: parse_fraction reads it
      } else if (cmd.empty() && j < s.size()) {
        // "\$", "\%", "\(", "\)", "\," ...: a symbol; keep % (percent) and drop the rest
        if (s[j] == '%') out += '%';
        ++j;
      } else if (!wrapper(cmd)) {
        out += '\\';  // \sqrt, \pi, \cdot, ...: an expression, not a number; kept so that parsing fails
        out += cmd;
      }
      // wrappers (\text, \mathrm, \boxed, \left, ...) vanish; their braces are handled below
      i = j;
      continue;
    }
    if (s[i] == '$' || is_space(s[i])) {
      ++i;
      continue;
    }
    out += s[i++];
  }
  return out;
}

// A plain decimal number with optional sign, thousands separators and decimals, at the start of s; returns
// its length in `used`.
std::optional<double> leading_number(std::string_view s, size_t& used) {
  size_t i = 0;
  std::string digits;
  if (i < s.size() && (s[i] == '-' || s[i] == '+')) digits += s[i++];
  const size_t int_start = i;
  // A comma is a thousands separator only between digits and before exactly three digits ("1,000", not
  // "1,00").
  auto separator = [&](size_t k) {
    return k > int_start && k + 3 < s.size() && is_digit(s[k + 1]) && is_digit(s[k + 2]) &&
           is_digit(s[k + 3]) && (k + 4 == s.size() || !is_digit(s[k + 4]));
  };
  while (i < s.size() && (is_digit(s[i]) || (s[i] == ',' && separator(i)))) {
    if (s[i] != ',') digits += s[i];
    ++i;
  }
  bool any = i > int_start;
  if (i < s.size() && s[i] == '.') {
    size_t k = i + 1;
    std::string frac;
    while (k < s.size() && is_digit(s[k]))
      frac += s[k++];
    if (!frac.empty()) {
      digits += "." + frac;
      i = k;
      any = true;
    } else if (any) {
      i = k;  // "12." is 12
    }
  }
  if (!any) return std::nullopt;
  used = i;
  return std::strtod(digits.c_str(), nullptr);
}

// "{a}" at s[i]: the content, with i moved past the closing brace.
std::optional<std::string_view> braced(std::string_view s, size_t& i) {
  if (i >= s.size() || s[i] != '{') return std::nullopt;
  int depth = 0;
  for (size_t k = i; k < s.size(); ++k) {
    if (s[k] == '{') ++depth;
    if (s[k] == '}' && --depth == 0) {
      const std::string_view inner = s.substr(i + 1, k - i - 1);
      i = k + 1;
      return inner;
    }
  }
  return std::nullopt;
}

std::optional<double> parse_plain(std::string_view s, int depth);

std::optional<double> parse_plain(std::string_view s, int depth) {
  if (depth > 4) return std::nullopt;
  while (!s.empty() && (s.front() == '{' && s.back() == '}'))
    s = s.substr(1, s.size() - 2);
  if (s.empty()) return std::nullopt;
  double sign = 1;
  if (s.front() == '-' && s.size() > 1 && s[1] == '\\') {
    sign = -1;
    s.remove_prefix(1);
  }
  if (s.rfind("\\frac", 0) == 0) {
    size_t i = 5;
    const auto num = braced(s, i), den = braced(s, i);
    if (!num || !den) return std::nullopt;
    const auto a = parse_plain(*num, depth + 1), b = parse_plain(*den, depth + 1);
    if (!a || !b || *b == 0 || i != s.size()) return std::nullopt;
    return sign * *a / *b;
  }
  size_t used = 0;
  auto value = leading_number(s, used);
  if (!value) return std::nullopt;
  std::string_view rest = s.substr(used);
  if (!rest.empty() && rest.front() == '/') {  // a / b
    size_t used2 = 0;
    auto den = leading_number(rest.substr(1), used2);
    if (!den || *den == 0 || used2 + 1 != rest.size()) return std::nullopt;
    return *value / *den;
  }
  if (!rest.empty() && rest.front() == '%') rest.remove_prefix(1);  // 50% means 50 (GSM8K style)
  // Trailing units: letters (and a final period) only, e.g. "12apples", "5km", "3.".
  while (!rest.empty() && rest.back() == '.')
    rest.remove_suffix(1);
  if (!std::all_of(rest.begin(), rest.end(),
                   [](char c) { return std::isalpha(static_cast<unsigned char>(c)) != 0; }))
    return std::nullopt;
  return sign * *value;
}

}  // namespace

std::optional<std::string_view> last_boxed(std::string_view text) {
  const size_t at = text.rfind("\\boxed");
  if (at == std::string_view::npos) return std::nullopt;
  size_t i = at + 6;
  while (i < text.size() && is_space(text[i]))
    ++i;
  return braced(text, i);
}

std::optional<std::string_view> extract_answer(std::string_view text, AnswerSource source) {
  switch (source) {
    case AnswerSource::boxed:
      return last_boxed(text);
    case AnswerSource::answer_tag:
      return last_answer(text);
    case AnswerSource::automatic: {
      if (auto a = last_answer(text)) {
        if (auto b = last_boxed(*a)) return b;
        return a;
      }
      return last_boxed(text);
    }
  }
  return std::nullopt;
}

std::optional<double> parse_number(std::string_view answer) {
  if (answer.size() > 4096) return std::nullopt;  // no answer is that long; bounds the work on hostile input
  std::string s = unwrap_latex(trim(answer));
  // A boxed answer inside the answer: take its content.
  if (auto b = last_boxed(s)) s = std::string(*b);
  auto v = parse_plain(s, 0);
  if (v && !std::isfinite(*v)) return std::nullopt;
  return v;
}

std::optional<double> gsm8k_reference(std::string_view solution) {
  const size_t at = solution.rfind("####");
  if (at == std::string_view::npos) return std::nullopt;
  return parse_number(solution.substr(at + 4));
}

bool numbers_match(double a, double b, double tolerance) {
  const double scale = std::max({1.0, std::abs(a), std::abs(b)});
  return std::abs(a - b) <= tolerance * scale;
}

}  // namespace aha::reward
