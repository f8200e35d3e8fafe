// UTF-8 helpers shared by the tokenizers and the CLI.
//
// decode_utf8_lossy() is the one place where bytes that are not UTF-8 become text: it must replace them
// exactly as HF tokenizers' ByteLevel decoder does (Rust's String::from_utf8_lossy), one U+FFFD per maximal
// invalid subpart, because generated ids are arbitrary and the decoded text feeds reward functions that
// compare with Python.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace aha::text {

// One step of UTF-8 decoding at `pos`: a valid code point (`valid`, `length` its byte count), or an invalid
// maximal subpart (`length` >= 1 bytes that form no code point and are replaced by one U+FFFD).
struct Utf8Step {
  char32_t code_point = 0;
  size_t length = 1;
  bool valid = false;
};
Utf8Step utf8_step(std::string_view s, size_t pos);

// Appends the UTF-8 encoding of `cp` (which must be a Unicode scalar value).
void append_utf8(std::string& out, char32_t cp);

// `bytes` as valid UTF-8: each maximal invalid subpart (Unicode 15 section 3.9, "U+FFFD substitution of
// maximal subparts", as Rust and WHATWG do) becomes U+FFFD.
std::string decode_utf8_lossy(std::string_view bytes);

// `bytes` made readable on one line, in double quotes: \n \r \t \" \\ escaped, other control characters as
// \u{..}, bytes that are not UTF-8 as \xNN; everything else printed as is.
std::string quote_bytes(std::string_view bytes);

}  // namespace aha::text
