#include "aha/io/jsonl.h"

#include <cstring>

#include "aha/core/error.h"

namespace aha::io {

std::optional<size_t> find_invalid_utf8(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const size_t n = s.size();
  size_t i = 0;
  while (i < n) {
    const unsigned char c = p[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t len;
    uint32_t cp;
    if ((c & 0xE0) == 0xC0) {
      len = 2;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4;
      cp = c & 0x07;
    } else {
      return i;
    }
    if (i + len > n) return i;
    for (size_t k = 1; k < len; ++k) {
      if ((p[i + k] & 0xC0) != 0x80) return i;
      cp = (cp << 6) | (p[i + k] & 0x3F);
    }
    const bool overlong = (len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000);
    if (overlong || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return i;
    i += len;
  }
  return std::nullopt;
}

JsonlReader::JsonlReader(const std::string& path) : path_(path), in_(path, std::ios::binary) {
  if (!in_) throw Error(std::string("cannot open: ") + std::strerror(errno), path);
}

std::optional<JsonlRecord> JsonlReader::next() {
  std::string line;
  while (std::getline(in_, line)) {
    ++line_;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t\r\f\v") == std::string::npos) continue;
    const std::string where = path_ + ":" + std::to_string(line_);
    if (auto bad = find_invalid_utf8(line))
      throw Error("invalid UTF-8", where + ":" + std::to_string(*bad + 1));
    try {
      return JsonlRecord{line_, Json::parse(line)};
    } catch (const Json::parse_error& e) {
      std::string what = e.what();
      if (auto p = what.find("parse error"); p != std::string::npos) what = what.substr(p);
      throw Error("invalid JSON: " + what, where + ":" + std::to_string(e.byte));
    }
  }
  if (in_.bad()) throw Error("read failed", path_ + ":" + std::to_string(line_ + 1));
  return std::nullopt;
}

std::vector<JsonlRecord> read_jsonl(const std::string& path) {
  JsonlReader reader(path);
  std::vector<JsonlRecord> out;
  while (auto r = reader.next())
    out.push_back(std::move(*r));
  return out;
}

JsonlWriter::JsonlWriter(const std::string& path, bool append)
    : path_(path), out_(path, std::ios::binary | (append ? std::ios::app : std::ios::trunc)) {
  if (!out_) throw Error(std::string("cannot open for writing: ") + std::strerror(errno), path);
}

void JsonlWriter::write(const Json& value) {
  out_ << value.dump(-1, ' ', false, Json::error_handler_t::replace) << '\n';
  out_.flush();
  if (!out_) throw Error("write failed", path_);
}

}  // namespace aha::io
