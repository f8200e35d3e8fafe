// The PNG writer is checked by decoding its output with a reader written here from the specifications (RFC
// 1950/1951, PNG): chunk CRCs, the zlib header and Adler-32 trailer, stored and fixed-Huffman deflate blocks,
// and all five row filters. That reader is itself checked on streams made by CPython's zlib, so an encoder
// and decoder sharing one misreading of deflate would not pass. Plots are checked through the pixels they
// decode to.
#include "aha/io/png.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <limits>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "aha/core/error.h"
#include "aha/io/file.h"
#include "aha/io/plot.h"

namespace fs = std::filesystem;
using aha::io::Image;
using aha::io::Panel;
using aha::io::PlotOptions;
using aha::io::Series;

namespace {

fs::path temp_dir(const char* name) {
  auto d = fs::temp_directory_path() / name;
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

std::string from_hex(std::string_view hex) {
  std::string out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2)
    out.push_back(static_cast<char>(std::stoi(std::string(hex.substr(i, 2)), nullptr, 16)));
  return out;
}

// Bit-at-a-time references, independent of the library's table-driven and blocked versions.
uint32_t reference_crc32(std::string_view data) {
  uint32_t c = 0xFFFFFFFFu;
  for (unsigned char ch : data) {
    c ^= ch;
    for (int k = 0; k < 8; ++k)
      c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1u)));
  }
  return ~c;
}

uint32_t reference_adler32(std::string_view data) {
  uint32_t a = 1, b = 0;
  for (unsigned char ch : data) {
    a = (a + ch) % 65521;
    b = (b + a) % 65521;
  }
  return (b << 16) | a;
}

uint32_t be32(std::string_view s, size_t at) {
  if (at + 4 > s.size()) throw std::runtime_error("truncated big-endian number");
  uint32_t v = 0;
  for (size_t i = 0; i < 4; ++i)
    v = (v << 8) | static_cast<unsigned char>(s[at + i]);
  return v;
}

// A zlib reader for stored and fixed-Huffman blocks (what aha writes, and what the vectors below hold).
class Inflater {
 public:
  explicit Inflater(std::string_view in) : in_(in) {}

  std::string zlib() {
    const int cmf = byte(), flg = byte();
    if ((cmf & 0x0F) != 8 || (cmf >> 4) > 7)
      throw std::runtime_error("zlib: not deflate with a <= 32K window");
    if ((cmf * 256 + flg) % 31 != 0) throw std::runtime_error("zlib: header check bits wrong");
    if (flg & 0x20) throw std::runtime_error("zlib: preset dictionary");
    std::string out = inflate();
    if (bitpos_ != 0) {  // the trailer starts at the next byte boundary
      bitpos_ = 0;
      ++pos_;
    }
    const uint32_t adler = be32(in_, pos_);
    pos_ += 4;
    if (adler != reference_adler32(out)) throw std::runtime_error("zlib: Adler-32 trailer mismatch");
    if (pos_ != in_.size()) throw std::runtime_error("zlib: bytes after the stream");
    return out;
  }

 private:
  int byte() {
    if (pos_ >= in_.size()) throw std::runtime_error("zlib: input ends early");
    return static_cast<unsigned char>(in_[pos_++]);
  }
  int bit() {
    if (pos_ >= in_.size()) throw std::runtime_error("deflate: input ends early");
    const int b = (static_cast<unsigned char>(in_[pos_]) >> bitpos_) & 1;
    if (++bitpos_ == 8) {
      bitpos_ = 0;
      ++pos_;
    }
    return b;
  }
  uint32_t bits(int n) {  // least significant bit first
    uint32_t v = 0;
    for (int i = 0; i < n; ++i)
      v |= static_cast<uint32_t>(bit()) << i;
    return v;
  }
  uint32_t code(uint32_t prefix, int n) {  // appends n bits of a Huffman code, most significant first
    for (int i = 0; i < n; ++i)
      prefix = (prefix << 1) | static_cast<uint32_t>(bit());
    return prefix;
  }
  // RFC 1951 3.2.6: 7-bit codes 0..23 are 256..279; 8-bit 48..191 are 0..143, 192..199 are 280..287; 9-bit
  // 400..511 are 144..255.
  int fixed_literal() {
    uint32_t c = code(0, 7);
    if (c <= 23) return 256 + static_cast<int>(c);
    c = code(c, 1);
    if (c >= 48 && c <= 191) return static_cast<int>(c) - 48;
    if (c >= 192 && c <= 199) return 280 + static_cast<int>(c) - 192;
    c = code(c, 1);
    return 144 + static_cast<int>(c) - 400;
  }
  static void length_of(int sym, int& base, int& extra) {  // sym 257..285
    if (sym == 285) {
      base = 258;
      extra = 0;
      return;
    }
    base = 3;
    for (int s = 257; s < sym; ++s)
      base += 1 << (s < 265 ? 0 : (s - 261) / 4);
    extra = sym < 265 ? 0 : (sym - 261) / 4;
  }
  static void distance_of(int sym, int& base, int& extra) {  // sym 0..29
    base = 1;
    for (int s = 0; s < sym; ++s)
      base += 1 << (s < 4 ? 0 : s / 2 - 1);
    extra = sym < 4 ? 0 : sym / 2 - 1;
  }

