// Built-in rewards (registered by register_builtins). Unknown params are errors; every param has a default
// unless marked "required".
//
// format        The R1-Zero layout <think>..</think><answer>..</answer>. Scores 1 or 0.
//               mode: "lenient" (default: each tag once and in order, only whitespace around the blocks) or
//               "strict" (open-r1's "<think>\n...\n</think>\n<answer>\n...\n</answer>", nothing around).
//               prefix: text the prompt already ended with (e.g. "<think>"), read as the completion's start.
// tag_count     open-r1's partial credit: 0.25 for each of "<think>\n", "\n</think>\n", "\n<answer>\n" and
//               "\n</answer>" present exactly once. params: prefix.
// math_accuracy 1 when the final answer (math.h; source: "auto" | "boxed" | "answer_tag") equals the field
//               `field` (default "answer") numerically within `tolerance` (relative above 1, absolute below;
//               default 1e-9); skip when the field is absent or not a number; 0 when the completion has no
//               parsable answer.
// gsm8k         The same, with the ground truth taken after "####" in GSM8K's reference solution.
// countdown     TinyZero's scores: 0 without an <answer>; format_score (0.1) for an answer that does not
//               parse, does not use exactly the multiset in field `numbers` (numbers_field), or misses the
//               target; score (1) when it equals field `target` (target_field) within 1e-5 (countdown.h).
// overlong      DAPO's soft overlong punishment of the token count |y|: 0 if |y| <= L_max - L_cache, then
//               ((L_max - L_cache) - |y|) / L_cache, down to -1 at L_max; -1 beyond. params (required):
//               max_length (L_max), cache (L_cache).
// exact_match   1 when the answer (the last <answer>..</answer>; extract "none": the whole completion)
//               equals the field `field` (default "answer") after trimming, else 0; skip without the field.
//               params: field, extract ("answer_tag" | "none"), ignore_case.
// regex_match   match_score (1) when the PCRE2 `pattern` (required) matches, else miss_score (0).
//               in: where to look, "completion" (default), "answer" (the last <answer> block; miss_score
//               when there is none) or "think" (the chain of thought, see think_block). mode: "search"
//               (default: anywhere) or "full" (the whole part, as Python's re.fullmatch). ignore_case.
//               prefix (as in format). Patterns are UTF-8 with Unicode properties; a match that needs more
//               than match_limit (1e6) backtracking steps scores miss_score with extra "limit" = 1.
// length_penalty  mode "kimi" (default), Kimi k1.5's length reward over the samples of one prompt in the
//               batch: lambda_i = 0.5 - (len_i - min_len) / (max_len - min_len) (0 when all lengths are
//               equal); a correct sample scores lambda_i, a wrong one min(0, lambda_i). Correct means the
//               reward `accuracy` ({"name": a built-in, "params": {...}}) scores at least `threshold`
//               (default 1); without `accuracy` every sample counts as correct; a sample the judge skips
//               is skipped. Needs the batch (RewardSet gives it one); a sample scored alone gets 0.
//               mode "linear": 0 up to `target` (required), then -slope (required) per unit beyond it,
//               never below `floor` (default -1).
//               unit: "tokens" (default, completion_tokens) or "chars" (UTF-8 code points of the completion).
// language_consistency  R1's language reward: the share of the chain of thought's words in the target
//               script(s) (language.h). script: a name or a list ("latin" default, "cyrillic", "han", "cjk",
//               ...); unit: "words" (default) or "letters"; source: "think" (default, see think_block;
//               0 when there is none) or "completion"; prefix (as in format). A chain of thought without
//               a single letter (only digits and symbols) scores 1. Extra "counted": the words counted.
// process       An external worker in any language (process.h): params argv (required), timeout_s,
//               batch_size, fallback_score.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace aha::reward {

// The text inside the LAST <answer>...</answer> of `text`, or nullopt when there is no complete pair.
std::optional<std::string_view> last_answer(std::string_view text);

// The chain of thought: the text after the first <think>, up to the first </think> after it, or to the end
// of the text when it is not closed (a completion cut off while thinking). nullopt without a <think>.
std::optional<std::string_view> think_block(std::string_view text);

}  // namespace aha::reward
