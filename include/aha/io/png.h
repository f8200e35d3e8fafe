// PNG images through libpng: 8-bit RGB pixels in, a PNG file out (and back, for tests and tools). The trainer
// writes plots of its metrics into every run directory with it (plot.h).
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

// The PNG file of `img` (8-bit truecolour; libpng's adaptive filters and zlib); throws aha::Error for a
// malformed image.
std::string encode_png(const Image& img);
// The pixels of a PNG file (any colour type, converted to 8-bit RGB); throws aha::Error on a damaged file.
Image decode_png(std::string_view data);

// Writes encode_png(img) to `path` atomically (see write_file_atomic).
void write_png(const std::string& path, const Image& img);

}  // namespace aha::io
