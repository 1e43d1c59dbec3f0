// `trainrun history {list|show|files|download|logs}`: reading run history.
#pragma once

#include <optional>
#include <string>

#include "runtime/report/console.h"

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
  bool json = false;        // for list and show
  int limit = 0;            // for list: newest N (0: all)
};

// Each returns an exit code: 0; 66 when the run or file does not exist; 64 for bad
// arguments (checked before the store is opened: a run id or --experiment that is
// not 1-255 of [A-Za-z0-9_.-], a download path or -o longer than 4095 bytes or with
// a component longer than 255); 74 when a download cannot be written; 70 otherwise.
int HistoryList(const HistoryOptions& options, Console* out, Console* err);
int HistoryShow(const HistoryOptions& options, Console* out, Console* err);
int HistoryFiles(const HistoryOptions& options, Console* out, Console* err);
int HistoryDownload(const HistoryOptions& options, Console* out, Console* err);
int HistoryLogs(const HistoryOptions& options, Console* out, Console* err);

}  // namespace trainrun
