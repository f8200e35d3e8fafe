// PNG encoding: row filters, then zlib (LZ77 + fixed-Huffman deflate), then chunks with their CRCs.
//
// What must hold for any inflater to read the stream: Huffman codes are written most significant bit first,
// every other deflate field least significant bit first; matches are 3..258 bytes long and reach at most
// 32768 bytes back; the zlib header's 16-bit value is a multiple of 31; the Adler-32 trailer is big-endian.
#include "aha/io/png.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdlib>

#include "aha/core/error.h"
#include "aha/io/file.h"

namespace aha::io {

Image::Image(int width, int height, uint32_t fill) : width(width), height(height) {
  AHA_CHECK(width > 0 && height > 0, "an image needs a positive size, got ", width, "x", height);
  rgb.resize(static_cast<size_t>(width) * static_cast<size_t>(height) * 3);
  for (size_t i = 0; i < rgb.size(); i += 3) {
    rgb[i] = static_cast<uint8_t>(fill >> 16);
    rgb[i + 1] = static_cast<uint8_t>(fill >> 8);
    rgb[i + 2] = static_cast<uint8_t>(fill);
  }
}

void Image::set(int x, int y, uint32_t colour) {
  if (!contains(x, y)) return;
  uint8_t* p = &rgb[(static_cast<size_t>(y) * width + x) * 3];
  p[0] = static_cast<uint8_t>(colour >> 16);
  p[1] = static_cast<uint8_t>(colour >> 8);
  p[2] = static_cast<uint8_t>(colour);
}

void Image::blend(int x, int y, uint32_t colour, double alpha) {
  if (!contains(x, y) || !(alpha > 0)) return;
  alpha = std::min(alpha, 1.0);
  uint8_t* p = &rgb[(static_cast<size_t>(y) * width + x) * 3];
  for (int c = 0; c < 3; ++c) {
    const double src = static_cast<double>((colour >> (16 - 8 * c)) & 0xFF);
    p[c] = static_cast<uint8_t>(std::lround(src * alpha + p[c] * (1 - alpha)));
  }
}

uint32_t Image::get(int x, int y) const {
  AHA_CHECK(contains(x, y), "pixel (", x, ", ", y, ") is outside the ", width, "x", height, " image");
  const uint8_t* p = &rgb[(static_cast<size_t>(y) * width + x) * 3];
  return (uint32_t{p[0]} << 16) | (uint32_t{p[1]} << 8) | p[2];
}

namespace {

constexpr std::array<uint32_t, 256> kCrcTable = [] {
  std::array<uint32_t, 256> t{};
  for (uint32_t n = 0; n < 256; ++n) {
    uint32_t c = n;
    for (int k = 0; k < 8; ++k)
      c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
    t[n] = c;
  }
  return t;
}();

// Deflate's length codes 257..285 and distance codes 0..29: the smallest value each covers, and its extra
// bits.
constexpr std::array<uint16_t, 29> kLengthBase = {3,  4,  5,  6,   7,   8,   9,   10,  11, 13,
                                                  15, 17, 19, 23,  27,  31,  35,  43,  51, 59,
                                                  67, 83, 99, 115, 131, 163, 195, 227, 258};
constexpr std::array<uint8_t, 29> kLengthExtra = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2,
                                                  2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0};
constexpr std::array<uint16_t, 30> kDistBase = {
    1,   2,   3,   4,   5,   7,    9,    13,   17,   25,   33,   49,   65,    97,    129,
    193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577};
constexpr std::array<uint8_t, 30> kDistExtra = {0, 0, 0, 0, 1, 1, 2, 2,  3,  3,  4,  4,  5,  5,  6,
                                                6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13};

constexpr int kMinMatch = 3, kMaxMatch = 258, kWindow = 32768;
constexpr int kHashBits = 15;
// How many earlier positions with the same 3-byte hash are tried per position: speed against ratio.
constexpr int kMaxChain = 48;

class BitWriter {
 public:
  // Writes the low `n` bits of `bits`, least significant first.
  void bits(uint32_t bits, int n) {
    buf_ |= static_cast<uint64_t>(bits) << count_;
    count_ += n;
    while (count_ >= 8) {
      out_.push_back(static_cast<char>(buf_ & 0xFF));
      buf_ >>= 8;
      count_ -= 8;
    }
  }
  // Writes an `n`-bit Huffman code, most significant bit first.
  void code(uint32_t code, int n) {
    uint32_t reversed = 0;
    for (int i = 0; i < n; ++i)
      reversed |= ((code >> i) & 1u) << (n - 1 - i);
    bits(reversed, n);
  }
  std::string finish() {
    if (count_ > 0) bits(0, 8 - count_);
    return std::move(out_);
  }