  std::string inflate() {
    std::string out;
    for (bool final = false; !final;) {
      final = bit();
      const uint32_t type = bits(2);
      if (type == 0) {
        if (bitpos_ != 0) {
          bitpos_ = 0;
          ++pos_;
        }
        const uint32_t len = static_cast<uint32_t>(byte()) | static_cast<uint32_t>(byte()) << 8;
        const uint32_t nlen = static_cast<uint32_t>(byte()) | static_cast<uint32_t>(byte()) << 8;
        if ((len ^ 0xFFFF) != nlen) throw std::runtime_error("deflate: stored block LEN/NLEN mismatch");
        for (uint32_t i = 0; i < len; ++i)
          out.push_back(static_cast<char>(byte()));
      } else if (type == 1) {
        for (;;) {
          const int sym = fixed_literal();
          if (sym < 256) {
            out.push_back(static_cast<char>(sym));
            continue;
          }
          if (sym == 256) break;
          if (sym > 285) throw std::runtime_error("deflate: invalid length symbol");
          int base, extra;
          length_of(sym, base, extra);
          const int length = base + static_cast<int>(bits(extra));
          const int dsym = static_cast<int>(code(0, 5));
          if (dsym > 29) throw std::runtime_error("deflate: invalid distance symbol");
          distance_of(dsym, base, extra);
          const size_t distance = static_cast<size_t>(base) + bits(extra);
          if (distance > out.size() || distance > 32768)
            throw std::runtime_error("deflate: distance too far back");
          for (int i = 0; i < length; ++i)
            out.push_back(out[out.size() - distance]);
        }
      } else {
        throw std::runtime_error("deflate: block type " + std::to_string(type) +
                                 " not supported by this reader");
      }
    }
    return out;
  }

  std::string_view in_;
  size_t pos_ = 0;
  int bitpos_ = 0;
};

struct DecodedPng {
  Image img;
  std::vector<std::string> chunk_types;
  std::vector<int> filters;  // per row
};

int paeth(int a, int b, int c) {
  const int p = a + b - c, pa = std::abs(p - a), pb = std::abs(p - b), pc = std::abs(p - c);
  if (pa <= pb && pa <= pc) return a;
  return pb <= pc ? b : c;
}

