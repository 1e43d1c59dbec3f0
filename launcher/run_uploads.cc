#include "launcher/run_uploads.h"

#include <filesystem>
#include <set>

#include <fmt/format.h>

#include "launcher/run_rejoin.h"
#include "runtime/run/metrics.h"

namespace trainrun {

namespace fs = std::filesystem;

namespace {

// What Finalizing uploads from a run directory laid out as `layout`: ./outputs (when
// the job collects them) and LogDirs(), as (local, key prefix).
std::vector<std::pair<std::string, std::string>> FinalUploadDirs(const JobConfig& job,
                                                                 const LocalRunLayout& layout) {
  std::vector<std::pair<std::string, std::string>> dirs;
  if (job.history.output_collection) {
    dirs.emplace_back(layout.outputs(),
                      RunKey{job.experiment_name, job.run_id}.Prefix() + kOutputsDir);
  }
  for (auto& dir : LogDirs(job, layout)) dirs.push_back(std::move(dir));
  return dirs;
}

void AddUploads(const UploadReport& done, UploadReport* report) {
  report->files += done.files;
  report->bytes += done.bytes;
  report->errors.insert(report->errors.end(), done.errors.begin(), done.errors.end());
  report->failed_paths.insert(report->failed_paths.end(), done.failed_paths.begin(),
                              done.failed_paths.end());
}

}  // namespace

std::vector<std::pair<std::string, std::string>> LogDirs(const JobConfig& job,
                                                         const LocalRunLayout& layout) {
  const std::string prefix = RunKey{job.experiment_name, job.run_id}.Prefix();
  std::vector<std::pair<std::string, std::string>> dirs;  // local, key prefix
  dirs.emplace_back(layout.logs(), prefix + kLogsDir);
  for (const std::string& watched : job.history.directories_to_watch) {
    std::string normal = fs::path(watched).lexically_normal().generic_string();
    while (!normal.empty() && normal.back() == '/') normal.pop_back();
    if (normal == kLogsDir || (normal == kOutputsDir && job.history.output_collection)) continue;
    dirs.emplace_back(layout.wd() + "/" + normal, prefix + normal);
  }
  dirs.emplace_back(layout.user_logs(), prefix + kUserLogsDir);
  dirs.emplace_back(layout.metrics(), prefix + kMetricsDir);
  return dirs;
}

std::unique_ptr<LiveUploader> StartLiveUpload(const RunContext& ctx, const LoadedRun& run,
                                              const LocalRunLayout& layout) {
  const std::string prefix = RunKey{run.job.experiment_name, run.job.run_id}.Prefix();
  std::vector<WatchedDir> watched;
  for (const auto& [local, key] : LogDirs(run.job, layout)) {
    // Several nodes write ./logs: they meet in history at Finalizing (merged), while
    // every rank's log and node's system log have names of their own.
    if (ctx.cluster && local != layout.user_logs()) continue;
    watched.push_back({local, key});
  }
  watched.push_back({layout.system_logs(), prefix + kSystemLogsDir});
  auto live = std::make_unique<LiveUploader>(
      run.store.get(), ctx.reporter, std::move(watched), layout.root,
      std::chrono::duration_cast<Duration>(
          std::chrono::duration<double>(ctx.options.log_upload_interval_seconds)));
  live->Start();
  return live;
}

void PlanKeptAsideUploads(const RunContext& ctx, const JobConfig& job, const LocalRunLayout& layout,
                          std::vector<TransferItem>* items) {
  const std::vector<std::string> kept = KeptAsideRunDirs(layout.root);
  if (kept.empty()) return;
  const std::string prefix = RunKey{job.experiment_name, job.run_id}.Prefix();
  std::set<std::string> keys;
  for (const TransferItem& item : *items) keys.insert(item.key);
  for (const std::string& dir : kept) {
    const LocalRunLayout earlier{dir};
    std::vector<std::pair<std::string, std::string>> dirs = FinalUploadDirs(job, earlier);
    // Its rank logs and metrics were taken into this run's (run_rejoin.h).
    std::erase_if(dirs, [&](const auto& dir) {
      return dir.first == earlier.user_logs() || dir.first == earlier.metrics();
    });
    std::vector<TransferItem> found;
    // Links out of its working directory were never this run's to record.
    std::vector<SkippedSymlink> skipped;
    for (const auto& [local, key] : dirs) {
      Status planned = PlanUpload(local, key, earlier.wd(), prefix, &found, &skipped);
      if (!planned.ok()) ctx.reporter->Warning(planned.message());
    }
    size_t added = 0;
    for (TransferItem& item : found) {
      if (!keys.insert(item.key).second) continue;
      items->push_back(std::move(item));
      ++added;
    }
    ctx.reporter->Info(fmt::format(
        "{} of {} file(s) that the lost trainrun left in {} go up with this run's ./outputs and "
        "./logs (the others this run has too, newer)",
        added, found.size(), dir));
  }
}

void UploadOutputsAndLogs(const RunContext& ctx, LoadedRun* run, const LocalRunLayout& layout,
                          UploadReport* report) {
  const JobConfig& job = run->job;
  const std::string prefix = RunKey{job.experiment_name, job.run_id}.Prefix();
  std::vector<TransferItem> items;
  for (const auto& [local, key] : FinalUploadDirs(job, layout)) {
    Status planned = PlanUpload(local, key, layout.wd(), prefix, &items, &report->skipped_symlinks);
    if (!planned.ok()) report->errors.push_back(planned.message());
  }
  if (ctx.cluster && ctx.cluster->first_attempt() > 1)
    PlanKeptAsideUploads(ctx, job, layout, &items);
  // Every node has ./outputs and ./logs: merged with the other nodes' so that no
  // node's file silently replaces another's.
  if (ctx.cluster) items = ctx.cluster->session()->MergeUploads(std::move(items), prefix);
  for (const SkippedSymlink& link : report->skipped_symlinks) {
    if (link.reason != SkippedSymlink::kOutsideWorkdir) continue;  // nothing is missing
    ctx.reporter->Warning(
        fmt::format("{} is a symlink to {}, outside the working directory: recorded, not uploaded",
                    link.path, link.target));
  }
  AddUploads(run->uploader->Upload(items, "outputs and logs"), report);
}

UploadReport UploadSystemLog(const RunContext& ctx, LoadedRun* run, const LocalRunLayout& layout,
                             UploadReport* report) {
  const std::string prefix = RunKey{run->job.experiment_name, run->job.run_id}.Prefix();
  std::vector<TransferItem> items;
  std::vector<SkippedSymlink> none;  // trainrun writes the folder: no links there
  PlanUpload(layout.system_logs(), prefix + kSystemLogsDir, layout.root, prefix, &items, &none)
      .IgnoreError();
  UploadReport done = run->uploader->Upload(items, "system log");
  AddUploads(done, report);
  // Counted with the outputs and logs, so the line says what history holds of the run:
  // after a failed preparation (no ranks, no outputs) that is the system log with the
  // reason, not "0 file(s)".
  TransferProgress progress;
  progress.what = fmt::format("uploaded to {}", run->store->Uri());
  progress.files_done = report->files;
  progress.bytes_done = report->bytes;
  progress.finished = true;
  ctx.reporter->Transfer(progress);
  return done;
}

}  // namespace trainrun
