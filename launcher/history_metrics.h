// `trainrun history metrics RUN [--json] [--plot out.svg]` and the final values that
// `history show` prints: the metrics the ranks logged (runtime/run/metrics.h).
// The text and checks; the command itself is with the other history commands
// (history_command.h). Internal to the launcher.
#pragma once

#include <string>

#include "base/status.h"
#include "runtime/run/metrics.h"

namespace trainrun {

// "metric:      loss 0.231 at step 4 (min 0.231, max 2.3)" lines, one per metric,
// over all ranks, names escaped; empty when there are none.
std::string FinalMetricLines(const RunMetrics& metrics);

// The table of `history metrics`: per metric a row for all ranks, then one per rank
// when there are several; then the tags. Names and text values escaped.
std::string MetricsTable(const RunMetrics& metrics);

// --plot's file name: ends in .svg. A .png is refused with how to convert an SVG.
Status CheckPlotPath(const std::string& path);

}  // namespace trainrun