DecodedPng decode_png(const std::string& png) {
  if (png.substr(0, 8) != std::string("\x89PNG\r\n\x1a\n", 8)) throw std::runtime_error("png: bad signature");
  DecodedPng d;
  std::string idat;
  int width = 0, height = 0;
  size_t at = 8;
  while (at < png.size()) {
    const uint32_t len = be32(png, at);
    if (at + 12 + len > png.size()) throw std::runtime_error("png: chunk runs past the end");
    const std::string type = png.substr(at + 4, 4), data = png.substr(at + 8, len);
    if (be32(png, at + 8 + len) != reference_crc32(type + data))
      throw std::runtime_error("png: CRC of " + type);
    d.chunk_types.push_back(type);
    if (type == "IHDR") {
      if (len != 13) throw std::runtime_error("png: IHDR length");
      width = static_cast<int>(be32(data, 0));
      height = static_cast<int>(be32(data, 4));
      if (data.substr(8) != std::string("\x08\x02\x00\x00\x00", 5)) {
        throw std::runtime_error("png: not 8-bit RGB, deflate, adaptive filters, non-interlaced");
      }
    } else if (type == "IDAT") {
      idat += data;
    }
    at += 12 + len;
  }
  if (d.chunk_types.empty() || d.chunk_types.front() != "IHDR" || d.chunk_types.back() != "IEND") {
    throw std::runtime_error("png: IHDR must come first and IEND last");
  }
  const std::string raw = Inflater(idat).zlib();
  const size_t stride = static_cast<size_t>(width) * 3;
  if (raw.size() != (stride + 1) * height) throw std::runtime_error("png: wrong amount of image data");
  d.img = Image(width, height);
  for (int y = 0; y < height; ++y) {
    const int filter = static_cast<unsigned char>(raw[y * (stride + 1)]);
    if (filter > 4) throw std::runtime_error("png: filter type " + std::to_string(filter));
    d.filters.push_back(filter);
    for (size_t i = 0; i < stride; ++i) {
      const int v = static_cast<unsigned char>(raw[y * (stride + 1) + 1 + i]);
      const int a = i >= 3 ? d.img.rgb[y * stride + i - 3] : 0;
      const int b = y > 0 ? d.img.rgb[(y - 1) * stride + i] : 0;
      const int c = i >= 3 && y > 0 ? d.img.rgb[(y - 1) * stride + i - 3] : 0;
      const int pred = filter == 0   ? 0
                       : filter == 1 ? a
                       : filter == 2 ? b
                       : filter == 3 ? (a + b) / 2
                                     : paeth(a, b, c);
      d.img.rgb[y * stride + i] = static_cast<uint8_t>(v + pred);
    }
  }
  return d;
}

Image random_image(int w, int h, uint32_t seed) {
  std::mt19937 rng(seed);
  Image img(w, h);
  for (auto& v : img.rgb)
    v = static_cast<uint8_t>(rng());
  return img;
}

TEST(Png, Crc32MatchesKnownValues) {
  EXPECT_EQ(aha::io::crc32("123456789"), 0xCBF43926u);
  EXPECT_EQ(aha::io::crc32(""), 0u);
  EXPECT_EQ(aha::io::crc32("The quick brown fox jumps over the lazy dog"), 0x414FA339u);
  EXPECT_EQ(aha::io::crc32("IEND"), 0xAE426082u);  // the last four bytes of every PNG file
  EXPECT_EQ(aha::io::crc32("6789", aha::io::crc32("12345")), 0xCBF43926u);
  const Image img = random_image(100, 10, 1);
  const std::string noise(img.rgb.begin(), img.rgb.end());
  EXPECT_EQ(aha::io::crc32(noise), reference_crc32(noise));
}

TEST(Png, Adler32MatchesKnownValues) {
  EXPECT_EQ(aha::io::adler32("123456789"), 0x091E01DEu);
  EXPECT_EQ(aha::io::adler32(""), 1u);
  EXPECT_EQ(aha::io::adler32("Wikipedia"), 0x11E60398u);
  EXPECT_EQ(aha::io::adler32("6789", aha::io::adler32("12345")), 0x091E01DEu);
  // Long runs of 0xFF overflow 32-bit sums unless they are reduced often enough.
  const std::string ones(100000, '\xFF');
  EXPECT_EQ(aha::io::adler32(ones), reference_adler32(ones));
}

