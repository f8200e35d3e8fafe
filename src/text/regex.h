// A compiled PCRE2 pattern (UTF, Unicode properties, JIT when available) that lists its matches the way HF
// tokenizers' Oniguruma wrapper does. Private to src/text/: PCRE2 stays out of the public headers.
//
// Matching assumes valid UTF-8 input (callers validate once per text). A Regex is immutable and may be used
// from several threads at once: each call allocates its own match data.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace aha::text::detail {

class Regex {
 public:
  // Throws aha::Error with PCRE2's message and the offset in the pattern. `match_limit` > 0 caps the work of
  // one match (PCRE2's match limit: backtracking steps), so that a pattern with nested quantifiers cannot
  // take exponential time on hostile text; a match that hits it throws. 0: PCRE2's default (10 million).
  explicit Regex(const std::string& pattern, uint32_t match_limit = 0);

  // Non-overlapping matches [start, end) from left to right. An empty match right where the previous match
  // ended is skipped (the search moves on by one character), as Oniguruma's find_iter does.
  std::vector<std::pair<size_t, size_t>> find_all(std::string_view text) const;
  // Whether the pattern matches somewhere in `text`.
  bool search(std::string_view text) const;

 private:
  struct Code;
  std::shared_ptr<const Code> code_;
};

}  // namespace aha::text::detail
