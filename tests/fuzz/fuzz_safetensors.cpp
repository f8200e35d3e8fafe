// A seeded mutation fuzzer for st::parse, the parser of untrusted safetensors headers. Built under ASan and
// UBSan (tests/CMakeLists.txt) from the torch-free format layer only.
//
//   fuzz_safetensors [ITERATIONS] [--seed=N] [FILE.safetensors ...]
//
// Starts from valid images (built in memory with st::layout, plus the files given), applies ITERATIONS
// (default 100000) rounds of mutations (bit flips, random bytes, truncation, extension, insertion, deletion,
// edits of the header length, JSON tokens and numbers spliced into the header), and parses each result. A
// parse must either throw aha::Error with a short message, or return a header whose every byte range lies
// inside the image and tiles its buffer; each accepted tensor's bytes are read (summed) so the sanitizers see
// any range that is not. Anything else (another exception type, a broken invariant, a sanitizer report)
// fails. Prints the counts and exits 0 on success, 1 on failure. The run is deterministic for a given seed.
#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "aha/core/error.h"
#include "aha/io/safetensors_format.h"

namespace st = aha::io::st;

namespace {

// splitmix64: small, fast, and the same sequence on every platform (unlike the std distributions).
struct Rng {
  uint64_t s;
  uint64_t next() {
    uint64_t z = (s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  size_t below(size_t n) { return n == 0 ? 0 : static_cast<size_t>(next() % n); }
  bool chance(int percent) { return below(100) < static_cast<size_t>(percent); }
  template <class T>
  const T& pick(const std::vector<T>& v) {
    return v[below(v.size())];
  }
};

uint64_t get_len(const std::string& s) {
  uint64_t n = 0;
  if (s.size() < 8) return 0;
  for (int i = 7; i >= 0; --i)
    n = (n << 8) | static_cast<uint8_t>(s[static_cast<size_t>(i)]);
  return n;
}

void set_len(std::string& s, uint64_t n) {
  if (s.size() < 8) s.resize(8, '\0');
  for (int i = 0; i < 8; ++i)
    s[static_cast<size_t>(i)] = static_cast<char>((n >> (8 * i)) & 0xff);
}

// The header's bytes [8, end) as far as the file holds them.
size_t header_end(const std::string& s) {
  if (s.size() < 8) return s.size();
  return 8 + static_cast<size_t>(std::min<uint64_t>(get_len(s), s.size() - 8));
}

// ---- the seed corpus --------------------------------------------------------------------------------------

std::string build(std::vector<st::TensorEntry> entries, const std::map<std::string, std::string>& meta,
                  Rng& rng) {
  std::string s = st::layout(entries, meta);
  const uint64_t bytes = entries.empty() ? 0 : entries.back().end;
  for (uint64_t i = 0; i < bytes; ++i)
    s.push_back(static_cast<char>(rng.next()));
  return s;
}

st::TensorEntry entry(std::string name, st::Dtype d, std::vector<int64_t> shape) {
  st::TensorEntry e;
  e.name = std::move(name);
  e.dtype = d;
  e.shape = std::move(shape);
  return e;
}

std::vector<std::string> seeds(const std::vector<std::string>& files, Rng& rng) {
  using D = st::Dtype;
  std::vector<std::string> out;
  out.push_back(build({entry("weight", D::F32, {2, 3})}, {{"format", "pt"}}, rng));
  out.push_back(build({}, {}, rng));
  out.push_back(build({}, {{"format", "pt"}, {"note", "only metadata"}}, rng));
  out.push_back(
      build({entry("scalar", D::F64, {}), entry("empty", D::I16, {0, 4}), entry("cube", D::BF16, {2, 2, 2}),
             entry("e4m3", D::F8_E4M3, {5}), entry("e5m2", D::F8_E5M2, {3}), entry("i64", D::I64, {2}),
             entry("i32", D::I32, {1, 3}), entry("i8", D::I8, {4}), entry("u8", D::U8, {7}),
             entry("b", D::BOOL, {2}), entry("f16", D::F16, {3})},
            {{"format", "pt"}, {"source", "fuzz"}}, rng));
  // Misaligned tensors after an odd-sized one; escapes and non-ASCII in names.
  out.push_back(build({entry("odd", D::U8, {3}), entry("caf\xc3\xa9 \"q\" \\", D::F32, {2}),
                       entry("tab\tname", D::I64, {1}), entry("z", D::U8, {0})},
                      {}, rng));
  out.push_back(
      build({entry(std::string(1000, 'n') + "\xc3\xa9", D::U8, {2})}, {{std::string(200, 'k'), "v"}}, rng));
  std::vector<st::TensorEntry> many;
  for (int i = 0; i < 24; ++i)
    many.push_back(entry("model.layers." + std::to_string(i) + ".w", i % 2 ? D::F16 : D::F32, {i % 3, 2}));
  out.push_back(build(many, {{"total", "24"}}, rng));
  for (const auto& path : files) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
      std::fprintf(stderr, "cannot read %s\n", path.c_str());
      std::exit(1);
    }
    std::ostringstream os;
    os << in.rdbuf();
    out.push_back(os.str());
  }
  return out;
}

// ---- mutations --------------------------------------------------------------------------------------------

const std::vector<std::string> kTokens = {"\"F32\"",
                                          "\"F16\"",
                                          "\"BF16\"",
                                          "\"F64\"",
                                          "\"I64\"",
                                          "\"U8\"",
                                          "\"BOOL\"",
                                          "\"F8_E4M3\"",
                                          "\"F8_E5M2\"",
                                          "\"F128\"",
                                          "[",
                                          "]",
                                          "{",
                                          "}",
                                          ",",
                                          ":",
                                          "\"",
                                          "\\",
                                          "-1",
                                          "0",
                                          "1",
                                          "-0",
                                          "0.5",
                                          "1e400",
                                          "2.0",
                                          "18446744073709551615",
                                          "18446744073709551616",
                                          "9223372036854775807",
                                          "9223372036854775808",
                                          "4294967296",
                                          "\"data_offsets\"",
                                          "\"shape\"",
                                          "\"dtype\"",
                                          "\"__metadata__\"",
                                          "null",
                                          "true",
                                          "false",
                                          "[]",
                                          "{}",
                                          "[0,0]",
                                          "\"\"",
                                          "\\u0000",
                                          "\\ud800",
                                          "\xff",
                                          "\xc3",
                                          " ",
                                          "\n",
                                          "\"data_offsets\":[0,0]",
                                          "\"shape\":[]",
                                          "{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}",
                                          "\"x\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]},",
                                          "\"__metadata__\":{\"a\":1},",
                                          "[[[[[[[[",
                                          "]]]]]]]]"};

const std::vector<std::string> kNumbers = {"0",
                                           "1",
                                           "2",
                                           "3",
                                           "4",
                                           "7",
                                           "8",
                                           "-1",
                                           "-8",
                                           "255",
                                           "256",
                                           "65535",
                                           "4294967295",
                                           "4294967296",
                                           "9223372036854775807",
                                           "9223372036854775808",
                                           "18446744073709551615",
                                           "18446744073709551616",
                                           "99999999999999999999999",
                                           "1e3",
                                           "0.0",
                                           "-0",
                                           "1.5",
                                           "100000000",
                                           "100000001"};

// Inserts `text` at `pos` inside the header and, usually, grows the length field to match so that the JSON
// parser (not the length check) sees the change.
void header_insert(std::string& s, size_t pos, const std::string& text, Rng& rng) {
  s.insert(pos, text);
  if (s.size() >= 8 && pos >= 8 && rng.chance(85)) set_len(s, get_len(s) + text.size());
}

void header_replace(std::string& s, size_t pos, size_t len, const std::string& text, Rng& rng) {
  s.replace(pos, len, text);
  if (s.size() >= 8 && pos >= 8 && rng.chance(85)) set_len(s, get_len(s) - len + text.size());
}

// Positions of runs of bytes in the header satisfying `in_run` (digits, or the inside of strings).
std::vector<std::pair<size_t, size_t>> runs(const std::string& s, bool strings) {
  std::vector<std::pair<size_t, size_t>> out;
  const size_t end = header_end(s);
  for (size_t i = 8; i < end;) {
    if (!strings && (std::isdigit(static_cast<unsigned char>(s[i])) || s[i] == '-')) {
      size_t j = i + 1;
      while (j < end && std::isdigit(static_cast<unsigned char>(s[j])))
        ++j;
      out.emplace_back(i, j - i);
      i = j;
    } else if (strings && s[i] == '"') {
      size_t j = i + 1;
      while (j < end && s[j] != '"')
        j += s[j] == '\\' ? 2 : 1;
      if (j >= end) break;
      out.emplace_back(i + 1, j - i - 1);
      i = j + 1;
    } else {
      ++i;
    }
  }
  return out;
}

constexpr int kMutations = 15;

void mutate(std::string& s, Rng& rng, std::vector<int>& used) {
  const int op = static_cast<int>(rng.below(kMutations));
  used[static_cast<size_t>(op)]++;
  const size_t hend = header_end(s);
  // A position biased towards the header, where the parser's decisions are made.
  const size_t pos = (hend > 8 && rng.chance(80)) ? 8 + rng.below(hend - 8) : rng.below(s.size() + 1);
  switch (op) {
    case 0:  // bit flip
      if (!s.empty()) s[std::min(pos, s.size() - 1)] ^= static_cast<char>(1u << rng.below(8));
      break;
    case 1:  // random byte
      if (!s.empty()) s[std::min(pos, s.size() - 1)] = static_cast<char>(rng.next());
      break;
    case 2:  // truncation
      s.resize(rng.chance(30) ? rng.below(std::min<size_t>(s.size() + 1, 16)) : rng.below(s.size() + 1));
      break;
    case 3: {  // extension
      const size_t n = 1 + rng.below(rng.chance(20) ? 4096 : 16);
      for (size_t i = 0; i < n; ++i)
        s.push_back(rng.chance(50) ? '\0' : static_cast<char>(rng.next()));
      break;
    }
    case 4: {  // insertion of random bytes
      std::string bytes;
      for (size_t i = 0, n = 1 + rng.below(8); i < n; ++i)
        bytes.push_back(static_cast<char>(rng.next()));
      header_insert(s, pos, bytes, rng);
      break;
    }
    case 5: {  // deletion
      if (pos >= s.size()) break;
      const size_t n = 1 + rng.below(std::min<size_t>(s.size() - pos, 32));
      header_replace(s, pos, n, "", rng);
      break;
    }
    case 6: {  // the header length field
      const uint64_t n = get_len(s);
      const std::vector<uint64_t> values = {0,
                                            1,
                                            2,
                                            n - 1,
                                            n + 1,
                                            n + 8,
                                            s.size() - 8,
                                            s.size() - 7,
                                            s.size(),
                                            st::kMaxHeaderBytes,
                                            st::kMaxHeaderBytes + 1,
                                            UINT64_MAX,
                                            UINT64_MAX - 7,
                                            uint64_t{1} << 63,
                                            rng.next(),
                                            rng.below(s.size() + 16)};
      set_len(s, rng.pick(values));
      break;
    }
    case 7:  // a JSON token spliced in
      header_insert(s, pos, rng.pick(kTokens), rng);
      break;
    case 8: {  // a JSON token replacing bytes
      const size_t n = std::min(s.size() - std::min(pos, s.size()), 1 + rng.below(6));
      header_replace(s, std::min(pos, s.size()), n, rng.pick(kTokens), rng);
      break;
    }
    case 9: {  // a number in the header replaced by an interesting one
      const auto r = runs(s, false);
      if (r.empty()) break;
      const auto [at, len] = rng.pick(r);
      std::string num = rng.pick(kNumbers);
      if (rng.chance(30)) num = std::to_string(rng.below(s.size() + 8));  // near the real offsets
      header_replace(s, at, len, num, rng);
      break;
    }
    case 10: {  // a string in the header replaced by another one from the header, or a keyword
      const auto r = runs(s, true);
      if (r.empty()) break;
      const auto [at, len] = rng.pick(r);
      const auto [from, flen] = rng.pick(r);
      std::string text = rng.chance(50) ? s.substr(from, flen) : rng.pick(kTokens);
      if (text.size() >= 2 && text.front() == '"' && text.back() == '"')
        text = text.substr(1, text.size() - 2);
      header_replace(s, at, len, text, rng);
      break;
    }
    case 11: {  // a slice of the header duplicated elsewhere in it (duplicate keys, nested entries)
      if (hend <= 9) break;
      const size_t from = 8 + rng.below(hend - 8);
      const size_t len = 1 + rng.below(std::min<size_t>(hend - from, 64));
      header_insert(s, std::min(pos, s.size()), s.substr(from, len), rng);
      break;
    }
    case 12: {  // two bytes swapped
      if (s.size() < 2) break;
      std::swap(s[rng.below(s.size())], s[std::min(pos, s.size() - 1)]);
      break;
    }
    case 14: {  // a tensor's data_offsets moved (same size): overlaps, gaps, ranges past the end
      std::vector<size_t> at;
      const std::string key = "\"data_offsets\":[";
      for (size_t p = s.find(key, 8); p != std::string::npos && p < hend; p = s.find(key, p + 1))
        at.push_back(p + key.size());
      if (at.empty()) break;
      const size_t p = rng.pick(at);
      const size_t close = s.find(']', p);
      if (close == std::string::npos || close >= hend) break;
      unsigned long long b = 0, e = 0;
      if (std::sscanf(s.c_str() + p, "%llu,%llu", &b, &e) != 2) break;
      const long long shift = static_cast<long long>(rng.below(17)) - 8;
      const std::string moved = std::to_string(b + shift) + "," + std::to_string(e + shift);
      header_replace(s, p, close - p, moved, rng);
      break;
    }
    case 13: {  // the data buffer resized (trailing bytes, or too few)
      if (s.size() <= hend) break;
      if (rng.chance(50))
        s.resize(s.size() - 1 - rng.below(std::min<size_t>(s.size() - hend, 8)));
      else
        s.append(1 + rng.below(8), '\0');
      break;
    }
  }
}

// ---- checks -----------------------------------------------------------------------------------------------

[[noreturn]] void fail(const std::string& why, const std::string& input) {
  std::fprintf(stderr, "FAIL: %s\ninput (%zu bytes):", why.c_str(), input.size());
  for (size_t i = 0; i < std::min<size_t>(input.size(), 512); ++i)
    std::fprintf(stderr, "%s%02x", i % 32 ? " " : "\n  ",
                 static_cast<unsigned>(static_cast<uint8_t>(input[i])));
  std::fprintf(stderr, "\n");
  std::exit(1);
}

// The guarantees of parse() on an accepted image, checked independently; returns a sum of every tensor's
// bytes.
uint64_t check_accepted(const st::Header& h, const std::byte* data, size_t size, const std::string& input) {
  if (h.buffer_start < 8 || h.buffer_start > size) fail("buffer_start outside the file", input);
  if (h.buffer_start - 8 != get_len(input)) fail("buffer_start does not follow the header length", input);
  const uint64_t buffer = size - h.buffer_start;
  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  std::vector<std::string> names;
  uint64_t sum = 0;
  for (const auto& t : h.tensors) {
    if (t.name == "__metadata__") fail("a tensor named __metadata__ was accepted", input);
    if (st::dtype_size(t.dtype) == 0) fail("a tensor with an invalid dtype was accepted", input);
    if (t.begin > t.end || t.end > buffer) fail("tensor range outside the buffer", input);
    uint64_t numel = 1;
    for (int64_t d : t.shape) {
      if (d < 0) fail("negative dimension accepted", input);
      if (__builtin_mul_overflow(numel, static_cast<uint64_t>(d), &numel))
        fail("shape overflow accepted", input);
    }
    uint64_t nbytes = 0;
    if (__builtin_mul_overflow(numel, st::dtype_size(t.dtype), &nbytes) || nbytes != t.nbytes())
      fail("shape and byte count disagree in an accepted header", input);
    if (h.find(t.name) != &t) fail("find() does not return the tensor", input);
    ranges.emplace_back(t.begin, t.end);
    names.push_back(t.name);
    // Touch every byte: out of bounds here is a heap-buffer-overflow for ASan.
    const std::byte* p = data + h.buffer_start + t.begin;
    for (uint64_t i = 0; i < t.nbytes(); ++i)
      sum += static_cast<uint8_t>(p[i]);
  }
  std::sort(names.begin(), names.end());
  if (std::adjacent_find(names.begin(), names.end()) != names.end()) fail("duplicate names accepted", input);
  std::sort(ranges.begin(), ranges.end());
  uint64_t at = 0;
  for (const auto& [b, e] : ranges) {
    if (b != at) fail("tensor ranges do not tile the buffer", input);
    at = e;
  }
  if (at != buffer) fail("bytes after the last tensor accepted", input);
  return sum;
}

// A rejection's kind, for the summary: the message with numbers and quoted text blanked.
std::string kind_of(const std::string& message) {
  std::string k;
  bool quoted = false;
  for (size_t i = 0; i < message.size() && k.size() < 64; ++i) {
    const char c = message[i];
    if (c == '"') {
      quoted = !quoted;
      if (quoted) k += "\"...\"";
    } else if (quoted) {
      if (c == '\\') ++i;
    } else if (std::isdigit(static_cast<unsigned char>(c))) {
      if (k.empty() || k.back() != '#') k += '#';
    } else if (c == ';' || c == '(') {
      break;
    } else {
      k += c;
    }
  }
  return k;
}

}  // namespace

