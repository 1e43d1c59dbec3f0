#include "launcher/history_metrics.h"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "base/text.h"

namespace trainrun {

namespace {

std::string Latest(const MetricStats& s) {
  return s.latest_text ? EscapeControl(*s.latest_text) : FormatMetricValue(s.latest);
}

std::string Row(const std::string& metric, size_t metric_width, const std::string& rank,
                const MetricStats& s) {
  const bool numbers = s.values > 0 && !std::isnan(s.min);
  return fmt::format("{:<{}}  {:>5}  {:>12}  {:>8}  {:>12}  {:>12}  {:>6}\n", metric, metric_width,
                     rank, Latest(s), s.latest_step, numbers ? FormatMetricValue(s.min) : "-",
                     numbers ? FormatMetricValue(s.max) : "-", s.steps);
}

}  // namespace

std::string FinalMetricLines(const RunMetrics& metrics) {
  std::string text;
  for (const auto& [name, ranks] : metrics.metrics) {
    std::optional<MetricStats> s = metrics.Overall(name);
    if (!s) continue;
    text += fmt::format("metric:      {} {} at step {}", EscapeControl(name), Latest(*s),
                        s->latest_step);
    if (s->values > 1 && !std::isnan(s->min)) {
      text +=
          fmt::format(" (min {}, max {})", FormatMetricValue(s->min), FormatMetricValue(s->max));
    }
    text += "\n";
  }
  return text;
}

Status CheckPlotPath(const std::string& path) {
  if (path.ends_with(".svg")) return Status::Ok();
  if (path.ends_with(".png")) {
    return InvalidArgumentError(
        fmt::format("--plot {}: trainrun draws SVG only; draw an .svg and convert it, for "
                    "example `rsvg-convert -o {} plot.svg`",
                    path, path));
  }
  return InvalidArgumentError(fmt::format("--plot {}: the file name must end in .svg", path));
}

std::string MetricsTable(const RunMetrics& metrics) {
  size_t width = 6;
  for (const auto& [name, ranks] : metrics.metrics) {
    width = std::max(width, EscapeControl(name).size());
  }
  std::string text = fmt::format("{:<{}}  {:>5}  {:>12}  {:>8}  {:>12}  {:>12}  {:>6}\n", "METRIC",
                                 width, "RANK", "LATEST", "AT STEP", "MIN", "MAX", "STEPS");
  for (const auto& [name, ranks] : metrics.metrics) {
    text += Row(EscapeControl(name), width, "all", *metrics.Overall(name));
    if (ranks.size() < 2) continue;
    for (const auto& [rank, series] : ranks) {
      text += Row("", width, std::to_string(rank), *metrics.Stats(name, rank));
    }
  }
  for (const auto& [tag, value] : metrics.tags) {
    text += fmt::format("tag {}: {}\n", EscapeControl(tag), EscapeControl(value));
  }
  return text;
}

}  // namespace trainrun
