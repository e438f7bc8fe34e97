#include "ropescale/eval/svg_plot.h"

#include <cmath>
#include <regex>

#include <gtest/gtest.h>

#include "test_support.h"

namespace ropescale {
namespace {

using test::count_occurrences;
int count(const std::string& s, const std::string& what) { return count_occurrences(s, what); }

TEST(SvgPlot, NiceTicks) {
  EXPECT_EQ(nice_ticks(0, 10, 5), (std::vector<double>{0, 2, 4, 6, 8, 10}));
  EXPECT_EQ(nice_ticks(1.3, 1.9, 3), (std::vector<double>{1.4, 1.6, 1.8}));
  EXPECT_EQ(nice_ticks(-3, 3, 6), (std::vector<double>{-3, -2, -1, 0, 1, 2, 3}));
  EXPECT_EQ(nice_ticks(5, 5, 4), (std::vector<double>{5}));
  EXPECT_TRUE(nice_ticks(0, NAN, 4).empty());
}

TEST(SvgPlot, EscapesText) {
  EXPECT_EQ(html_escape("<a href=\"x\">&'</a>"), "&lt;a href=&quot;x&quot;&gt;&amp;&#39;&lt;/a&gt;");
}

TEST(SvgPlot, LinePlotDrawsEverySeriesAndBreaksAtMissingValues) {
  LinePlot p;
  p.title = "NLL <by> position";
  p.log_y = true;
  p.series.push_back({"yarn:4", "#d00", "", {{1, 2}, {2, 3}, {3, NAN}, {4, 5}, {5, 6}}});
  p.series.push_back({"none & co", "#000", "3 2", {{1, 1}, {2, -1}, {3, 2}}});  // −1 cannot be drawn on a log axis
  p.x_marks = {{2.5, "trained"}};
  const std::string svg = render_svg(p);
  EXPECT_EQ(svg.rfind("<svg", 0), 0u);
  EXPECT_NE(svg.find("NLL &lt;by&gt; position"), std::string::npos);
  EXPECT_NE(svg.find("none &amp; co"), std::string::npos);
  EXPECT_EQ(count(svg, "<path class=\"mark\""), 2);
  const std::regex path("d=\"([^\"]*)\"");
  std::vector<std::string> ds;
  for (std::sregex_iterator it(svg.begin(), svg.end(), path), end; it != end; ++it) ds.push_back((*it)[1]);
  ASSERT_EQ(ds.size(), 2u);
  EXPECT_EQ(count(ds[0], "M"), 2);  // broken at the NaN
  EXPECT_EQ(count(ds[0], "L"), 2);
  EXPECT_EQ(count(ds[1], "M"), 2);  // broken at the non-positive value
  EXPECT_EQ(count(svg, "<circle class=\"mark\""), 4 + 2);
  EXPECT_EQ(count(svg, "stroke-dasharray=\"3 2\""), 2);  // the line and its legend swatch
  EXPECT_NE(svg.find(">trained<"), std::string::npos);
}

TEST(SvgPlot, CoordinatesFollowTheData) {
  LinePlot p;
  p.width = 400, p.height = 300;
  p.series.push_back({"up", "#000", "", {{0, 0}, {10, 10}}});
  const std::string svg = render_svg(p);
  std::smatch m;
  ASSERT_TRUE(std::regex_search(svg, m, std::regex("d=\"M([0-9.]+) ([0-9.]+) L([0-9.]+) ([0-9.]+)")));
  EXPECT_LT(std::stod(m[1]), std::stod(m[3]));  // x grows to the right
  EXPECT_GT(std::stod(m[2]), std::stod(m[4]));  // y grows upwards (smaller SVG y)
}

TEST(SvgPlot, HeatmapCells) {
  Heatmap h;
  h.title = "yarn:4";
  h.columns = {"512", "1024", "2048"};
  h.rows = {"0%", "100%"};
  h.values = {{0, 0.5, 1}, {NAN, 0.2, 0.9}};
  h.text = {{"0/2", "1/2", "2/2"}, {"", "0/2", "2/2"}};
  const std::string svg = render_svg(h);
  EXPECT_EQ(count(svg, "<rect class=\"mark\""), 6);
  EXPECT_EQ(count(svg, "fill=\"#ddd\""), 1);            // the missing cell
  EXPECT_NE(svg.find("fill=\"rgb(27,120,55)\""), std::string::npos);  // 1.0 is the deepest green
  EXPECT_NE(svg.find(">2/2<"), std::string::npos);
}

}  // namespace
}  // namespace ropescale