// The reader above against CPython's zlib: zlib.compressobj(9, DEFLATED, 15, 9, Z_FIXED), and level 0.
TEST(Png, TestReaderDecodesRealZlibStreams) {
  const std::string text =
      "hello, hello, hello world! hello, hello, hello world! hello, hello, hello world! "
      "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyz";
  EXPECT_EQ(
      Inflater(
          from_hex("7801cb48cdc9c9d751c840a214caf38b72521451c488974a4c4a4e494d4bcfc8cccacec9cdcb2f282c2a2"
                   "e292d2bafa8acc22d030083683256"))
          .zlib(),
      text);
  EXPECT_EQ(Inflater(from_hex("7801010c00f3ff73746f72656420626c6f636b1f8004bd")).zlib(), "stored block");
  // 300 pseudo-random bytes A, 20000 zeros, then pieces of A: matches up to 20300 bytes back.
  std::string a;
  for (uint32_t x = 1, i = 0; i < 300; ++i) {
    x = (x * 1103515245u + 12345u) & 0x7FFFFFFFu;
    a.push_back(static_cast<char>((x >> 16) & 0xFF));
  }
  const std::string expected = a + std::string(20000, '\0') + a + a.substr(5, 3) + "x" + a.substr(10, 10) +
                               "y" + a.substr(50, 40) + "z" + a.substr(0, 131);
  const std::string z = from_hex(
      "78013b56d798edfdfbd1ef906f7befd7c83c6c67dc6f782fac88df3d3dad3d7255874de4ab30e1ea4bad0b6fd88484ea9baf4b"
      "8dbe"
      "c55439e3cc63a9b2bef89b33fbe5edcdde3957f8f2fedab7ecd693b6be3b9ab97effc31e1628fceedf18c13ae128e79de0b3ab"
      "ac3d"
      "66065d0e9acb36ffd5d6436cc2333c3731caad31ea309c13e436b5d0ac3ffc9ba5acd8af8e92af336ac4631c77e716f6f11744"
      "1e67"
      "94d637b69d784076292fef6ae3debab87ebb671925cbac361e9e2cb822e5f8ed530f121e7edecfc990bee8b1ea0245c3f6ab49"
      "4757"
      "f8d7e971664f99bf2177e5bc286eb782866de7dd79962dd5bab1e6f782d7db2b558a942779341c5db6bc75fbf59e094f5627bb"
      "04a5"
      "3d9e63acfa336ed5aee28458efc2ba7d2b7bc2250b0f9f8a7baa65bca623306d6175697acaacccf7f9614e0b64038f327ddf3d"
      "c995"
      "61148c8251300a46c1281805a360148c8251300a46c1281805a360148c8251300a46c1281805a360148c8251300a46c1281805"
      "a360"
      "148c8251300a46c1281805a360148c8251300a46c1281805a360148c8251300a46c1281805a360148c8251300a46c1281805a3"
      "6014"
      "8c8251300a46c1281805a360148c8251300a46c1a000c746cfd223fa2c3d6030552042a992d880a81a04610c001dd58503");
  EXPECT_EQ(Inflater(z).zlib(), expected);
  std::string corrupt = z;
  corrupt[100] ^= 0x10;
  EXPECT_ANY_THROW(Inflater(corrupt).zlib());
}

TEST(Png, ZlibRoundTrips) {
  std::mt19937 rng(7);
  std::vector<std::string> inputs = {"", "a", "ab", "abc", "aaaa", std::string(100000, '\0'), "123456789"};
  std::string noise(70000, '\0');
  for (auto& c : noise)
    c = static_cast<char>(rng());
  inputs.push_back(noise);
  // Repeats from up to the whole 32 KiB window back, and just beyond it.
  inputs.push_back(noise.substr(0, 32768) + noise.substr(0, 600) + noise.substr(0, 32769) +
                   noise.substr(1, 300));
  std::string text;
  for (int i = 0; i < 5000; ++i)
    text += "step " + std::to_string(i % 97) + " reward " + std::to_string(i * i % 13) + "\n";
  inputs.push_back(text);
  for (const auto& in : inputs) {
    const std::string z = aha::io::zlib_compress(in);
    EXPECT_EQ(Inflater(z).zlib(), in) << "input of " << in.size() << " bytes";
    EXPECT_EQ(be32(z, z.size() - 4), aha::io::adler32(in));
  }
}

TEST(Png, ZlibShrinksRunsAndRepeats) {
  EXPECT_LT(aha::io::zlib_compress(std::string(1 << 20, '\0')).size(), 8000u);
  std::string text;
  for (int i = 0; i < 2000; ++i)
    text += "the quick brown fox ";
  EXPECT_LT(aha::io::zlib_compress(text).size(), text.size() / 20);
}

TEST(Png, RandomImageRoundTrips) {
  const Image img = random_image(37, 23, 42);
  const std::string png = aha::io::encode_png(img);
  EXPECT_EQ(png.substr(0, 8), std::string("\x89PNG\r\n\x1a\n", 8));
  EXPECT_EQ(be32(png, 8), 13u);  // IHDR comes first
  EXPECT_EQ(png.substr(12, 4), "IHDR");
  EXPECT_EQ(be32(png, 16), 37u);
  EXPECT_EQ(be32(png, 20), 23u);
  const DecodedPng d = decode_png(png);
  EXPECT_EQ((std::vector<std::string>{"IHDR", "IDAT", "IEND"}), d.chunk_types);
  EXPECT_EQ(d.img.width, 37);
  EXPECT_EQ(d.img.height, 23);
  EXPECT_EQ(d.img.rgb, img.rgb);
}