 private:
  std::string out_;
  uint64_t buf_ = 0;
  int count_ = 0;
};

// A literal/length symbol 0..287 under deflate's fixed Huffman code (RFC 1951, 3.2.6).
void put_fixed_symbol(BitWriter& w, int sym) {
  if (sym < 144) {
    w.code(0x30 + sym, 8);
  } else if (sym < 256) {
    w.code(0x190 + sym - 144, 9);
  } else if (sym < 280) {
    w.code(sym - 256, 7);
  } else {
    w.code(0xC0 + sym - 280, 8);
  }
}

void put_match(BitWriter& w, int length, int distance) {
  const int lc = static_cast<int>(std::upper_bound(kLengthBase.begin(), kLengthBase.end(), length) -
                                  kLengthBase.begin()) -
                 1;
  put_fixed_symbol(w, 257 + lc);
  w.bits(static_cast<uint32_t>(length - kLengthBase[lc]), kLengthExtra[lc]);
  const int dc =
      static_cast<int>(std::upper_bound(kDistBase.begin(), kDistBase.end(), distance) - kDistBase.begin()) -
      1;
  w.code(static_cast<uint32_t>(dc), 5);
  w.bits(static_cast<uint32_t>(distance - kDistBase[dc]), kDistExtra[dc]);
}

// One final fixed-Huffman block holding all of `data`, matches found through hash chains.
std::string deflate_fixed(std::string_view data) {
  const auto* d = reinterpret_cast<const uint8_t*>(data.data());
  const int n = static_cast<int>(data.size());
  std::vector<int32_t> head(size_t{1} << kHashBits, -1), prev(kWindow, -1);
  auto hash = [&](int i) {
    const uint32_t v = (uint32_t{d[i]} << 16) | (uint32_t{d[i + 1]} << 8) | d[i + 2];
    return (v * 2654435761u) >> (32 - kHashBits);
  };
  auto insert = [&](int i) {
    if (i + kMinMatch > n) return;
    const uint32_t h = hash(i);
    prev[i & (kWindow - 1)] = head[h];
    head[h] = i;
  };

  BitWriter w;
  w.bits(1, 1);  // BFINAL
  w.bits(1, 2);  // BTYPE = fixed Huffman
  for (int i = 0; i < n;) {
    int best_len = 0, best_dist = 0;
    if (i + kMinMatch <= n) {
      const int max_len = std::min(kMaxMatch, n - i);
      int cand = head[hash(i)];
      for (int chain = kMaxChain; cand >= 0 && i - cand <= kWindow && chain > 0; --chain) {
        int len = 0;
        while (len < max_len && d[cand + len] == d[i + len])
          ++len;
        if (len > best_len) {
          best_len = len;
          best_dist = i - cand;
          if (len == max_len) break;
        }
        const int next = prev[cand & (kWindow - 1)];
        if (next >= cand) break;  // a slot reused by a later position: the chain ends here
        cand = next;
      }
    }
    if (best_len >= kMinMatch) {
      put_match(w, best_len, best_dist);
      for (int k = 0; k < best_len; ++k)
        insert(i + k);
      i += best_len;
    } else {
      put_fixed_symbol(w, d[i]);
      insert(i);
      ++i;
    }
  }
  put_fixed_symbol(w, 256);  // end of block
  return w.finish();
}

void put_be32(std::string& out, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8)
    out.push_back(static_cast<char>((v >> shift) & 0xFF));
}

void put_chunk(std::string& out, std::string_view type, std::string_view data) {
  put_be32(out, static_cast<uint32_t>(data.size()));
  const size_t start = out.size();
  out.append(type);
  out.append(data);
  put_be32(out, crc32(std::string_view(out).substr(start)));
}

uint8_t paeth(int a, int b, int c) {
  const int p = a + b - c, pa = std::abs(p - a), pb = std::abs(p - b), pc = std::abs(p - c);
  return static_cast<uint8_t>(pa <= pb && pa <= pc ? a : pb <= pc ? b : c);
}

