// The safetensors container format, without tensors: parse and validate a header, lay out a new file.
//
// File: 8-byte little-endian header length N, N bytes of UTF-8 JSON, then the byte buffer. The JSON maps each
// tensor name to {"dtype", "shape", "data_offsets": [begin, end)} (offsets relative to the buffer) and may
// hold a
// "__metadata__" object of string to string. This file is torch-free so the parser can be fuzzed under
// sanitizers cheaply. What `parse` guarantees when it returns (and it throws aha::Error naming the source
// otherwise):
//   - the header length fits in the file and is at most 100 MB; the JSON is valid and has no duplicate names;
//   - every dtype is known, every shape entry is a non-negative integer, shape and byte count agree (no
//   overflow);
//   - the tensors' byte ranges, sorted, tile the buffer exactly: no overlap, no gap, nothing past the end.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace aha::io::st {

enum class Dtype : uint8_t { F64, F32, F16, BF16, F8_E4M3, F8_E5M2, I64, I32, I16, I8, U8, BOOL };

std::string_view dtype_name(Dtype d);  // the name used in the file: "F32", "BF16", "F8_E4M3", ...
std::optional<Dtype> parse_dtype(std::string_view name);
size_t dtype_size(Dtype d);  // bytes per element

struct TensorEntry {
  std::string name;
  Dtype dtype = Dtype::F32;
  std::vector<int64_t> shape;
  uint64_t begin = 0;  // byte range [begin, end) in the buffer
  uint64_t end = 0;

  uint64_t numel() const;
  uint64_t nbytes() const { return end - begin; }
};

struct Header {
  std::vector<TensorEntry> tensors;  // in the order of the header JSON
  std::map<std::string, std::string> metadata;
  uint64_t buffer_start = 0;  // file offset of the byte buffer (8 + N)

  const TensorEntry* find(std::string_view name) const;
};

inline constexpr uint64_t kMaxHeaderBytes = 100'000'000;

// Parses and validates the header of a complete file image. `source` (a path) prefixes every error.
Header parse(std::span<const std::byte> file, const std::string& source);

// Assigns contiguous offsets to `entries` (in the given order, shapes and dtypes set) and returns the first
// part of the file: length prefix plus the JSON header, padded with spaces so the buffer starts 8-byte
// aligned. The caller writes the tensors' bytes after it in the same order. Throws on duplicate or empty
// names.
std::string layout(std::vector<TensorEntry>& entries, const std::map<std::string, std::string>& metadata);

}  // namespace aha::io::st