TEST(Png, SmoothImagesUseSeveralFiltersAndRoundTrip) {
  // Horizontal, vertical and diagonal gradients over noise: the adaptive filter choice differs between rows.
  Image img(64, 48);
  std::mt19937 rng(3);
  for (int y = 0; y < img.height; ++y) {
    for (int x = 0; x < img.width; ++x) {
      const int band = y / 12;
      const uint32_t v = band == 0 ? x * 4 : band == 1 ? y * 5 : band == 2 ? (x + y) * 2 : rng() & 0xFF;
      img.set(x, y, (v & 0xFF) * 0x010101u);
    }
  }
  const DecodedPng d = decode_png(aha::io::encode_png(img));
  EXPECT_EQ(d.img.rgb, img.rgb);
  std::vector<int> kinds = d.filters;
  std::sort(kinds.begin(), kinds.end());
  kinds.erase(std::unique(kinds.begin(), kinds.end()), kinds.end());
  EXPECT_GE(kinds.size(), 3u);
}

TEST(Png, WritePngWritesTheEncodedBytes) {
  const auto dir = temp_dir("aha_test_png_write");
  const Image img = random_image(5, 4, 9);
  const std::string path = (dir / "x.png").string();
  aha::io::write_png(path, img);
  EXPECT_EQ(aha::io::read_file(path), aha::io::encode_png(img));
  EXPECT_EQ(std::distance(fs::directory_iterator(dir), fs::directory_iterator()), 1);
}

TEST(Png, ImagePixelAccess) {
  Image img(4, 3, 0x123456);
  EXPECT_EQ(img.rgb.size(), 36u);
  EXPECT_EQ(img.get(3, 2), 0x123456u);
  img.set(1, 2, 0xABCDEF);
  EXPECT_EQ(img.get(1, 2), 0xABCDEFu);
  EXPECT_EQ(img.rgb[(2 * 4 + 1) * 3], 0xAB);
  img.set(-1, 0, 0);  // outside: ignored
  img.set(4, 0, 0);
  img.blend(0, 0, 0x000000, 0.5);
  EXPECT_EQ(img.get(0, 0), 0x091A2Bu);
  img.blend(0, 0, 0xFFFFFF, 1.0);
  EXPECT_EQ(img.get(0, 0), 0xFFFFFFu);
  EXPECT_THROW(img.get(0, 3), aha::Error);
  EXPECT_THROW(Image(0, 5), aha::Error);
}

TEST(Png, RejectsMalformedImages) {
  Image img(3, 3);
  img.rgb.pop_back();
  EXPECT_THROW(aha::io::encode_png(img), aha::Error);
  EXPECT_THROW(aha::io::encode_png(Image{}), aha::Error);
}

// ---- plots
// ------------------------------------------------------------------------------------------------------

Series line(std::string name, std::vector<double> y, uint32_t colour = 0) {
  Series s;
  s.name = std::move(name);
  s.y = std::move(y);
  s.colour = colour;
  return s;
}

std::vector<double> ramp(int n, double a, double b) {
  std::vector<double> v(n);
  for (int i = 0; i < n; ++i)
    v[i] = a + b * i;
  return v;
}

struct Box {
  int x0 = std::numeric_limits<int>::max(), y0 = std::numeric_limits<int>::max(), x1 = -1, y1 = -1, count = 0;
};

// Where pixels of exactly `colour` lie within the columns [x0, x1).
Box find_colour(const Image& img, uint32_t colour, int x0 = 0, int x1 = -1) {
  if (x1 < 0) x1 = img.width;
  Box b;
  for (int y = 0; y < img.height; ++y) {
    for (int x = x0; x < x1; ++x) {
      if (img.get(x, y) != colour) continue;
      b.x0 = std::min(b.x0, x);
      b.x1 = std::max(b.x1, x);
      b.y0 = std::min(b.y0, y);
      b.y1 = std::max(b.y1, y);
      ++b.count;
    }
  }
  return b;
}

