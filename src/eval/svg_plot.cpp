#include "ropescale/eval/svg_plot.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include <fmt/core.h>

namespace ropescale {

std::string html_escape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

std::vector<double> nice_ticks(double lo, double hi, int count) {
  if (!(std::isfinite(lo) && std::isfinite(hi)) || count < 1) return {};
  if (hi <= lo) return {lo};
  const double raw = (hi - lo) / count;
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  double step = mag;
  for (double m : {1.0, 2.0, 5.0, 10.0})
    if (m * mag >= raw) {
      step = m * mag;
      break;
    }
  std::vector<double> t;
  for (double k = std::ceil(lo / step - 1e-9); k * step <= hi + step * 1e-9; k += 1)
    t.push_back(k == 0 ? 0.0 : std::stod(fmt::format("{:.12g}", k * step)));  // 7 × 0.2 = 1.4, not 1.4000000000000001
  return t;
}

namespace {

std::string number_label(double v) {
  if (v != 0 && (std::abs(v) >= 1e5 || std::abs(v) < 1e-3)) return fmt::format("{:.0e}", v);
  std::string s = fmt::format("{:.4g}", v);
  return s;
}

struct Axis {
  double lo, hi;
  bool log;
  double px0, px1;
  double map(double v) const {
    const double a = log ? std::log(v) : v, l = log ? std::log(lo) : lo, h = log ? std::log(hi) : hi;
    return px0 + (a - l) / (h - l) * (px1 - px0);
  }
};

// Data range of one coordinate, padded, positive on log axes.
std::pair<double, double> range_of(const std::vector<double>& v, bool log) {
  double lo = std::numeric_limits<double>::infinity(), hi = -lo;
  for (double x : v)
    if (std::isfinite(x) && (!log || x > 0)) lo = std::min(lo, x), hi = std::max(hi, x);
  if (!std::isfinite(lo)) return {log ? 1 : 0, log ? 10 : 1};
  if (lo == hi) return log ? std::pair{lo / 2, hi * 2} : std::pair{lo - 1, hi + 1};
  if (log) return {lo / std::pow(hi / lo, 0.04), hi * std::pow(hi / lo, 0.04)};
  const double pad = (hi - lo) * 0.05;
  return {lo - pad, hi + pad};
}

std::vector<double> log_ticks(double lo, double hi) {
  std::vector<double> t;
  const double decades = std::log10(hi / lo);
  for (int e = int(std::floor(std::log10(lo))); e <= int(std::ceil(std::log10(hi))); ++e)
    for (double m : decades < 1.5 ? std::vector<double>{1, 2, 5} : std::vector<double>{1}) {
      const double v = m * std::pow(10.0, e);
      if (v >= lo && v <= hi) t.push_back(v);
    }
  if (t.size() < 2) t = {lo, std::sqrt(lo * hi), hi};
  return t;
}

}  // namespace

std::string render_svg(const LinePlot& p) {
  const double left = 64, right = 200, top = 34, bottom = 52;
  std::vector<double> xs, ys;
  for (const auto& s : p.series)
    for (const auto& [x, y] : s.points)
      if (std::isfinite(y)) xs.push_back(x), ys.push_back(y);
  for (double t : p.x_ticks) xs.push_back(t);
  for (const auto& [x, label] : p.x_marks) xs.push_back(x);
  auto [xlo, xhi] = range_of(xs, p.log_x);
  auto [ylo, yhi] = range_of(ys, p.log_y);
  const Axis ax{xlo, xhi, p.log_x, left, p.width - right};
  const Axis ay{ylo, yhi, p.log_y, p.height - bottom, top};
  std::string s = fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"plot\" viewBox=\"0 0 {0} {1}\" width=\"{0}\" height=\"{1}\" "
      "role=\"img\" aria-label=\"{2}\">\n<rect width=\"100%\" height=\"100%\" fill=\"#fff\"/>\n"
      "<text x=\"{3}\" y=\"20\" class=\"title\">{2}</text>\n",
      p.width, p.height, html_escape(p.title), left);
  // Grid and ticks.
  const auto xt = !p.x_ticks.empty() ? p.x_ticks : p.log_x ? log_ticks(xlo, xhi) : nice_ticks(xlo, xhi, 6);
  const auto yt = p.log_y ? log_ticks(ylo, yhi) : nice_ticks(ylo, yhi, 6);
  for (double t : xt) {
    if (t < xlo || t > xhi) continue;
    const double x = ax.map(t);
    s += fmt::format("<line x1=\"{0:.1f}\" x2=\"{0:.1f}\" y1=\"{1}\" y2=\"{2}\" class=\"grid\"/>"
                     "<text x=\"{0:.1f}\" y=\"{3}\" class=\"tick\" text-anchor=\"middle\">{4}</text>\n",
                     x, top, p.height - bottom, p.height - bottom + 16, number_label(t));
  }
  for (double t : yt) {
    if (t < ylo || t > yhi) continue;
    const double y = ay.map(t);
    s += fmt::format("<line x1=\"{0}\" x2=\"{1}\" y1=\"{2:.1f}\" y2=\"{2:.1f}\" class=\"grid\"/>"
                     "<text x=\"{3}\" y=\"{4:.1f}\" class=\"tick\" text-anchor=\"end\">{5}</text>\n",
                     left, p.width - right, y, left - 6, y + 4, number_label(t));
  }
  s += fmt::format("<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" class=\"frame\"/>\n", left, top,
                   p.width - right - left, p.height - bottom - top);
  for (const auto& [x, label] : p.x_marks) {
    const double px = ax.map(x);
    s += fmt::format("<line x1=\"{0:.1f}\" x2=\"{0:.1f}\" y1=\"{1}\" y2=\"{2}\" class=\"marker\"/>"
                     "<text x=\"{3:.1f}\" y=\"{4}\" class=\"tick\">{5}</text>\n",
                     px, top, p.height - bottom, px + 4, top + 12, html_escape(label));
  }
  s += fmt::format("<text x=\"{}\" y=\"{}\" class=\"label\" text-anchor=\"middle\">{}</text>\n", (left + p.width - right) / 2,
                   p.height - 12, html_escape(p.x_label));
  s += fmt::format("<text transform=\"translate(16 {}) rotate(-90)\" class=\"label\" text-anchor=\"middle\">{}</text>\n",
                   (top + p.height - bottom) / 2, html_escape(p.y_label));
  // Series: a path broken at missing values, a dot per point, a legend entry.
  for (size_t i = 0; i < p.series.size(); ++i) {
    const auto& ser = p.series[i];
    std::string d;
    bool pen = false;
    int drawn = 0;
    for (const auto& [x, y] : ser.points) {
      if (!std::isfinite(y) || (p.log_y && y <= 0) || (p.log_x && x <= 0)) {
        pen = false;
        continue;
      }
      d += fmt::format("{}{:.1f} {:.1f} ", pen ? "L" : "M", ax.map(x), ay.map(std::clamp(y, ylo, yhi)));
      pen = true;
      ++drawn;
    }
    const std::string dash = ser.dash.empty() ? "" : " stroke-dasharray=\"" + ser.dash + "\"";
    s += fmt::format("<g class=\"series\"><title>{}</title>", html_escape(ser.name));
    if (!d.empty())
      s += fmt::format("<path class=\"mark\" d=\"{}\" fill=\"none\" stroke=\"{}\" stroke-width=\"1.8\"{}/>", d, ser.color, dash);
    if (drawn <= 24)
      for (const auto& [x, y] : ser.points)
        if (std::isfinite(y) && (!p.log_y || y > 0))
          s += fmt::format("<circle class=\"mark\" cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"2.6\" fill=\"{}\"/>", ax.map(x),
                           ay.map(std::clamp(y, ylo, yhi)), ser.color);
    s += "</g>\n";
    const double ly = top + 6 + 16.0 * double(i);
    s += fmt::format("<line x1=\"{0}\" x2=\"{1}\" y1=\"{2:.1f}\" y2=\"{2:.1f}\" stroke=\"{3}\" stroke-width=\"2.2\"{4}/>"
                     "<text x=\"{5}\" y=\"{6:.1f}\" class=\"legend\">{7}</text>\n",
                     p.width - right + 12, p.width - right + 38, ly, ser.color, dash, p.width - right + 44, ly + 4,
                     html_escape(ser.name));
  }
  s += "</svg>\n";
  return s;
}

