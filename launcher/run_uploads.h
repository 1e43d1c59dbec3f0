// What `trainrun run` (run_command.h) uploads to run history, and how: the logs
// live while the ranks run (run_ranks.h), then ./outputs and every log at
// Finalizing (run_finalize.h). Internal to the launcher.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "launcher/run_context.h"
#include "launcher/run_load.h"
#include "runtime/run/history_uploader.h"
#include "runtime/run/live_uploader.h"
#include "runtime/run/run_layout.h"

namespace trainrun {

// The folders that go to history besides outputs/ and system_logs/, as (local
// folder, key prefix): ./logs, the job's directoriesToWatch, user_logs/.
std::vector<std::pair<std::string, std::string>> LogDirs(const JobConfig& job,
                                                         const LocalRunLayout& layout);

// Starts uploading the logs every --log-upload-interval while the ranks run (on a
// multi-node job only this node's own: user_logs/ and system_logs/). Failures are
// warnings; the uploader keeps trying until stopped.
std::unique_ptr<LiveUploader> StartLiveUpload(const RunContext& ctx, const LoadedRun& run,
                                              const LocalRunLayout& layout);

// A node that replaced a lost one on this host (run_rejoin.h): adds to `items` the
// files of ./outputs (when the job collects them), ./logs and directoriesToWatch
// that the lost trainruns left in their kept-aside run directories
// (KeptAsideRunDirs), under the keys they would have had, except those whose key is
// in `items` already: a file of this run, or of a newer kept-aside directory, wins.
// Reports what it added. Nothing when there is no kept-aside directory.
void PlanKeptAsideUploads(const RunContext& ctx, const JobConfig& job, const LocalRunLayout& layout,
                          std::vector<TransferItem>* items);

// Uploads ./outputs (when the job collects them) and LogDirs() with the run's
// uploader (its retries and deadline), merged with the other nodes' on a multi-node
// job; symlinks out of the working directory are warned about and skipped. Adds
// files, bytes, errors and skipped links to `report`. The system log is not in it:
// it goes up once, last, with UploadSystemLog(). Never fails: what did not arrive is
// in `report`.
void UploadOutputsAndLogs(const RunContext& ctx, LoadedRun* run, const LocalRunLayout& layout,
                          UploadReport* report);

// Uploads this node's system_logs/ as it is now (the last of the run's files before
// run.json, so that it holds Finalizing's lines), adds its files, bytes, errors and
// failed paths to `report`, and reports the transfer of everything in `report` (the
// count is what history holds of the run, so after a failed preparation it is the
// system log). Returns the system log's own report. Never fails.
UploadReport UploadSystemLog(const RunContext& ctx, LoadedRun* run, const LocalRunLayout& layout,
                             UploadReport* report);

}  // namespace trainrun