// The widest run of columns, between the first and last column holding `colour`, that holds none of it.
int widest_gap(const Image& img, uint32_t colour) {
  std::vector<bool> has(img.width, false);
  for (int y = 0; y < img.height; ++y) {
    for (int x = 0; x < img.width; ++x)
      has[x] = has[x] || img.get(x, y) == colour;
  }
  const auto first = std::find(has.begin(), has.end(), true) - has.begin();
  const auto last = img.width - 1 - (std::find(has.rbegin(), has.rend(), true) - has.rbegin());
  int widest = 0, run = 0;
  for (auto x = first; x <= last; ++x) {
    run = has[x] ? 0 : run + 1;
    widest = std::max(widest, run);
  }
  return widest;
}

TEST(Plot, FileHasRequestedSizeAndEachSeriesInsideItsPanel) {
  const auto dir = temp_dir("aha_test_plot_file");
  const std::vector<uint32_t> colours = {0xD62728, 0x2CA02C, 0x1F77B4};
  std::vector<Panel> panels;
  panels.push_back({"reward", "step", "mean reward", {line("reward", ramp(50, 0.1, 0.015), colours[0])}});
  panels.push_back({"accuracy", "step", "", {line("accuracy", ramp(50, 0.9, -0.01), colours[1])}});
  panels.push_back({"completion length", "step", "tokens", {line("length", ramp(50, 300, 4), colours[2])}});
  const std::string path = (dir / "plot.png").string();
  aha::io::write_plot_png(path, panels, {.width = 960, .height = 320});
  ASSERT_TRUE(fs::exists(path));
  const DecodedPng d = decode_png(aha::io::read_file(path));
  ASSERT_EQ(d.img.width, 960);
  ASSERT_EQ(d.img.height, 320);
  for (int i = 0; i < 3; ++i) {
    const Box b = find_colour(d.img, colours[i], 0, d.img.width);
    SCOPED_TRACE("panel " + std::to_string(i));
    // A 50-point line across the data area: many full-colour pixels, all well inside the panel's own third.
    EXPECT_GT(b.count, 200);
    EXPECT_GT(b.x0, i * 320 + 20);
    EXPECT_LT(b.x1, (i + 1) * 320 - 5);
    EXPECT_GT(b.x1 - b.x0, 150);
    EXPECT_GT(b.y0, 20);
    EXPECT_LT(b.y1, 320 - 20);
  }
  // Mostly white: the file is far smaller than the raw pixels.
  EXPECT_LT(aha::io::read_file(path).size(), 960u * 320 * 3 / 20);
}

TEST(Plot, DefaultSizeFitsThePanelGrid) {
  const Panel p{"t", "x", "y", {line("a", {1, 2, 3})}};
  const Image three = aha::io::render_plot({p, p, p});
  EXPECT_EQ(three.width, 1500);
  EXPECT_EQ(three.height, 450);
  const Image four = aha::io::render_plot({p, p, p, p});  // 2 x 2
  EXPECT_EQ(four.width, 1000);
  EXPECT_EQ(four.height, 900);
  const Image column = aha::io::render_plot({p, p}, {.columns = 1});
  EXPECT_EQ(column.width, 500);
  EXPECT_EQ(column.height, 900);
  // The 2 x 2 grid puts the third panel's line in the lower left quarter.
  Panel red = p;
  red.series[0].colour = 0xD62728;
  const Image grid = aha::io::render_plot({p, p, red, p}, {.width = 800, .height = 600});
  const Box b = find_colour(grid, 0xD62728);
  EXPECT_GT(b.count, 0);
  EXPECT_LT(b.x1, 400);
  EXPECT_GT(b.y0, 300);
}

