// Final answers of math problems: where they are in a completion, and what number they denote.
//
// Extraction: the last \boxed{...} (braces nested), the last <answer>...</answer>, or "auto": the answer
// tag's content (a \boxed{} inside it wins), else the last \boxed{} anywhere. Normalisation turns what people
// write into a number: signs, thousands separators ("1,000"), decimals, fractions ("3/4", \frac{3}{4},
// \dfrac), percentages, dollar signs, trailing units ("12 apples", "5 km"), and simple LaTeX wrappers
// (\text{}, \mathrm{}, $...$, \(...\)). Any other LaTeX command (\sqrt, \pi, \cdot, ...) makes the answer
// an expression, not a number: nullopt. Both functions are total: any input gives a result or nullopt, in
// time linear in its length.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace aha::reward {

enum class AnswerSource { automatic, boxed, answer_tag };

// The content of the last \boxed{...} (nested braces allowed), or nullopt.
std::optional<std::string_view> last_boxed(std::string_view text);
std::optional<std::string_view> extract_answer(std::string_view text, AnswerSource source);

// The number an answer denotes, or nullopt when it is not a single number.
std::optional<double> parse_number(std::string_view answer);

// GSM8K's ground truth: the number after "####" in a reference solution.
std::optional<double> gsm8k_reference(std::string_view solution);

// Equal within `tolerance`, relative to the larger magnitude (absolute below 1).
bool numbers_match(double a, double b, double tolerance);

}  // namespace aha::reward
