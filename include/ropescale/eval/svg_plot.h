// Small self-contained SVG charts for the evaluation report: line plots (linear
// or log axes) and heatmaps. Output is plain SVG text, no scripts, no fonts to
// fetch. Every data mark carries class="mark" so a renderer check can find it.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace ropescale {

std::string html_escape(std::string_view text);

struct PlotSeries {
  std::string name;
  std::string color = "#333";
  std::string dash;                              // SVG stroke-dasharray, "" = solid
  std::vector<std::pair<double, double>> points; // non-finite y values break the line
};

struct LinePlot {
  std::string title, x_label, y_label;
  bool log_x = false, log_y = false;
  std::vector<double> x_ticks;                          // explicit ticks; empty = automatic
  std::vector<std::pair<double, std::string>> x_marks;  // labelled vertical lines (e.g. the trained length)
  std::vector<PlotSeries> series;
  int width = 760, height = 380;
};
std::string render_svg(const LinePlot& plot);

struct Heatmap {
  std::string title, x_label, y_label;
  std::vector<std::string> columns, rows;
  std::vector<std::vector<double>> values;      // [row][column], 0 … 1 (NaN = no data)
  std::vector<std::vector<std::string>> text;   // optional cell labels, same shape
  int cell_width = 46, cell_height = 24;
};
std::string render_svg(const Heatmap& map);

// "Nice" axis ticks covering [lo, hi]: about `count` values at steps of 1, 2 or 5 × 10^k.
std::vector<double> nice_ticks(double lo, double hi, int count);

}  // namespace ropescale