// The scanlines, each led by the filter type (0..4) that makes its bytes smallest as signed values.
std::string filter_rows(const Image& img) {
  constexpr int bpp = 3;
  const size_t stride = static_cast<size_t>(img.width) * bpp;
  std::string out;
  out.reserve((stride + 1) * img.height);
  std::array<std::vector<uint8_t>, 5> cand;
  for (auto& c : cand)
    c.resize(stride);
  const std::vector<uint8_t> zeros(stride, 0);
  for (int y = 0; y < img.height; ++y) {
    const uint8_t* row = &img.rgb[y * stride];
    const uint8_t* up = y > 0 ? &img.rgb[(y - 1) * stride] : zeros.data();
    for (size_t i = 0; i < stride; ++i) {
      const int a = i >= bpp ? row[i - bpp] : 0, b = up[i], c = i >= bpp ? up[i - bpp] : 0;
      cand[0][i] = row[i];
      cand[1][i] = static_cast<uint8_t>(row[i] - a);
      cand[2][i] = static_cast<uint8_t>(row[i] - b);
      cand[3][i] = static_cast<uint8_t>(row[i] - (a + b) / 2);
      cand[4][i] = static_cast<uint8_t>(row[i] - paeth(a, b, c));
    }
    int best = 0;
    uint64_t best_cost = UINT64_MAX;
    for (int f = 0; f < 5; ++f) {
      uint64_t cost = 0;
      for (uint8_t v : cand[f])
        cost += static_cast<uint64_t>(std::abs(static_cast<int8_t>(v)));
      if (cost < best_cost) {
        best_cost = cost;
        best = f;
      }
    }
    out.push_back(static_cast<char>(best));
    out.append(reinterpret_cast<const char*>(cand[best].data()), stride);
  }
  return out;
}

}  // namespace

uint32_t crc32(std::string_view data, uint32_t crc) {
  uint32_t c = crc ^ 0xFFFFFFFFu;
  for (unsigned char ch : data)
    c = kCrcTable[(c ^ ch) & 0xFF] ^ (c >> 8);
  return c ^ 0xFFFFFFFFu;
}

uint32_t adler32(std::string_view data, uint32_t adler) {
  constexpr uint32_t kMod = 65521;
  // 5552 is the most bytes after which s2 still fits in 32 bits before the modulo (zlib's NMAX).
  constexpr size_t kBlock = 5552;
  uint32_t s1 = adler & 0xFFFF, s2 = adler >> 16;
  for (size_t pos = 0; pos < data.size(); pos += kBlock) {
    const size_t end = std::min(data.size(), pos + kBlock);
    for (size_t i = pos; i < end; ++i) {
      s1 += static_cast<unsigned char>(data[i]);
      s2 += s1;
    }
    s1 %= kMod;
    s2 %= kMod;
  }
  return (s2 << 16) | s1;
}

std::string zlib_compress(std::string_view data) {
  // CMF 0x78: deflate with a 32 KiB window; FLG 0x01: no dictionary, "fastest" level, check bits so that
  // 0x7801 % 31 == 0.
  std::string out = {'\x78', '\x01'};
  out += deflate_fixed(data);
  put_be32(out, adler32(data));
  return out;
}

std::string encode_png(const Image& img) {
  AHA_CHECK(img.width > 0 && img.height > 0, "cannot encode an empty image (", img.width, "x", img.height,
            ")");
  const size_t expected = static_cast<size_t>(img.width) * static_cast<size_t>(img.height) * 3;
  AHA_CHECK(img.rgb.size() == expected, "a ", img.width, "x", img.height, " RGB image needs ", expected,
            " bytes, got ", img.rgb.size());
  std::string out = "\x89PNG\r\n\x1a\n";
  std::string ihdr;
  put_be32(ihdr, static_cast<uint32_t>(img.width));
  put_be32(ihdr, static_cast<uint32_t>(img.height));
  ihdr += {'\x08', '\x02', '\x00', '\x00',
           '\x00'};  // 8 bits, truecolour, deflate, adaptive filters, no interlace
  put_chunk(out, "IHDR", ihdr);
  put_chunk(out, "IDAT", zlib_compress(filter_rows(img)));
  put_chunk(out, "IEND", {});
  return out;
}

void write_png(const std::string& path, const Image& img) {
  write_file_atomic(path, encode_png(img));
}

}  // namespace aha::io
