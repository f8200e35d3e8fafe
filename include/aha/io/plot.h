// Line plots as PNG files, with no plotting library: the trainer draws reward, accuracy and completion length
// over steps into `plot.png` of its run directory.
//
// Panels sit in a grid, each with a frame, axes whose ticks fall on 1, 2 or 5 times a power of ten, tick
// labels, a title, axis labels and, when it holds two or more series, a legend. Lines are anti-aliased. Text
// uses an embedded 5x7 bitmap font with descenders (printable ASCII; anything else shows as '?'). What must
// hold for any input: a point with a NaN or infinite coordinate is skipped and leaves a gap in its line; an
// empty panel, a constant series or a single point draws without dividing by zero.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "aha/io/png.h"

namespace aha::io {

struct Series {
  std::string name;          // shown in the legend
  std::vector<double> x, y;  // [n] each; an empty x means 0, 1, ..., n-1
  uint32_t colour = 0;       // 0xRRGGBB; 0 takes palette_colour(index of the series in its panel)
};

struct Panel {
  std::string title, x_label, y_label;  // each may be empty
  std::vector<Series> series;
};

struct PlotOptions {
  int width = 0;            // image width in pixels; 0 = 500 per panel column
  int height = 0;           // image height in pixels; 0 = 450 per panel row
  int columns = 0;          // panels per row; 0 = one row for up to 3 panels, else ceil(sqrt(panels))
  double line_width = 2.0;  // width of the series' lines in pixels
  int font_scale = 0;       // pixels per font dot; 0 = 2 when panels are at least 360x300 pixels, else 1
};

// The automatic series colours (matplotlib's "tab10"), repeating after ten.
uint32_t palette_colour(size_t index);

// Draws the panels into an image. Throws aha::Error when there are no panels, a series' x and y differ in
// length (x non-empty), or an option is out of range.
Image render_plot(const std::vector<Panel>& panels, PlotOptions opts = {});

// Writes render_plot(panels, opts) as a PNG file, atomically.
void write_plot_png(const std::string& path, const std::vector<Panel>& panels, PlotOptions opts = {});

}  // namespace aha::io
