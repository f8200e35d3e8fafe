// PNG files through libpng (Debian's libpng-dev, with zlib): 8-bit RGB pixels in and out.
#include "aha/io/png.h"

#include <png.h>

#include <algorithm>
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

void check_image(const Image& img) {
  AHA_CHECK(img.width > 0 && img.height > 0, "cannot encode an empty image (", img.width, "x", img.height,
            ")");
  const size_t expected = static_cast<size_t>(img.width) * static_cast<size_t>(img.height) * 3;
  AHA_CHECK(img.rgb.size() == expected, "a ", img.width, "x", img.height, " RGB image needs ", expected,
            " bytes, got ", img.rgb.size());
}

png_image rgb_image(int width, int height) {
  png_image im{};
  im.version = PNG_IMAGE_VERSION;
  im.width = static_cast<png_uint_32>(width);
  im.height = static_cast<png_uint_32>(height);
  im.format = PNG_FORMAT_RGB;
  return im;
}

}  // namespace

std::string encode_png(const Image& img) {
  check_image(img);
  png_image im = rgb_image(img.width, img.height);
  // libpng's simplified API: once to learn the size, once to write.
  png_alloc_size_t bytes = 0;
  AHA_CHECK(png_image_write_to_memory(&im, nullptr, &bytes, 0, img.rgb.data(), 0, nullptr) && bytes > 0,
            "libpng could not size a ", img.width, "x", img.height, " PNG: ", im.message);
  std::string out(bytes, '\0');
  AHA_CHECK(png_image_write_to_memory(&im, out.data(), &bytes, 0, img.rgb.data(), 0, nullptr),
            "libpng could not encode a ", img.width, "x", img.height, " PNG: ", im.message);
  out.resize(bytes);
  return out;
}

Image decode_png(std::string_view data) {
  png_image im{};
  im.version = PNG_IMAGE_VERSION;
  AHA_CHECK(png_image_begin_read_from_memory(&im, data.data(), data.size()), "not a PNG image: ", im.message);
  im.format = PNG_FORMAT_RGB;
  Image img(static_cast<int>(im.width), static_cast<int>(im.height));
  if (!png_image_finish_read(&im, nullptr, img.rgb.data(), 0, nullptr)) {
    const std::string why = im.message;
    png_image_free(&im);
    AHA_FAIL("a damaged PNG image: ", why);
  }
  return img;
}

void write_png(const std::string& path, const Image& img) {
  write_file_atomic(path, encode_png(img));
}

}  // namespace aha::io