int main(int argc, char** argv) {
  uint64_t iterations = 100000, seed = 20240601;
  std::vector<std::string> files;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a.rfind("--seed=", 0) == 0) {
      seed = std::stoull(a.substr(7));
    } else if (!a.empty() && std::all_of(a.begin(), a.end(), [](char c) {
                 return std::isdigit(static_cast<unsigned char>(c));
               })) {
      iterations = std::stoull(a);
    } else {
      files.push_back(a);
    }
  }
  Rng rng{seed};
  const std::vector<std::string> corpus = seeds(files, rng);
  std::vector<std::string> pool;  // accepted mutants, mutated further later
  uint64_t accepted = 0, rejected = 0, checksum = 0;
  std::vector<int> used(kMutations, 0);
  std::map<std::string, uint64_t> kinds;
  const auto start = std::chrono::steady_clock::now();

  // Every seed parses.
  for (const auto& s : corpus) {
    try {
      const st::Header h = st::parse({reinterpret_cast<const std::byte*>(s.data()), s.size()}, "seed");
      check_accepted(h, reinterpret_cast<const std::byte*>(s.data()), s.size(), s);
    } catch (const aha::Error& e) {
      fail(std::string("a seed does not parse: ") + e.what(), s);
    }
  }

  for (uint64_t it = 0; it < iterations; ++it) {
    std::string s = (!pool.empty() && rng.chance(25)) ? rng.pick(pool) : rng.pick(corpus);
    for (size_t m = 0, n = 1 + rng.below(rng.chance(70) ? 2 : 6); m < n; ++m)
      mutate(s, rng, used);
    // An exact-size heap copy, so that any read past the end is caught by ASan.
    std::unique_ptr<std::byte[]> buf(new std::byte[s.size()]);
    if (!s.empty()) std::memcpy(buf.get(), s.data(), s.size());
    try {
      const st::Header h = st::parse({buf.get(), s.size()}, "fuzz");
      checksum += check_accepted(h, buf.get(), s.size(), s);
      ++accepted;
      if (pool.size() < 256) {
        pool.push_back(s);
      } else {
        pool[rng.below(pool.size())] = s;
      }
    } catch (const aha::Error& e) {
      ++rejected;
      const std::string what = e.what();
      if (what.rfind("fuzz: ", 0) != 0) fail("the error does not name its source: " + what, s);
      if (what.size() > 600)
        fail("error message of " + std::to_string(what.size()) + " bytes: " + what.substr(0, 300), s);
      kinds[kind_of(e.message())]++;
    } catch (const std::exception& e) {
      fail(std::string("parse threw a non-aha exception: ") + e.what(), s);
    } catch (...) {
      fail("parse threw something that is not a std::exception", s);
    }
  }

  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("fuzz_safetensors: seed %llu, %zu seed images, %llu iterations in %.1f s\n",
              static_cast<unsigned long long>(seed), corpus.size(),
              static_cast<unsigned long long>(iterations), seconds);
  std::printf("  accepted %llu, rejected %llu (byte checksum %llu)\n",
              static_cast<unsigned long long>(accepted), static_cast<unsigned long long>(rejected),
              static_cast<unsigned long long>(checksum));
  std::printf("  mutations used:");
  for (int u : used)
    std::printf(" %d", u);
  std::printf("\n  rejections by kind (%zu kinds):\n", kinds.size());
  std::vector<std::pair<uint64_t, std::string>> sorted;
  for (const auto& [k, n] : kinds)
    sorted.emplace_back(n, k);
  std::sort(sorted.rbegin(), sorted.rend());
  for (const auto& [n, k] : sorted)
    std::printf("  %8llu  %s\n", static_cast<unsigned long long>(n), k.c_str());
  if (accepted == 0 || rejected == 0) {
    std::fprintf(stderr, "FAIL: the fuzzer never %s\n",
                 accepted == 0 ? "produced a valid file" : "hit an error");
    return 1;
  }
  return 0;
}
