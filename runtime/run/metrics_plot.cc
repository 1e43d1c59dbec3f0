#include "runtime/run/metrics_plot.h"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "runtime/store/xml.h"

namespace trainrun {

namespace {

constexpr int kWidth = 860;
constexpr int kPanelHeight = 320;
constexpr int kTitleHeight = 36;
constexpr int kLeft = 80;         // room for the value labels
constexpr int kRight = 140;       // room for the legend
constexpr int kTop = 34;          // the panel's title
constexpr int kBottom = 46;       // the step labels and axis name
constexpr int kTicks = 5;         // about this many per axis
constexpr size_t kDotsUpTo = 60;  // points in a series that still get a dot each
constexpr int kLegendRows = 12;

// Matplotlib's tab10: told apart by most people, colour-blind ones included.
constexpr const char* kColours[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                    "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};

// A 1, 2 or 5 times a power of ten that cuts [lo, hi] into about kTicks pieces.
double TickStep(double lo, double hi) {
  double raw = (hi - lo) / kTicks;
  double power = std::pow(10.0, std::floor(std::log10(raw)));
  for (double m : {1.0, 2.0, 5.0, 10.0}) {
    if (raw <= m * power) return m * power;
  }
  return 10 * power;
}

struct Range {
  double lo = 0, hi = 0;
};

// A range that is never empty, so a constant metric is a flat line mid-panel.
Range Padded(double lo, double hi, bool integral) {
  if (hi > lo) {
    double pad = integral ? 0 : (hi - lo) * 0.05;
    return {lo - pad, hi + pad};
  }
  double pad = integral ? 1 : (lo == 0 ? 1 : std::abs(lo) * 0.1);
  return {lo - pad, hi + pad};
}

std::string Panel(const std::string& name, const std::map<int, MetricSeries>& ranks, int top) {
  std::string svg = fmt::format("<g class=\"metric\" data-metric=\"{}\">\n", XmlEscape(name));
  const int x0 = kLeft, x1 = kWidth - kRight;
  const int y0 = top + kTop, y1 = top + kPanelHeight - kBottom;
  svg += fmt::format("<text x=\"{}\" y=\"{}\" font-size=\"16\" font-weight=\"bold\">{}</text>\n",
                     x0, top + 22, XmlEscape(name));

  bool any = false;
  double step_lo = 0, step_hi = 0, lo = 0, hi = 0;
  for (const auto& [rank, series] : ranks) {
    for (const MetricPoint& p : series.points) {
      if (!std::isfinite(p.value)) continue;
      const double step = static_cast<double>(p.step);
      if (!any) {
        step_lo = step_hi = step;
        lo = hi = p.value;
        any = true;
      }
      step_lo = std::min(step_lo, step);
      step_hi = std::max(step_hi, step);
      lo = std::min(lo, p.value);
      hi = std::max(hi, p.value);
    }
  }
  svg += fmt::format(
      "<rect class=\"frame\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"none\" "
      "stroke=\"#333\"/>\n",
      x0, y0, x1 - x0, y1 - y0);
  if (!any) {
    svg += fmt::format(
        "<text x=\"{}\" y=\"{}\" font-size=\"13\" text-anchor=\"middle\">no numeric "
        "values</text>\n</g>\n",
        (x0 + x1) / 2, (y0 + y1) / 2);
    return svg;
  }
  const Range xs = Padded(step_lo, step_hi, true);
  const Range ys = Padded(lo, hi, false);
  const auto X = [&](double step) { return x0 + (step - xs.lo) / (xs.hi - xs.lo) * (x1 - x0); };
  const auto Y = [&](double v) { return y1 - (v - ys.lo) / (ys.hi - ys.lo) * (y1 - y0); };

  // Axes: ticks with labels and a faint grid line each.
  svg += "<g class=\"axes\" font-size=\"11\" fill=\"#333\">\n";
  const double xstep = std::max(1.0, TickStep(xs.lo, xs.hi));
  for (double t = std::ceil(xs.lo / xstep) * xstep; t <= xs.hi + 1e-9; t += xstep) {
    const double x = X(t);
    svg += fmt::format(
        "<line x1=\"{:.1f}\" y1=\"{}\" x2=\"{:.1f}\" y2=\"{}\" stroke=\"#ddd\"/>"
        "<line x1=\"{:.1f}\" y1=\"{}\" x2=\"{:.1f}\" y2=\"{}\" stroke=\"#333\"/>"
        "<text x=\"{:.1f}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n",
        x, y0, x, y1, x, y1, x, y1 + 5, x, y1 + 18, fmt::format("{:g}", t));
  }
  const double ystep = TickStep(ys.lo, ys.hi);
  for (double t = std::ceil(ys.lo / ystep) * ystep; t <= ys.hi + ystep * 1e-9; t += ystep) {
    const double y = Y(t);
    const double shown = std::abs(t) < ystep * 1e-9 ? 0.0 : t;  // no "-0" or "1e-17"
    svg += fmt::format(
        "<line x1=\"{}\" y1=\"{:.1f}\" x2=\"{}\" y2=\"{:.1f}\" stroke=\"#ddd\"/>"
        "<line x1=\"{}\" y1=\"{:.1f}\" x2=\"{}\" y2=\"{:.1f}\" stroke=\"#333\"/>"
        "<text x=\"{}\" y=\"{:.1f}\" text-anchor=\"end\">{}</text>\n",
        x0, y, x1, y, x0 - 5, y, x0, y, x0 - 8, y + 4, fmt::format("{:.4g}", shown));
  }
  svg += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">step</text>\n", (x0 + x1) / 2,
                     y1 + 36);
  svg += "</g>\n";

  // One line per rank, in step order.
  int index = 0;
  for (const auto& [rank, series] : ranks) {
    const char* colour = kColours[index % std::size(kColours)];
    std::vector<MetricPoint> points = series.points;
    std::stable_sort(points.begin(), points.end(),
                     [](const MetricPoint& a, const MetricPoint& b) { return a.step < b.step; });
    std::string d, dots;
    bool pen_down = false;
    for (const MetricPoint& p : points) {
      if (!std::isfinite(p.value)) {
        pen_down = false;
        continue;
      }
      const double x = X(static_cast<double>(p.step)), y = Y(p.value);
      d += fmt::format("{}{} {:.2f},{:.2f}", d.empty() ? "" : " ", pen_down ? 'L' : 'M', x, y);
      pen_down = true;
      if (points.size() <= kDotsUpTo) {
        dots += fmt::format("<circle cx=\"{:.2f}\" cy=\"{:.2f}\" r=\"2.5\" fill=\"{}\"/>", x, y,
                            colour);
      }
    }
    svg += fmt::format(
        "<path class=\"series\" data-rank=\"{}\" fill=\"none\" stroke=\"{}\" "
        "stroke-width=\"1.8\" d=\"{}\"/>\n",
        rank, colour, d);
    if (!dots.empty()) svg += dots + "\n";
    ++index;
  }

  // The legend, right of the frame.
  svg += "<g class=\"legend\" font-size=\"12\">\n";
  index = 0;
  for (const auto& [rank, series] : ranks) {
    const int y = y0 + 14 + index * 18;
    if (index == kLegendRows) {
      svg += fmt::format("<text x=\"{}\" y=\"{}\">+{} more</text>\n", x1 + 12, y + 4,
                         ranks.size() - kLegendRows);
      break;
    }
    svg += fmt::format(
        "<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"{}\" stroke-width=\"3\"/>"
        "<text x=\"{}\" y=\"{}\">rank {}</text>\n",
        x1 + 12, y, x1 + 34, y, kColours[index % std::size(kColours)], x1 + 40, y + 4, rank);
    ++index;
  }
  svg += "</g>\n</g>\n";
  return svg;
}

}  // namespace

std::string RenderMetricsSvg(const RunMetrics& metrics, const std::string& title) {
  const int height =
      kTitleHeight + static_cast<int>(std::max<size_t>(metrics.metrics.size(), 1)) * kPanelHeight;
  std::string svg = fmt::format(
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
      "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" width=\"{0}\" height=\"{1}\" "
      "viewBox=\"0 0 {0} {1}\" font-family=\"sans-serif\">\n"
      "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
      "<text x=\"{2}\" y=\"24\" font-size=\"18\">{3}</text>\n",
      kWidth, height, kLeft, XmlEscape(title));
  int top = kTitleHeight;
  for (const auto& [name, ranks] : metrics.metrics) {
    svg += Panel(name, ranks, top);
    top += kPanelHeight;
  }
  if (metrics.metrics.empty()) {
    svg += fmt::format("<text x=\"{}\" y=\"{}\" font-size=\"14\">no metrics</text>\n", kLeft,
                       kTitleHeight + 40);
  }
  svg += "</svg>\n";
  return svg;
}

}  // namespace trainrun