std::string render_svg(const Heatmap& h) {
  const int left = 70, top = 40, bottom = 44;
  const int W = std::max(left + h.cell_width * int(h.columns.size()) + 10, left + 150);  // room for the axis label
  const int H = top + h.cell_height * int(h.rows.size()) + bottom;
  std::string s = fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"plot heatmap\" viewBox=\"0 0 {0} {1}\" width=\"{0}\" height=\"{1}\" "
      "role=\"img\" aria-label=\"{2}\">\n<rect width=\"100%\" height=\"100%\" fill=\"#fff\"/>\n"
      "<text x=\"8\" y=\"18\" class=\"title\">{2}</text>\n",
      W, H, html_escape(h.title));
  for (size_t r = 0; r < h.rows.size(); ++r) {
    const int y = top + int(r) * h.cell_height;
    s += fmt::format("<text x=\"{}\" y=\"{}\" class=\"tick\" text-anchor=\"end\">{}</text>", left - 6,
                     y + h.cell_height / 2 + 4, html_escape(h.rows[r]));
    for (size_t c = 0; c < h.columns.size(); ++c) {
      const double v = r < h.values.size() && c < h.values[r].size() ? h.values[r][c] : std::nan("");
      // White (0) to deep green (1); grey when there is no data.
      std::string fill = "#ddd";
      if (std::isfinite(v)) {
        const double a = std::clamp(v, 0.0, 1.0);
        fill = fmt::format("rgb({},{},{})", int(247 - a * (247 - 27)), int(252 - a * (252 - 120)), int(245 - a * (245 - 55)));
      }
      const int x = left + int(c) * h.cell_width;
      s += fmt::format("<rect class=\"mark\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"{}\" stroke=\"#fff\">"
                       "<title>{} / {}: {:.3f}</title></rect>",
                       x, y, h.cell_width, h.cell_height, fill, html_escape(h.rows[r]), html_escape(h.columns[c]), v);
      if (r < h.text.size() && c < h.text[r].size() && !h.text[r][c].empty())
        s += fmt::format("<text x=\"{}\" y=\"{}\" class=\"cell\" text-anchor=\"middle\" fill=\"{}\">{}</text>",
                         x + h.cell_width / 2, y + h.cell_height / 2 + 4, std::isfinite(v) && v > 0.6 ? "#fff" : "#222",
                         html_escape(h.text[r][c]));
    }
    s += "\n";
  }
  for (size_t c = 0; c < h.columns.size(); ++c)
    s += fmt::format("<text x=\"{}\" y=\"{}\" class=\"tick\" text-anchor=\"middle\">{}</text>",
                     left + int(c) * h.cell_width + h.cell_width / 2, top + h.cell_height * int(h.rows.size()) + 14,
                     html_escape(h.columns[c]));
  s += fmt::format("\n<text x=\"{}\" y=\"{}\" class=\"label\" text-anchor=\"middle\">{}</text>", left + h.cell_width * int(h.columns.size()) / 2,
                   H - 8, html_escape(h.x_label));
  s += fmt::format("<text transform=\"translate(14 {}) rotate(-90)\" class=\"label\" text-anchor=\"middle\">{}</text>\n",
                   top + h.cell_height * int(h.rows.size()) / 2, html_escape(h.y_label));
  s += "</svg>\n";
  return s;
}

}  // namespace ropescale
