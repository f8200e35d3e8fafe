// PNG images without zlib: 8-bit RGB pixels in, a valid PNG file out.
//
// The trainer writes plots of its metrics into every run directory; pulling in zlib or libpng for that would
// be a dependency for a few hundred kilobytes a run. The encoder here picks a PNG filter per row (the usual
// minimum-sum-of-absolute-differences rule) and compresses with LZ77 + deflate's fixed Huffman codes, which
// shrinks mostly-white plots some hundred-fold. Any zlib inflater reads the result. CRC-32 (PNG chunks) and
// Adler-32 (the zlib trailer) are exposed for the tests.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace aha::io {

// An 8-bit RGB image; colours are 0xRRGGBB.
struct Image {
  int width = 0, height = 0;
  std::vector<uint8_t> rgb;  // [height, width, 3], row-major, no padding

  Image() = default;
  // A width x height image filled with `fill`. Throws aha::Error unless both sides are positive.
  Image(int width, int height, uint32_t fill = 0xFFFFFF);

  bool contains(int x, int y) const { return x >= 0 && y >= 0 && x < width && y < height; }
  // Sets one pixel; coordinates outside the image are ignored, so drawing code may run over the edges.
  void set(int x, int y, uint32_t colour);
  // Mixes `colour` into the pixel with weight `alpha` in [0, 1]; ignored outside the image like set().
  void blend(int x, int y, uint32_t colour, double alpha);
  // The pixel's colour; throws aha::Error for coordinates outside the image.
  uint32_t get(int x, int y) const;
};

// CRC-32 (ISO 3309, as PNG and zlib use it). Pass an earlier result as `crc` to continue over more data.
uint32_t crc32(std::string_view data, uint32_t crc = 0);
// Adler-32 (RFC 1950). Pass an earlier result as `adler` to continue over more data.
uint32_t adler32(std::string_view data, uint32_t adler = 1);

// A zlib stream (RFC 1950) holding `data` deflated (RFC 1951) with LZ77 and the fixed Huffman codes.
std::string zlib_compress(std::string_view data);

// The bytes of a PNG file: signature, IHDR (8-bit RGB, not interlaced), one IDAT, IEND. Throws aha::Error
// when the image is empty or `rgb` does not hold width * height * 3 bytes.
std::string encode_png(const Image& img);

// Writes encode_png(img) to `path` atomically (see write_file_atomic).
void write_png(const std::string& path, const Image& img);

}  // namespace aha::io
