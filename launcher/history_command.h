// `trainrun history {list|show|files|download|logs|metrics}`: reading run history.
#pragma once

#include <optional>
#include <string>

#include "base/cancel.h"
#include "runtime/report/console.h"
#include "runtime/run/run_lease.h"

namespace trainrun {

struct HistoryOptions {
  std::string history;     // store URI; empty: the default
  std::string experiment;  // limit to one experiment; empty: all
  std::string run_id;
  std::string path;         // for download: a file or folder of the run
  std::string output;       // for download: where to put it
  std::optional<int> rank;  // for logs: one rank only
  bool system = false;      // for logs: trainrun's system log instead
  bool follow = false;      // for logs: keep printing until the run ends
  bool json = false;        // for list, show and metrics
  std::string plot;         // for metrics: draw them into this .svg file
  int limit = 0;            // for list: newest N (0: all)
  // How far past its lease's expiry (by this machine's clock) a run that is not
  // final is shown as Lost (run_lease.h).
  double clock_skew_margin_seconds = ToSeconds(kDefaultClockSkewMargin);
  // Canceled by SIGINT, SIGTERM or SIGHUP (command_signals.h): the command stops
  // its store requests and returns soon after. Not owned; null: never.
  const CancelToken* cancel = nullptr;
};

// Each returns an exit code: 0; 66 when the run or file does not exist; 64 for bad
// arguments (checked before the store is opened: a run id or --experiment that is
// not 1-255 of [A-Za-z0-9_.-], a download path or -o longer than 4095 bytes or with
// a component longer than 255); 74 when a download cannot be written; 70 otherwise.
// `logs --follow` returns 0 when the run ends and 69 (kExitUnavailable) when it is
// Lost. Canceled by `options.cancel`, each returns soon (a download keeps the files
// it finished and leaves no partial one); the caller decides the exit code.
int HistoryList(const HistoryOptions& options, Console* out, Console* err);
int HistoryShow(const HistoryOptions& options, Console* out, Console* err);
int HistoryFiles(const HistoryOptions& options, Console* out, Console* err);
int HistoryDownload(const HistoryOptions& options, Console* out, Console* err);
int HistoryLogs(const HistoryOptions& options, Console* out, Console* err);
// The metrics the ranks logged (runtime/run/metrics.h): a table, JSON, or with
// `plot` an SVG file (64 for a name not ending in .svg, 66 for a run without
// metrics, 74 when the file cannot be written). Lines of the metrics files that are
// not metrics are skipped with a warning each.
int HistoryMetrics(const HistoryOptions& options, Console* out, Console* err);

}  // namespace trainrun
