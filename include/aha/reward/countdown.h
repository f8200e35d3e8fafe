// The countdown task's arithmetic: a safe parser for expressions made of integers, + - * /, parentheses and
// spaces (no eval; anything else is rejected), the numbers an expression uses, and its value.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

namespace aha::reward {

struct ParsedExpression {
  double value = 0;
  std::vector<int64_t> numbers;  // the integer literals in order of appearance
};

// nullopt for anything that is not a well-formed expression (unknown characters, unbalanced parentheses, a
// division by zero, a literal over 18 digits, nesting deeper than 64, more than 1000 characters).
std::optional<ParsedExpression> parse_expression(std::string_view text);

}  // namespace aha::reward
