// Built-in rewards (registered by register_builtins):
//   format     the R1-Zero layout <think>..</think><answer>..</answer>. params: mode "strict" (open-r1's
//   exact
//              layout: "<think>\n...\n</think>\n<answer>\n...\n</answer>", nothing around it) or "lenient"
//              (each tag once and in order, only whitespace between and around the blocks; the default);
//              prefix: text the prompt already ended with (e.g. "<think>"), counted as the completion's
//              start. Scores 1 or 0.
//   tag_count  open-r1's partial credit: 0.25 for each of "<think>\n", "\n</think>\n", "\n<answer>\n",
//              "\n</answer>" present exactly once. params: prefix.
//   math_accuracy  1 when the final answer (math.h; params.source auto|boxed|answer_tag) equals the field
//              `field` (default "answer") numerically within `tolerance` (relative above 1, absolute below;
//              default 1e-9, so 1000000 and 1000001 differ); skip when the field is absent or not a number;
//              0 when the completion has no parsable answer.
//   gsm8k      the same, with the ground truth taken after "####" in GSM8K's reference solution.
//   countdown  TinyZero's scores: 0 without an <answer>, format_score (0.1) for an answer that does not
//   parse,
//              does not use exactly the multiset in field `numbers`, or misses the field `target`; score (1)
//              when it equals the target within 1e-5 (countdown.h parses; no eval).
//   overlong   DAPO's soft overlong punishment of the token count |y|: 0 if |y| <= L_max - L_cache, then
//              ((L_max - L_cache) - |y|) / L_cache down to -1 at L_max, -1 beyond. params: max_length, cache.
//   exact_match  1 when the answer (the last <answer>..</answer>, or the whole completion with extract
//   "none")
//              equals the field `field` (default "answer") after trimming; params: field, extract,
//              ignore_case.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace aha::reward {

// The text inside the LAST <answer>...</answer> of `text`, or nullopt when there is no complete pair.
std::optional<std::string_view> last_answer(std::string_view text);

}  // namespace aha::reward
