// PNG files through libpng: images round-trip bit for bit, the file starts with the PNG signature and an IHDR
// of the image's size, mostly-white images compress far below their raw size, malformed input is refused.
// Plots are checked through the pixels they decode to.
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

uint32_t be32(const std::string& s, size_t at) {
  uint32_t v = 0;
  for (size_t k = 0; k < 4; ++k)
    v = (v << 8) | static_cast<unsigned char>(s[at + k]);
  return v;
}

Image random_image(int w, int h, uint32_t seed) {
  std::mt19937 rng(seed);
  Image img(w, h);
  for (auto& v : img.rgb)
    v = static_cast<uint8_t>(rng());
  return img;
}

TEST(Png, RandomImageRoundTrips) {
  const Image img = random_image(37, 23, 42);
  const std::string png = aha::io::encode_png(img);
  EXPECT_EQ(png.substr(0, 8), std::string("\x89PNG\r\n\x1a\n", 8));
  EXPECT_EQ(be32(png, 8), 13u);  // IHDR comes first
  EXPECT_EQ(png.substr(12, 4), "IHDR");
  EXPECT_EQ(be32(png, 16), 37u);
  EXPECT_EQ(be32(png, 20), 23u);
  EXPECT_EQ(png.substr(png.size() - 8, 4), "IEND");
  const Image back = aha::io::decode_png(png);
  EXPECT_EQ(back.width, 37);
  EXPECT_EQ(back.height, 23);
  EXPECT_EQ(back.rgb, img.rgb);
}

TEST(Png, SmoothImagesRoundTripAndPlainOnesCompress) {
  // Horizontal, vertical and diagonal gradients over noise round-trip exactly.
  Image img(64, 48);
  std::mt19937 rng(3);
  for (int y = 0; y < img.height; ++y) {
    for (int x = 0; x < img.width; ++x) {
      const int band = y / 12;
      const uint32_t v = band == 0 ? x * 4 : band == 1 ? y * 5 : band == 2 ? (x + y) * 2 : rng() & 0xFF;
      img.set(x, y, (v & 0xFF) * 0x010101u);
    }
  }
  EXPECT_EQ(aha::io::decode_png(aha::io::encode_png(img)).rgb, img.rgb);
  // A white image with a line: far below its 2.3 MB of pixels.
  Image plain(1000, 800);
  for (int x = 0; x < 1000; ++x)
    plain.set(x, 400, 0xD62728);
  EXPECT_LT(aha::io::encode_png(plain).size(), 1000u * 800 * 3 / 200);
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
  const std::string png = aha::io::encode_png(Image(4, 4, 0x102030));
  EXPECT_THROW(aha::io::decode_png("not a png"), aha::Error);
  EXPECT_THROW(aha::io::decode_png(png.substr(0, png.size() / 2)), aha::Error);  // cut short
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
  const Image d = aha::io::decode_png(aha::io::read_file(path));
  ASSERT_EQ(d.width, 960);
  ASSERT_EQ(d.height, 320);
  for (int i = 0; i < 3; ++i) {
    const Box b = find_colour(d, colours[i], 0, d.width);
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
  const Image img = aha::io::decode_png(aha::io::read_file(path));
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
