// Finalizing: uploads to run history (live while running, then everything), the
// final status and the exit code.
#include "launcher/run_pipeline.h"

namespace trainrun {

namespace fs = std::filesystem;
using nlohmann::json;

std::vector<std::pair<std::string, std::string>> RunPipeline::LogDirs() const {
  const std::string prefix = RunKey{job_.experiment_name, job_.run_id}.Prefix();
  std::vector<std::pair<std::string, std::string>> dirs;  // local, key prefix
  dirs.emplace_back(layout_.logs(), prefix + kLogsDir);
  for (const std::string& watched : job_.history.directories_to_watch) {
    std::string normal = fs::path(watched).lexically_normal().generic_string();
    while (!normal.empty() && normal.back() == '/') normal.pop_back();
    if (normal == kLogsDir || (normal == kOutputsDir && job_.history.output_collection)) continue;
    dirs.emplace_back(layout_.wd() + "/" + normal, prefix + normal);
  }
  dirs.emplace_back(layout_.user_logs(), prefix + kUserLogsDir);
  return dirs;
}

void RunPipeline::StartLiveUpload() {
  const std::string prefix = RunKey{job_.experiment_name, job_.run_id}.Prefix();
  std::vector<WatchedDir> watched;
  for (const auto& [local, key] : LogDirs()) {
    // Several nodes write ./logs: they meet in history at Finalizing (merged), while
    // every rank's log and node's system log have names of their own.
    if (cluster_ && local != layout_.user_logs()) continue;
    watched.push_back({local, key});
  }
  watched.push_back({layout_.system_logs(), prefix + kSystemLogsDir});
  live_ = std::make_unique<LiveUploader>(
      store_.get(), &reporter_, std::move(watched), layout_.root,
      std::chrono::duration_cast<Duration>(
          std::chrono::duration<double>(options_.log_upload_interval_seconds)));
  live_->Start();
}

void RunPipeline::Upload(UploadReport* report) {
  const std::string prefix = RunKey{job_.experiment_name, job_.run_id}.Prefix();
  std::vector<std::pair<std::string, std::string>> dirs;  // local, key prefix
  if (job_.history.output_collection) dirs.emplace_back(layout_.outputs(), prefix + kOutputsDir);
  for (const auto& dir : LogDirs()) dirs.push_back(dir);

  std::vector<TransferItem> items;
  for (const auto& [local, key] : dirs) {
    Status planned = PlanUpload(local, key, layout_.wd(), prefix, &items, &report->skipped_symlinks);
    if (!planned.ok()) report->errors.push_back(planned.message());
  }
  // Every node has ./outputs and ./logs: merged with the other nodes' so that no
  // node's file silently replaces another's.
  if (cluster_) items = cluster_->session()->MergeUploads(std::move(items), prefix);
  for (const SkippedSymlink& link : report->skipped_symlinks) {
    if (link.reason != SkippedSymlink::kOutsideWorkdir) continue;  // nothing is missing
    reporter_.Warning(fmt::format("{} is a symlink to {}, outside the working directory: recorded, "
                                  "not uploaded",
                                  link.path, link.target));
  }
  UploadReport done = uploader_->Upload(items, "outputs and logs");
  report->files += done.files;
  report->bytes += done.bytes;
  report->errors.insert(report->errors.end(), done.errors.begin(), done.errors.end());
  report->failed_paths.insert(report->failed_paths.end(), done.failed_paths.begin(),
                              done.failed_paths.end());
  TransferProgress progress;
  progress.what = fmt::format("uploaded to {}", store_->Uri());
  progress.files_done = report->files;
  progress.bytes_done = report->bytes;
  progress.finished = true;
  reporter_.Transfer(progress);
}

void RunPipeline::CloseRecordForLostHead() {
  // Every surviving node may get here; each writes the same final status (with its
  // own ranks), so the run never stays "Running" in history for ever.
  RunKey key{job_.experiment_name, job_.run_id};
  Result<RunRecord> stored = history_->ReadRecord(key);
  RunRecord closed = stored.ok() ? std::move(stored).value() : record_;
  if (IsFinal(closed.status)) return;
  closed.SetStatus(record_.status, SystemClock()->WallNow());
  closed.exit_code = record_.exit_code;
  closed.outcome = record_.outcome;
  closed.stop_reason = record_.stop_reason;
  if (record_.failure) closed.failure = record_.failure;
  for (const RankRecord& rank : record_.ranks) closed.ranks.push_back(rank);
  closed.warnings.push_back(fmt::format(
      "the head was lost before it wrote the final status; node {} ({}) wrote it", node_rank_,
      LocalHostName()));
  Status written = history_->WriteRecord(closed);
  if (!written.ok()) {
    reporter_.Warning(fmt::format("the head was lost and the final status could not be saved: {}",
                                  written.message()));
  } else {
    reporter_.Info("the head was lost: this node wrote the run's final status to history");
  }
}

int RunPipeline::Finalize(int exit_code, RunStatus status) {
  if (live_) {
    live_->Stop();
    uploader_->SetAlreadyUploaded(live_->uploaded());
  }
  uploader_->StartDeadline();
  EnterPhase(RunStatus::kFinalizing);
  SaveRecord();
  if (pump_ && !pump_->WaitDrained(kLogDrainTimeout)) {
    reporter_.Warning("a process outside the ranks' process groups still holds a rank's output "
                      "open; what it writes from now on is not in the logs");
  }
  if (pump_ && !pump_->write_status().ok()) {
    reporter_.Warning(fmt::format("rank output was lost: {}", pump_->write_status().message()));
  }
  data_.reset();  // unmounts (FUSE tools are trainrun's children: before the orphans go)
  if (processes_) {
    std::vector<int> orphans = processes_->KillAdoptedOrphans();
    if (!orphans.empty()) {
      reporter_.Info(fmt::format("killed {} process(es) the ranks left behind: {}", orphans.size(),
                                 fmt::join(orphans, ", ")));
      processes_->Wait(SystemClock()->Now() + std::chrono::milliseconds(200));
    }
    if (processes_->orphans_reaped() > 0) {
      reporter_.Info(fmt::format("reaped {} orphaned process(es)", processes_->orphans_reaped()));
    }
  }
  if (ran_) {
    record_.outcome = std::string(RunOutcomeName(result_.outcome));
    record_.stop_reason = result_.stop_reason;
    for (const RankResult& r : result_.ranks) {
      record_.ranks.push_back({r.rank, node_rank_, r.rank - assignment_.nodes[node_rank_].first_rank, r.pid,
                               r.status.code, r.status.signal, r.seconds, r.stopped_by_trainrun});
    }
    ReportFailure();
    if (result_.outcome == RunOutcome::kTimedOut || result_.outcome == RunOutcome::kCanceled) {
      reporter_.Error(fmt::format("ranks stopped: {}", result_.stop_reason));
    }
  }
  if (cluster_) {
    record_.warnings = warnings_.warnings();
    cluster_->ReportResult(record_, RunOutcomeName(result_.outcome), exit_code, failure_time_ms_);
  }
  pump_.reset();

  UploadReport uploads;
  Upload(&uploads);
  record_.skipped_symlinks = uploads.skipped_symlinks;
  record_.upload_errors = uploads.errors;
  const bool upload_failed = !uploads.errors.empty();
  if (upload_failed) {
    if (exit_code == kExitOk) {
      exit_code = kExitUploadFailed;
      status = RunStatus::kFailed;
      record_.outcome = "upload failed";
    }
    reporter_.Error(fmt::format(
        "{} file(s) did not reach run history at {}; everything stays on this node under {}\n{}",
        uploads.failed_paths.size(), store_->Uri(), layout_.root,
        fmt::join(uploads.errors.begin(),
                  uploads.errors.begin() + std::min<size_t>(uploads.errors.size(), 10), "\n")));
  }
  if (cluster_) cluster_->Finish(uploads, &exit_code, &status, &record_);
  record_.exit_code = exit_code;
  EnterPhase(status);
  const std::string prefix = RunKey{job_.experiment_name, job_.run_id}.Prefix();
  reporter_.Notice(fmt::format("run {} {} (exit code {}); history: {}/{}", job_.run_id,
                               RunStatusName(status), exit_code, store_->Uri(), prefix));

  // The system log goes up last but one, so it holds everything above.
  std::vector<TransferItem> system_logs;
  std::vector<SkippedSymlink> ignored;
  PlanUpload(layout_.system_logs(), prefix + kSystemLogsDir, layout_.root, prefix, &system_logs,
             &ignored)
      .IgnoreError();
  UploadReport last = uploader_->Upload(system_logs, "system log");
  record_.upload_errors.insert(record_.upload_errors.end(), last.errors.begin(), last.errors.end());
  SaveRecord();
  if (cluster_ && cluster_->head_lost()) CloseRecordForLostHead();
  Result<ObjectInfo> saved = store_->Stat(prefix + kRunRecordName);
  if ((!last.errors.empty() || !saved.ok()) && exit_code == kExitOk) {
    reporter_.Error(fmt::format("the run record or system log did not reach {}; they stay in {}",
                                store_->Uri(), layout_.root));
    exit_code = kExitUploadFailed;
  }
  return exit_code;
}

}  // namespace trainrun
