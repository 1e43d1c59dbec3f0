// The metrics the ranks log (python/trainrun, the azureml stand-in), as run history
// keeps them, and what `trainrun history metrics` makes of them.
//
// Each rank appends JSON lines to <run>/metrics/rank_<rank>.jsonl on its node
// (TRAINRUN_METRICS_DIR); trainrun uploads the folder with the logs, live and at
// Finalizing, to <experiment>/<runId>/metrics/rank_<rank>.jsonl in history.
//
// clang-format off
//   {"name": "loss", "value": 0.25, "step": 3, "time": 1700000000.123}   a value
//   {"name": "note", "value": "warm-up done", "step": 0, ...}             a text value
//   {"name": "loss", "value": "NaN", ...}        "NaN", "Infinity", "-Infinity"
//   {"tag": "optimizer", "value": "sgd", ...}                              a tag
// clang-format on
#pragma once

#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/status.h"
#include "runtime/run/history.h"
#include "runtime/store/store.h"

namespace trainrun {

constexpr const char* kMetricsDir = "metrics";

// "rank_3.jsonl"
std::string MetricsFileName(int rank);
// The rank of a metrics file name; nullopt for any other name.
std::optional<int> RankOfMetricsFile(std::string_view name);

struct MetricPoint {
  int64_t step = 0;
  double value = 0;
};

// One metric of one rank, in the order the rank logged it.
struct MetricSeries {
  std::vector<MetricPoint> points;       // numeric values
  std::optional<std::string> last_text;  // the latest value when it was text
  int64_t last_text_step = 0;
};

// What a summary says of one metric, for one rank or for all of them.
struct MetricStats {
  size_t values = 0;  // numeric values logged
  size_t steps = 0;   // distinct steps
  int64_t latest_step = 0;
  double latest = 0;  // the value at the highest step (the last logged of it)
  // Over the values that are numbers (not NaN); NaN while there is none.
  double min = std::numeric_limits<double>::quiet_NaN();
  double max = std::numeric_limits<double>::quiet_NaN();
  std::optional<std::string> latest_text;  // when the latest value was text
};

struct RunMetrics {
  // metric name -> rank -> series; names and ranks in order.
  std::map<std::string, std::map<int, MetricSeries>> metrics;
  std::map<std::string, std::string> tags;  // the last value of each
  // Lines that were not a metric or a tag ("rank_0.jsonl line 7: ..."). An
  // unfinished last line (a rank killed mid-write, or read while being written) is
  // not one of them: it is skipped silently.
  std::vector<std::string> problems;

  bool empty() const { return metrics.empty() && tags.empty(); }

  // Adds the lines of one rank's file; `file` names it in problems.
  void AddLines(int rank, std::string_view text, const std::string& file);

  // One rank's stats of `name`; nullopt when it logged none.
  std::optional<MetricStats> Stats(const std::string& name, int rank) const;
  // All ranks together: min and max over all, steps counted once whatever the
  // rank, latest = the value at the highest step (of the lowest rank that has it).
  std::optional<MetricStats> Overall(const std::string& name) const;

  // {"metrics": {NAME: {"overall": STATS, "ranks": {"0": STATS...}}}, "tags": {...}}
  nlohmann::json ToJson() const;
};

// Reads every rank's metrics file of the run from history. A run with no metrics
// folder gives empty metrics, not an error. Fails when the store cannot be listed
// or a file cannot be read.
Result<RunMetrics> ReadRunMetrics(Store* store, const RunKey& key);

// A value as the summaries print it: 6 significant digits ("0.251234", "1.5e-07").
std::string FormatMetricValue(double value);

}  // namespace trainrun
