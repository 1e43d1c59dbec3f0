// The plot behind `trainrun history metrics RUN --plot out.svg`: each metric against
// step, one panel per metric stacked top to bottom, one line per rank.
#pragma once

#include <string>

#include "runtime/run/metrics.h"

namespace trainrun {

// clang-format off
// An SVG 1.1 document. Each panel (a <g class="metric" data-metric="NAME">) has a
// title, a frame with tick marks and labels on both axes ("step", the values), a
// legend ("rank N", coloured as its line) and, per rank, one
//   <path class="series" data-rank="N" d="M x,y L x,y ..."/>
// with a point per numeric value in step order (a NaN or an infinity breaks the
// line: a new "M"), plus a dot per point for short series. Metrics with text
// values only get a panel that says so. Names are XML-escaped.
// clang-format on
std::string RenderMetricsSvg(const RunMetrics& metrics, const std::string& title);

}  // namespace trainrun
