// JSON Lines: one JSON value per line. Used for prompt files, samples and metrics.
//
// Reading: blank (whitespace-only) lines are skipped, every line is checked to be valid UTF-8 before it is
// parsed, and every error names the file, the 1-based line number and (for UTF-8 and syntax errors) the
// column. Writing: one compact line per record, flushed after each, so a crash loses at most the line being
// written.
#pragma once

#include <cstdint>
#include <fstream>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "aha/core/config_json.h"

namespace aha::io {

// Returns the byte offset of the first invalid UTF-8 sequence in `s` (overlong forms, surrogates and code
// points above U+10FFFF are invalid), or nullopt when `s` is valid.
std::optional<size_t> find_invalid_utf8(std::string_view s);

struct JsonlRecord {
  int64_t line = 0;  // 1-based line number in the file
  Json value;
};

class JsonlReader {
 public:
  explicit JsonlReader(const std::string& path);
  // The next non-blank record, or nullopt at the end of the file. Throws aha::Error "<path>:<line>[:<col>]:
  // ...".
  std::optional<JsonlRecord> next();
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::ifstream in_;
  int64_t line_ = 0;
};

// Reads every record of a JSONL file.
std::vector<JsonlRecord> read_jsonl(const std::string& path);

class JsonlWriter {
 public:
  // Opens `path` for appending (append = true) or truncates it.
  explicit JsonlWriter(const std::string& path, bool append = true);
  void write(const Json& value);
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::ofstream out_;
};

}  // namespace aha::io
