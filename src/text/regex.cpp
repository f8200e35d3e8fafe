#include "regex.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "aha/core/error.h"

namespace aha::text::detail {

struct Regex::Code {
  pcre2_code* code = nullptr;
  pcre2_match_context* context = nullptr;  // null: PCRE2's default limits
  ~Code() {
    pcre2_match_context_free(context);
    pcre2_code_free(code);
  }
};

namespace {

struct MatchData {
  pcre2_match_data* data;
  explicit MatchData(const pcre2_code* code) : data(pcre2_match_data_create_from_pattern(code, nullptr)) {
    AHA_CHECK(data != nullptr, "out of memory creating PCRE2 match data");
  }
  ~MatchData() { pcre2_match_data_free(data); }
  MatchData(const MatchData&) = delete;
  MatchData& operator=(const MatchData&) = delete;
};

// One match at or after `from`; false when there is none. The JIT's stack is small by default: a match that
// exhausts it is retried by the interpreter, which has no such limit short of PCRE2's match limits.
bool match_at(const pcre2_code* code, pcre2_match_context* context, std::string_view text, size_t from,
              MatchData& md, size_t& start, size_t& end) {
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  int rc = pcre2_match(code, subject, text.size(), from, PCRE2_NO_UTF_CHECK, md.data, context);
  if (rc == PCRE2_ERROR_JIT_STACKLIMIT)
    rc = pcre2_match(code, subject, text.size(), from, PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT, md.data, context);
  if (rc == PCRE2_ERROR_NOMATCH) return false;
  if (rc < 0) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(rc, msg, sizeof msg);
    AHA_FAIL("regex match failed: ", reinterpret_cast<const char*>(msg));
  }
  const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md.data);
  start = ov[0];
  end = ov[1];
  return true;
}

size_t char_length(unsigned char lead) {
  return lead < 0x80 ? 1 : lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
}

}  // namespace

Regex::Regex(const std::string& pattern, uint32_t match_limit) {
  int err = 0;
  PCRE2_SIZE offset = 0;
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                                   PCRE2_UTF | PCRE2_UCP, &err, &offset, nullptr);
  if (code == nullptr) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(err, msg, sizeof msg);
    AHA_FAIL("regex /", pattern, "/ does not compile (PCRE2): ", reinterpret_cast<const char*>(msg),
             " at offset ", offset);
  }
  auto owned = std::make_shared<Code>();
  owned->code = code;
  if (match_limit > 0) {
    owned->context = pcre2_match_context_create(nullptr);
    AHA_CHECK(owned->context != nullptr, "out of memory creating a PCRE2 match context");
    pcre2_set_match_limit(owned->context, match_limit);
  }
  pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);  // without JIT support, matching falls back to the interpreter
  code_ = std::move(owned);
}

std::vector<std::pair<size_t, size_t>> Regex::find_all(std::string_view text) const {
  std::vector<std::pair<size_t, size_t>> out;
  MatchData md(code_->code);
  size_t from = 0;
  bool matched_before = false;
  size_t last_match_end = 0;
  while (from <= text.size()) {
    size_t s = 0, e = 0;
    if (!match_at(code_->code, code_->context, text, from, md, s, e)) break;
    if (s == e && matched_before && last_match_end == e) {
      from += e < text.size() ? char_length(static_cast<unsigned char>(text[e])) : 1;
      continue;
    }
    out.emplace_back(s, e);
    from = e;
    matched_before = true;
    last_match_end = e;
  }
  return out;
}

bool Regex::search(std::string_view text) const {
  MatchData md(code_->code);
  size_t s = 0, e = 0;
  return match_at(code_->code, code_->context, text, 0, md, s, e);
}

}  // namespace aha::text::detail
