#include "aha/text/utf8.h"

#include <cstdint>
#include <cstdio>

namespace aha::text {

Utf8Step utf8_step(std::string_view s, size_t pos) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const size_t n = s.size();
  const unsigned char c = p[pos];
  if (c < 0x80) return {c, 1, true};
  size_t need;
  char32_t cp;
  // The range of the second byte depends on the first (no overlong forms, no surrogates, nothing above
  // U+10FFFF); later bytes are plain continuation bytes.
  unsigned char lo = 0x80, hi = 0xBF;
  if (c >= 0xC2 && c <= 0xDF) {
    need = 1;
    cp = c & 0x1F;
  } else if (c >= 0xE0 && c <= 0xEF) {
    need = 2;
    cp = c & 0x0F;
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    need = 3;
    cp = c & 0x07;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;
  } else {
    return {0, 1, false};
  }
  size_t len = 1;
  for (size_t k = 0; k < need; ++k) {
    if (pos + len >= n) return {0, len, false};
    const unsigned char b = p[pos + len];
    if (k == 0 ? (b < lo || b > hi) : (b & 0xC0) != 0x80) return {0, len, false};
    cp = (cp << 6) | (b & 0x3F);
    ++len;
  }
  return {cp, len, true};
}

void append_utf8(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

std::string decode_utf8_lossy(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size());
  size_t i = 0;
  while (i < bytes.size()) {
    const Utf8Step step = utf8_step(bytes, i);
    if (step.valid)
      out.append(bytes.substr(i, step.length));
    else
      out += "\xEF\xBF\xBD";
    i += step.length;
  }
  return out;
}

std::string quote_bytes(std::string_view bytes) {
  std::string out = "\"";
  char buf[16];
  size_t i = 0;
  while (i < bytes.size()) {
    const Utf8Step step = utf8_step(bytes, i);
    if (!step.valid) {
      for (size_t k = 0; k < step.length; ++k) {
        std::snprintf(buf, sizeof buf, "\\x%02x", static_cast<unsigned char>(bytes[i + k]));
        out += buf;
      }
    } else if (step.code_point == '\n') {
      out += "\\n";
    } else if (step.code_point == '\r') {
      out += "\\r";
    } else if (step.code_point == '\t') {
      out += "\\t";
    } else if (step.code_point == '"') {
      out += "\\\"";
    } else if (step.code_point == '\\') {
      out += "\\\\";
    } else if (step.code_point < 0x20 || (step.code_point >= 0x7F && step.code_point < 0xA0)) {
      std::snprintf(buf, sizeof buf, "\\u{%x}", static_cast<unsigned>(step.code_point));
      out += buf;
    } else {
      out.append(bytes.substr(i, step.length));
    }
    i += step.length;
  }
  out += "\"";
  return out;
}

}  // namespace aha::text
