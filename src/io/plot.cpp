// Line plots: grid layout, axes with nice ticks, anti-aliased lines, a 5x7 bitmap font, legends.
//
// Pixel centres sit at integer coordinates. Every drawing call goes through Image::set/blend, which ignore
// pixels outside the image, and every data point is mapped through axes widened to a non-empty range, so no
// input (NaN, inf, constant, empty) divides by zero or writes out of bounds.
#include "aha/io/plot.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <limits>
#include <string_view>

#include "aha/core/error.h"

namespace aha::io {
namespace {

// Glyphs for ASCII 32..126 in a 5x8 cell: five columns each, left to right, bit 0 the top row; letters stand
// on row 6 and only the descenders of g, j, p, q and y reach row 7.
constexpr uint8_t kFont[95][5] = {
    {0x00, 0x00, 0x00, 0x00, 0x00}, {0x00, 0x00, 0x5F, 0x00, 0x00}, {0x00, 0x07, 0x00, 0x07, 0x00},  //  !"
    {0x14, 0x7F, 0x14, 0x7F, 0x14}, {0x24, 0x2A, 0x7F, 0x2A, 0x12}, {0x23, 0x13, 0x08, 0x64, 0x62},  // #$%
    {0x36, 0x49, 0x55, 0x22, 0x50}, {0x00, 0x05, 0x03, 0x00, 0x00}, {0x00, 0x1C, 0x22, 0x41, 0x00},  // &'(
    {0x00, 0x41, 0x22, 0x1C, 0x00}, {0x14, 0x08, 0x3E, 0x08, 0x14}, {0x08, 0x08, 0x3E, 0x08, 0x08},  // )*+
    {0x00, 0x50, 0x30, 0x00, 0x00}, {0x08, 0x08, 0x08, 0x08, 0x08}, {0x00, 0x60, 0x60, 0x00, 0x00},  // ,-.
    {0x20, 0x10, 0x08, 0x04, 0x02}, {0x3E, 0x51, 0x49, 0x45, 0x3E}, {0x00, 0x42, 0x7F, 0x40, 0x00},  // /01
    {0x42, 0x61, 0x51, 0x49, 0x46}, {0x21, 0x41, 0x45, 0x4B, 0x31}, {0x18, 0x14, 0x12, 0x7F, 0x10},  // 234
    {0x27, 0x45, 0x45, 0x45, 0x39}, {0x3C, 0x4A, 0x49, 0x49, 0x30}, {0x01, 0x71, 0x09, 0x05, 0x03},  // 567
    {0x36, 0x49, 0x49, 0x49, 0x36}, {0x06, 0x49, 0x49, 0x29, 0x1E}, {0x00, 0x36, 0x36, 0x00, 0x00},  // 89:
    {0x00, 0x56, 0x36, 0x00, 0x00}, {0x08, 0x14, 0x22, 0x41, 0x00}, {0x14, 0x14, 0x14, 0x14, 0x14},  // ;<=
    {0x00, 0x41, 0x22, 0x14, 0x08}, {0x02, 0x01, 0x51, 0x09, 0x06}, {0x32, 0x49, 0x79, 0x41, 0x3E},  // >?@
    {0x7E, 0x11, 0x11, 0x11, 0x7E}, {0x7F, 0x49, 0x49, 0x49, 0x36}, {0x3E, 0x41, 0x41, 0x41, 0x22},  // ABC
    {0x7F, 0x41, 0x41, 0x22, 0x1C}, {0x7F, 0x49, 0x49, 0x49, 0x41}, {0x7F, 0x09, 0x09, 0x09, 0x01},  // DEF
    {0x3E, 0x41, 0x49, 0x49, 0x7A}, {0x7F, 0x08, 0x08, 0x08, 0x7F}, {0x00, 0x41, 0x7F, 0x41, 0x00},  // GHI
    {0x20, 0x40, 0x41, 0x3F, 0x01}, {0x7F, 0x08, 0x14, 0x22, 0x41}, {0x7F, 0x40, 0x40, 0x40, 0x40},  // JKL
    {0x7F, 0x02, 0x0C, 0x02, 0x7F}, {0x7F, 0x04, 0x08, 0x10, 0x7F}, {0x3E, 0x41, 0x41, 0x41, 0x3E},  // MNO
    {0x7F, 0x09, 0x09, 0x09, 0x06}, {0x3E, 0x41, 0x51, 0x21, 0x5E}, {0x7F, 0x09, 0x19, 0x29, 0x46},  // PQR
    {0x46, 0x49, 0x49, 0x49, 0x31}, {0x01, 0x01, 0x7F, 0x01, 0x01}, {0x3F, 0x40, 0x40, 0x40, 0x3F},  // STU
    {0x1F, 0x20, 0x40, 0x20, 0x1F}, {0x3F, 0x40, 0x38, 0x40, 0x3F}, {0x63, 0x14, 0x08, 0x14, 0x63},  // VWX
    {0x07, 0x08, 0x70, 0x08, 0x07}, {0x61, 0x51, 0x49, 0x45, 0x43}, {0x00, 0x7F, 0x41, 0x41, 0x00},  // YZ[
    {0x02, 0x04, 0x08, 0x10, 0x20}, {0x00, 0x41, 0x41, 0x7F, 0x00}, {0x04, 0x02, 0x01, 0x02, 0x04},  // \]^
    {0x40, 0x40, 0x40, 0x40, 0x40}, {0x00, 0x01, 0x02, 0x04, 0x00}, {0x20, 0x54, 0x54, 0x54, 0x78},  // _`a
    {0x7F, 0x48, 0x44, 0x44, 0x38}, {0x38, 0x44, 0x44, 0x44, 0x20}, {0x38, 0x44, 0x44, 0x48, 0x7F},  // bcd
    {0x38, 0x54, 0x54, 0x54, 0x18}, {0x08, 0x7E, 0x09, 0x01, 0x02}, {0x18, 0xA4, 0xA4, 0xA4, 0x7C},  // efg
    {0x7F, 0x08, 0x04, 0x04, 0x78}, {0x00, 0x44, 0x7D, 0x40, 0x00}, {0x40, 0x80, 0x84, 0x7D, 0x00},  // hij
    {0x7F, 0x10, 0x28, 0x44, 0x00}, {0x00, 0x41, 0x7F, 0x40, 0x00}, {0x7C, 0x04, 0x18, 0x04, 0x78},  // klm
    {0x7C, 0x08, 0x04, 0x04, 0x78}, {0x38, 0x44, 0x44, 0x44, 0x38}, {0xFC, 0x24, 0x24, 0x24, 0x18},  // nop
    {0x18, 0x24, 0x24, 0x18, 0xFC}, {0x7C, 0x08, 0x04, 0x04, 0x08}, {0x48, 0x54, 0x54, 0x54, 0x20},  // qrs
    {0x04, 0x3F, 0x44, 0x40, 0x20}, {0x3C, 0x40, 0x40, 0x20, 0x7C}, {0x1C, 0x20, 0x40, 0x20, 0x1C},  // tuv
    {0x3C, 0x40, 0x30, 0x40, 0x3C}, {0x44, 0x28, 0x10, 0x28, 0x44}, {0x9C, 0xA0, 0xA0, 0xA0, 0x7C},  // wxy
    {0x44, 0x64, 0x54, 0x4C, 0x44}, {0x00, 0x08, 0x36, 0x41, 0x00}, {0x00, 0x00, 0x7F, 0x00, 0x00},  // z{|
    {0x00, 0x41, 0x36, 0x08, 0x00}, {0x08, 0x04, 0x08, 0x10, 0x08},                                  // }~
};
constexpr int kGlyphW = 5, kGlyphH = 8, kAdvance = 6;

constexpr uint32_t kBackground = 0xFFFFFF, kText = 0x222222, kFrame = 0x555555, kGrid = 0xE6E6E6;
constexpr uint32_t kLegendBorder = 0xBBBBBB, kMuted = 0x999999;
constexpr std::array<uint32_t, 10> kPalette = {0x1F77B4, 0xFF7F0E, 0x2CA02C, 0xD62728, 0x9467BD,
                                               0x8C564B, 0xE377C2, 0x7F7F7F, 0xBCBD22, 0x17BECF};
constexpr int kMaxSide = 16384;  // pixels; keeps a typo in the options from allocating gigabytes

struct Point {
  double x, y;
};

struct Rect {
  int x0, y0, x1, y1;  // inclusive
};

void fill_rect(Image& img, int x, int y, int w, int h, uint32_t colour) {
  for (int j = std::max(y, 0); j < std::min(y + h, img.height); ++j) {
    for (int i = std::max(x, 0); i < std::min(x + w, img.width); ++i)
      img.set(i, j, colour);
  }
}

void outline_rect(Image& img, const Rect& r, uint32_t colour) {
  fill_rect(img, r.x0, r.y0, r.x1 - r.x0 + 1, 1, colour);
  fill_rect(img, r.x0, r.y1, r.x1 - r.x0 + 1, 1, colour);
  fill_rect(img, r.x0, r.y0, 1, r.y1 - r.y0 + 1, colour);
  fill_rect(img, r.x1, r.y0, 1, r.y1 - r.y0 + 1, colour);
}

const uint8_t* glyph(char c) {
  const int u = static_cast<unsigned char>(c);
  return kFont[(u >= 32 && u <= 126 ? u : '?') - 32];
}

int text_width(std::string_view s, int scale) {
  return s.empty() ? 0 : (static_cast<int>(s.size()) * kAdvance - 1) * scale;
}

// Draws `s` with its top-left corner at (x, y).
void draw_text(Image& img, int x, int y, std::string_view s, uint32_t colour, int scale) {
  for (size_t k = 0; k < s.size(); ++k) {
    const uint8_t* g = glyph(s[k]);
    for (int c = 0; c < kGlyphW; ++c) {
      for (int r = 0; r < kGlyphH; ++r) {
        if ((g[c] >> r) & 1) {
          fill_rect(img, x + (static_cast<int>(k) * kAdvance + c) * scale, y + r * scale, scale, scale,
                    colour);
        }
      }
    }
  }
}

// Draws `s` turned a quarter left, reading upwards, with its bottom-left corner at (x, y).
void draw_text_up(Image& img, int x, int y, std::string_view s, uint32_t colour, int scale) {
  for (size_t k = 0; k < s.size(); ++k) {
    const uint8_t* g = glyph(s[k]);
    for (int c = 0; c < kGlyphW; ++c) {
      for (int r = 0; r < kGlyphH; ++r) {
        if ((g[c] >> r) & 1) {
          fill_rect(img, x + r * scale, y - (static_cast<int>(k) * kAdvance + c + 1) * scale + 1, scale,
                    scale, colour);
        }
      }
    }
  }
}

// `s` cut to fit in `max_px`, ending in ".." when cut.
std::string fit_text(const std::string& s, int max_px, int scale) {
  if (text_width(s, scale) <= max_px) return s;
  const size_t n = static_cast<size_t>(std::max(0, (max_px / scale + 1) / kAdvance));
  return n < 3 ? s.substr(0, n) : s.substr(0, n - 2) + "..";
}

// Heckbert's nice numbers: 1, 2, 5 or 10 times a power of ten, nearest to x.
double nice_number(double x) {
  const double p = std::pow(10.0, std::floor(std::log10(x))), f = x / p;
  return (f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10) * p;
}

struct Axis {
  double lo = 0, hi = 1;  // the values mapped to the two ends of the data area; lo < hi
  double step = 0;        // between ticks; 0 when there are none
  std::vector<double> ticks;
  std::vector<std::string> labels;
};

std::string tick_label(double v, double step, double magnitude) {
  if (std::abs(v) < step * 1e-6) v = 0;  // no "-0" or "1e-17" at zero
  char buf[48];
  if (magnitude < 1e6 && step >= 1e-5) {
    const int decimals = std::clamp(static_cast<int>(-std::floor(std::log10(step) + 1e-9)), 0, 5);
    std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  } else {
    const int digits = std::clamp(
        static_cast<int>(std::floor(std::log10(magnitude)) - std::floor(std::log10(step))) + 1, 1, 15);
    std::snprintf(buf, sizeof buf, "%.*g", digits, v);
  }
  return buf;
}

// An axis over [lo, hi] (lo > hi means no data) with about `target` ticks. A loose axis extends to the ticks
// around the data; a tight one keeps [lo, hi] and puts ticks inside. An empty range is widened first.
Axis make_axis(double lo, double hi, int target, bool loose) {
  if (!(lo <= hi)) {
    lo = 0;
    hi = 1;
  }
  const double magnitude = std::max(std::abs(lo), std::abs(hi));
  if (!(hi - lo > magnitude * 1e-12)) {
    const double pad = magnitude > 0 ? magnitude * 0.1 : 1;
    lo -= pad;
    hi += pad;
  }
  Axis a;
  a.lo = lo;
  a.hi = hi;
  if (!std::isfinite(hi - lo)) return a;
  const double step = nice_number((hi - lo) / std::max(target - 1, 1));
  if (!(step > 0) || !std::isfinite(step)) return a;
  if (loose) {
    a.lo = std::floor(lo / step) * step;
    a.hi = std::ceil(hi / step) * step;
  }
  const double k0 = std::ceil(a.lo / step - 1e-9), k1 = std::floor(a.hi / step + 1e-9);
  if (!(k1 - k0 >= 0 && k1 - k0 <= 100)) return a;
  a.step = step;
  const double label_magnitude = std::max(std::abs(a.lo), std::abs(a.hi));
  for (int i = 0; i <= static_cast<int>(k1 - k0); ++i) {
    a.ticks.push_back((k0 + i) * step);
    a.labels.push_back(tick_label(a.ticks.back(), step, label_magnitude));
  }
  return a;
}

int widest(const std::vector<std::string>& labels, int scale) {
  int w = 0;
  for (const auto& l : labels)
    w = std::max(w, text_width(l, scale));
  return w;
}

// Clips segment ab to the box (Liang-Barsky); false when nothing of it is inside.
bool clip_segment(Point& a, Point& b, double x0, double y0, double x1, double y1) {
  const double dx = b.x - a.x, dy = b.y - a.y;
  double t0 = 0, t1 = 1;
  auto edge = [&](double p, double q) {  // keeps the part where p * t <= q
    if (p == 0) return q >= 0;
    const double r = q / p;
    if (p < 0) {
      if (r > t1) return false;
      t0 = std::max(t0, r);
    } else {
      if (r < t0) return false;
      t1 = std::min(t1, r);
    }
    return true;
  };
  if (!edge(-dx, a.x - x0) || !edge(dx, x1 - a.x) || !edge(-dy, a.y - y0) || !edge(dy, y1 - a.y))
    return false;
  const Point na{a.x + t0 * dx, a.y + t0 * dy}, nb{a.x + t1 * dx, a.y + t1 * dy};
  a = na;
  b = nb;
  return true;
}

// Coverage of the pixels within `clip` by a line of width `width` along ab, merged into `mask` by maximum so
// that joints between segments are not drawn twice.
void cover_segment(std::vector<float>& mask, const Rect& clip, Point a, Point b, double width) {
  const double reach = width / 2 + 0.5;
  if (!clip_segment(a, b, clip.x0 - reach, clip.y0 - reach, clip.x1 + reach, clip.y1 + reach)) return;
  const int ix0 = std::max(clip.x0, static_cast<int>(std::floor(std::min(a.x, b.x) - reach)));
  const int ix1 = std::min(clip.x1, static_cast<int>(std::ceil(std::max(a.x, b.x) + reach)));
  const int iy0 = std::max(clip.y0, static_cast<int>(std::floor(std::min(a.y, b.y) - reach)));
  const int iy1 = std::min(clip.y1, static_cast<int>(std::ceil(std::max(a.y, b.y) + reach)));
  const double dx = b.x - a.x, dy = b.y - a.y, len2 = dx * dx + dy * dy;
  const int stride = clip.x1 - clip.x0 + 1;
  for (int y = iy0; y <= iy1; ++y) {
    for (int x = ix0; x <= ix1; ++x) {
      const double t = len2 > 0 ? std::clamp(((x - a.x) * dx + (y - a.y) * dy) / len2, 0.0, 1.0) : 0.0;
      const double ex = a.x + t * dx - x, ey = a.y + t * dy - y;
      const double cover = std::clamp(reach - std::sqrt(ex * ex + ey * ey), 0.0, 1.0);
      float& m = mask[static_cast<size_t>(y - clip.y0) * stride + (x - clip.x0)];
      m = std::max(m, static_cast<float>(cover));
    }
  }
}

// Draws the polyline through `pts` (pixel coordinates; a non-finite point breaks the line, a point with no
// finite neighbour shows as a dot) in `colour`, inside `clip`.
void draw_polyline(Image& img, const Rect& clip, const std::vector<Point>& pts, uint32_t colour,
                   double width) {
  if (clip.x1 < clip.x0 || clip.y1 < clip.y0) return;
  const int stride = clip.x1 - clip.x0 + 1;
  std::vector<float> mask(static_cast<size_t>(stride) * (clip.y1 - clip.y0 + 1), 0.0f);
  auto finite = [&](size_t i) {
    return i < pts.size() && std::isfinite(pts[i].x) && std::isfinite(pts[i].y);
  };
  for (size_t i = 0; i < pts.size(); ++i) {
    if (!finite(i)) continue;
    if (finite(i + 1)) {
      cover_segment(mask, clip, pts[i], pts[i + 1], width);
    } else if (i == 0 || !finite(i - 1)) {
      cover_segment(mask, clip, pts[i], pts[i], width);
    }
  }
  for (int y = clip.y0; y <= clip.y1; ++y) {
    for (int x = clip.x0; x <= clip.x1; ++x) {
      const float m = mask[static_cast<size_t>(y - clip.y0) * stride + (x - clip.x0)];
      if (m > 0) img.blend(x, y, colour, m);
    }
  }
}

double x_at(const Series& s, size_t i) {
  return s.x.empty() ? static_cast<double>(i) : s.x[i];
}

uint32_t series_colour(const Series& s, size_t index) {
  return s.colour != 0 ? s.colour : palette_colour(index);
}

// The number of pixels in `r` that something other than the background or the grid was drawn on.
int ink_in(const Image& img, const Rect& r) {
  int n = 0;
  for (int y = std::max(r.y0, 0); y <= std::min(r.y1, img.height - 1); ++y) {
    for (int x = std::max(r.x0, 0); x <= std::min(r.x1, img.width - 1); ++x) {
      const uint32_t c = img.get(x, y);
      n += c != kBackground && c != kGrid;
    }
  }
  return n;
}

// A box listing every series, in the corner of the plot area `area` where it hides the fewest drawn pixels.
void draw_legend(Image& img, const Panel& panel, const Rect& area, double line_width, int s) {
  const int gh = kGlyphH * s, pad = 4 * s, swatch = 12 * s, row_h = gh + 3 * s;
  const int max_name = (area.x1 - area.x0) / 2 - swatch - 3 * pad;
  if (max_name <= 0) return;
  std::vector<std::string> names;
  for (const auto& series : panel.series)
    names.push_back(fit_text(series.name, max_name, s));
  const int n = static_cast<int>(names.size());
  const int w = 3 * pad + swatch + widest(names, s), h = 2 * pad + n * row_h - 3 * s;
  if (w > area.x1 - area.x0 - 2 * pad || h > area.y1 - area.y0 - 2 * pad) return;
  const int left = area.x0 + pad, right = area.x1 - pad - w + 1, top = area.y0 + pad,
            bottom = area.y1 - pad - h + 1;
  const std::array<Rect, 4> corners = {
      Rect{right, top, right + w - 1, top + h - 1}, Rect{left, top, left + w - 1, top + h - 1},
      Rect{right, bottom, right + w - 1, bottom + h - 1}, Rect{left, bottom, left + w - 1, bottom + h - 1}};
  Rect box = corners[0];
  int least = ink_in(img, box);
  for (const Rect& r : corners) {
    const int ink = ink_in(img, r);
    if (ink < least) {
      least = ink;
      box = r;
    }
  }
  fill_rect(img, box.x0, box.y0, w, h, kBackground);
  outline_rect(img, box, kLegendBorder);
  const int thickness = std::max(2, static_cast<int>(std::lround(line_width)));
  for (int i = 0; i < n; ++i) {
    const int y = box.y0 + pad + i * row_h;
    fill_rect(img, box.x0 + pad, y + ((kGlyphH - 1) * s - thickness) / 2, swatch, thickness,
              series_colour(panel.series[i], static_cast<size_t>(i)));
    draw_text(img, box.x0 + 2 * pad + swatch, y, names[i], kText, s);
  }
}

// Draws one panel into the rectangle at (px, py) of size pw x ph.
void draw_panel(Image& img, const Panel& panel, int px, int py, int pw, int ph, double line_width, int s) {
  const int gh = kGlyphH * s, pad = 4 * s, tick = 3 * s;
  const double inf = std::numeric_limits<double>::infinity();
  const double nan = std::numeric_limits<double>::quiet_NaN();
  double xlo = inf, xhi = -inf, ylo = inf, yhi = -inf;
  for (const auto& series : panel.series) {
    for (size_t i = 0; i < series.y.size(); ++i) {
      const double x = x_at(series, i), y = series.y[i];
      if (!std::isfinite(x) || !std::isfinite(y)) continue;
      xlo = std::min(xlo, x);
      xhi = std::max(xhi, x);
      ylo = std::min(ylo, y);
      yhi = std::max(yhi, y);
    }
  }
  const bool has_data = xlo <= xhi;

  if (!panel.title.empty()) {
    const std::string title = fit_text(panel.title, pw - 2 * pad, s);
    draw_text(img, px + (pw - text_width(title, s)) / 2, py + pad, title, kText, s);
  }
  const int top = py + pad + (panel.title.empty() ? pad : gh + 2 * pad);
  const int bottom = py + ph - 1 - pad - (panel.x_label.empty() ? 0 : gh + pad) - gh - tick - pad / 2;
  // Lines stay clear of the frame by this much, so that extreme values are not drawn over it.
  const int margin = static_cast<int>(std::ceil(line_width / 2)) + 2;
  const int data_h = bottom - top - 2 * margin;
  const Axis ya = make_axis(ylo, yhi, std::clamp(data_h / (4 * gh), 2, 6), true);
  const int left = px + pad + (panel.y_label.empty() ? 0 : gh + pad) + widest(ya.labels, s) + pad / 2 + tick;
  const int right = px + pw - 1 - 3 * pad;
  const int data_w = right - left - 2 * margin;
  if (data_w < 8 || data_h < 8) return;  // too small for axes

  Axis xa;
  for (int target = 8; target >= 2; --target) {
    xa = make_axis(xlo, xhi, target, false);
    const double spacing = xa.step / (xa.hi - xa.lo) * data_w;
    if (spacing >= widest(xa.labels, s) + gh) break;
  }
  auto to_px = [&](double x, double y) {
    return Point{left + margin + (x - xa.lo) / (xa.hi - xa.lo) * data_w,
                 bottom - margin - (y - ya.lo) / (ya.hi - ya.lo) * data_h};
  };

  const Rect inside{left + 1, top + 1, right - 1, bottom - 1};
  for (double t : xa.ticks)
    fill_rect(img, static_cast<int>(std::lround(to_px(t, 0).x)), inside.y0, 1, data_h + 2 * margin - 1,
              kGrid);
  for (double t : ya.ticks)
    fill_rect(img, inside.x0, static_cast<int>(std::lround(to_px(0, t).y)), data_w + 2 * margin - 1, 1,
              kGrid);

  for (size_t k = 0; k < panel.series.size(); ++k) {
    const Series& series = panel.series[k];
    std::vector<Point> pts(series.y.size());
    for (size_t i = 0; i < pts.size(); ++i) {
      const double x = x_at(series, i), y = series.y[i];
      pts[i] = std::isfinite(x) && std::isfinite(y) ? to_px(x, y) : Point{nan, nan};
    }
    draw_polyline(img, inside, pts, series_colour(series, k), line_width);
  }
  if (!has_data) {
    const int w = text_width("no data", s);
    draw_text(img, (left + right - w) / 2, (top + bottom - gh) / 2, "no data", kMuted, s);
  }
  outline_rect(img, Rect{left, top, right, bottom}, kFrame);

  for (size_t i = 0; i < xa.ticks.size(); ++i) {
    const int x = static_cast<int>(std::lround(to_px(xa.ticks[i], 0).x));
    fill_rect(img, x, bottom + 1, 1, tick, kFrame);
    const int w = text_width(xa.labels[i], s);
    const int lx = std::max(px, std::min(x - w / 2, px + pw - w));
    draw_text(img, lx, bottom + tick + pad / 2, xa.labels[i], kText, s);
  }
  for (size_t i = 0; i < ya.ticks.size(); ++i) {
    const int y = static_cast<int>(std::lround(to_px(0, ya.ticks[i]).y));
    fill_rect(img, left - tick, y, tick, 1, kFrame);
    const int w = text_width(ya.labels[i], s);
    draw_text(img, left - tick - pad / 2 - w, y - (kGlyphH - 1) * s / 2, ya.labels[i], kText, s);
  }
  if (!panel.x_label.empty()) {
    const std::string label = fit_text(panel.x_label, right - left, s);
    draw_text(img, (left + right - text_width(label, s)) / 2, py + ph - pad - gh, label, kText, s);
  }
  if (!panel.y_label.empty()) {
    const std::string label = fit_text(panel.y_label, bottom - top, s);
    draw_text_up(img, px + pad, (top + bottom + text_width(label, s)) / 2, label, kText, s);
  }
  if (panel.series.size() >= 2) draw_legend(img, panel, inside, line_width, s);
}

}  // namespace

uint32_t palette_colour(size_t index) {
  return kPalette[index % kPalette.size()];
}

Image render_plot(const std::vector<Panel>& panels, PlotOptions opts) {
  AHA_CHECK(!panels.empty(), "a plot needs at least one panel");
  AHA_CHECK(opts.width >= 0 && opts.width <= kMaxSide, "plot width must be 0 (automatic) to ", kMaxSide,
            ", got ", opts.width);
  AHA_CHECK(opts.height >= 0 && opts.height <= kMaxSide, "plot height must be 0 (automatic) to ", kMaxSide,
            ", got ", opts.height);
  AHA_CHECK(opts.columns >= 0, "plot columns must be 0 (automatic) or positive, got ", opts.columns);
  AHA_CHECK(opts.line_width > 0 && opts.line_width <= 64, "plot line_width must be in (0, 64], got ",
            opts.line_width);
  AHA_CHECK(opts.font_scale >= 0 && opts.font_scale <= 16,
            "plot font_scale must be 0 (automatic) to 16, got ", opts.font_scale);
  for (const auto& panel : panels) {
    for (const auto& series : panel.series) {
      AHA_CHECK(series.x.empty() || series.x.size() == series.y.size(), "series '", series.name,
                "' of panel '", panel.title, "' has ", series.x.size(), " x values but ", series.y.size(),
                " y values");
    }
  }
  const int n = static_cast<int>(panels.size());
  const int cols = opts.columns > 0 ? opts.columns : n <= 3 ? n : static_cast<int>(std::ceil(std::sqrt(n)));
  const int rows = (n + cols - 1) / cols;
  const int width =
      opts.width > 0 ? opts.width : static_cast<int>(std::min<int64_t>(int64_t{500} * cols, kMaxSide));
  const int height =
      opts.height > 0 ? opts.height : static_cast<int>(std::min<int64_t>(int64_t{450} * rows, kMaxSide));
  const int scale = opts.font_scale > 0                           ? opts.font_scale
                    : width / cols >= 360 && height / rows >= 300 ? 2
                                                                  : 1;
  Image img(width, height, kBackground);
  for (int i = 0; i < n; ++i) {
    const int c = i % cols, r = i / cols;
    const int x0 = c * width / cols, x1 = (c + 1) * width / cols;
    const int y0 = r * height / rows, y1 = (r + 1) * height / rows;
    draw_panel(img, panels[i], x0, y0, x1 - x0, y1 - y0, opts.line_width, scale);
  }
  return img;
}

void write_plot_png(const std::string& path, const std::vector<Panel>& panels, PlotOptions opts) {
  write_png(path, render_plot(panels, opts));
}

}  // namespace aha::io