TEST(Plot, NanPointsLeaveGapsWithoutCrashing) {
  const double nan = std::numeric_limits<double>::quiet_NaN(), inf = std::numeric_limits<double>::infinity();
  std::vector<double> y = ramp(21, 1, 1);
  const Image whole =
      aha::io::render_plot({Panel{"", "", "", {line("r", y, 0xD62728)}}}, {.width = 500, .height = 400});
  EXPECT_EQ(widest_gap(whole, 0xD62728), 0);
  y[10] = nan;
  const Image gapped =
      aha::io::render_plot({Panel{"", "", "", {line("r", y, 0xD62728)}}}, {.width = 500, .height = 400});
  // Two of twenty steps missing: about a tenth of a data area some 400 pixels wide.
  EXPECT_GT(widest_gap(gapped, 0xD62728), 15);
  // NaN and infinities in x or y, an isolated point between gaps, a series of nothing but NaN.
  Series mixed = line("mixed", {1, nan, 2, nan, 3, inf, -inf, 4, 5}, 0x2CA02C);
  mixed.x = {0, 1, 2, 3, nan, 5, 6, inf, 8};
  const Image odd = aha::io::render_plot({Panel{"odd", "x", "y", {mixed, line("nan", {nan, nan}, 0x9467BD)}}},
                                         {.width = 400, .height = 300});
  EXPECT_GT(find_colour(odd, 0x2CA02C).count, 0);
  // Values at the ends of double's range: the axis span overflows, yet nothing is drawn out of bounds.
  const double big = std::numeric_limits<double>::max();
  EXPECT_NO_THROW(aha::io::render_plot({Panel{"extreme", "", "", {line("e", {-big, big, 1e-300, 0})}}}));
}

TEST(Plot, ConstantEmptyAndSinglePointSeriesDraw) {
  std::vector<Panel> panels;
  panels.push_back({"constant", "", "", {line("c", std::vector<double>(30, 0.5), 0xD62728)}});
  panels.push_back({"zeros", "", "", {line("z", std::vector<double>(30, 0.0), 0x2CA02C)}});
  panels.push_back({"one point", "", "", {line("p", {7.0}, 0x1F77B4)}});
  panels.push_back({"empty", "", "", {line("e", {})}});
  panels.push_back({"no series", "", "", {}});
  Series same_x = line("x", {1, 2, 3}, 0x8C564B);
  same_x.x = {4, 4, 4};
  panels.push_back({"one x", "", "", {same_x}});
  const auto dir = temp_dir("aha_test_plot_edge");
  const std::string path = (dir / "edge.png").string();
  aha::io::write_plot_png(path, panels, {.width = 900, .height = 600});
  const Image img = decode_png(aha::io::read_file(path)).img;
  const Box constant = find_colour(img, 0xD62728, 0, 300);
  EXPECT_GT(constant.count, 100);
  EXPECT_LE(constant.y1 - constant.y0, 3);  // a horizontal line
  EXPECT_GT(find_colour(img, 0x2CA02C, 300, 600).count, 100);
  EXPECT_GT(find_colour(img, 0x1F77B4, 600, 900).count, 0);
  EXPECT_GT(find_colour(img, 0x8C564B, 600, 900).count, 0);
}

TEST(Plot, LegendAndPaletteColours) {
  // Two series with automatic colours: the palette's first two, both in the lines and in the legend.
  const Panel p{"two", "step", "value", {line("first", ramp(40, 0, 1)), line("second", ramp(40, 40, -1))}};
  const Image img = aha::io::render_plot({p}, {.width = 500, .height = 450});
  EXPECT_EQ(aha::io::palette_colour(0), 0x1F77B4u);
  EXPECT_EQ(aha::io::palette_colour(11), aha::io::palette_colour(1));
  EXPECT_GT(find_colour(img, aha::io::palette_colour(0)).count, 200);
  EXPECT_GT(find_colour(img, aha::io::palette_colour(1)).count, 200);
  // The legend's frame appears only with two or more series.
  const uint32_t legend_border = 0xBBBBBB;
  EXPECT_GT(find_colour(img, legend_border).count, 50);
  const Image single = aha::io::render_plot({Panel{"one", "", "", {line("only", ramp(40, 0, 1))}}});
  EXPECT_EQ(find_colour(single, legend_border).count, 0);
}

TEST(Plot, RejectsInvalidInput) {
  EXPECT_THROW(aha::io::render_plot({}), aha::Error);
  Series bad = line("bad", {1, 2, 3});
  bad.x = {1, 2};
  EXPECT_THROW(aha::io::render_plot({Panel{"p", "", "", {bad}}}), aha::Error);
  const Panel ok{"p", "", "", {line("a", {1, 2})}};
  EXPECT_THROW(aha::io::render_plot({ok}, {.width = -1}), aha::Error);
  EXPECT_THROW(aha::io::render_plot({ok}, {.line_width = 0}), aha::Error);
  // Tiny images draw what fits and do not fail.
  EXPECT_NO_THROW(aha::io::render_plot({ok, ok, ok}, {.width = 12, .height = 7}));
}

}  // namespace
