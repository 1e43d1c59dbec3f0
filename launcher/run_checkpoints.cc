#include "launcher/run_checkpoints.h"

#include <signal.h>
#include <unistd.h>

#include <filesystem>

#include <fmt/format.h>

#include "base/fs_util.h"
#include "base/redact.h"
#include "runtime/store/store_factory.h"

namespace trainrun {

namespace {

Duration Seconds(double seconds) {
  return std::chrono::duration_cast<Duration>(std::chrono::duration<double>(seconds));
}

// resumeFrom names a store folder rather than a run id.
bool IsLocation(const std::string& resume_from) {
  return resume_from.find("://") != std::string::npos || resume_from.rfind('/', 0) == 0;
}

}  // namespace

std::string CheckpointPlace::Uri() const {
  return prefix.empty() ? store->Uri() : store->Uri() + "/" + prefix;
}

std::string CheckpointDir(const JobConfig& job, const LocalRunLayout& layout) {
  return layout.wd() + "/" + job.checkpoints.path;
}

Result<CheckpointPlace> CheckpointPlaceOf(const LoadedRun& run, const std::string& run_id) {
  const JobConfig& job = run.job;
  CheckpointPlace place;
  if (job.checkpoints.uri.empty()) {
    place.store = run.store.get();
    place.prefix = RunKey{job.experiment_name, run_id}.Prefix() + kCheckpointsDir;
    return place;
  }
  Result<std::unique_ptr<Store>> opened = OpenStore(job.checkpoints.uri);
  if (!opened.ok()) {
    return InvalidJobError(
        fmt::format("{}: /checkpoints/uri: {}", job.file, opened.status().message()));
  }
  place.owned = std::move(opened).value();
  place.store = place.owned.get();
  place.prefix = job.experiment_name + "/" + run_id;
  return place;
}

Status RestoreCheckpoints(const RunContext& ctx, const LoadedRun& run,
                          const LocalRunLayout& layout) {
  const JobConfig& job = run.job;
  if (!job.checkpoints.enabled) return Status::Ok();
  const std::string dir = CheckpointDir(job, layout);
  TR_RETURN_IF_ERROR(MakeDirs(dir));
  CheckpointPlace source;
  if (job.resume_from.empty()) {
    TR_ASSIGN_OR_RETURN(source, CheckpointPlaceOf(run, job.run_id));
  } else if (IsLocation(job.resume_from)) {
    Result<std::unique_ptr<Store>> opened = OpenStore(job.resume_from);
    if (!opened.ok()) {
      return InvalidJobError(
          fmt::format("{}: /resumeFrom: {}", job.file, opened.status().message()));
    }
    source.owned = std::move(opened).value();
    source.store = source.owned.get();
  } else if (!IsValidRunName(job.resume_from)) {
    return InvalidJobError(
        fmt::format("{}: /resumeFrom: \"{}\" is neither a run id of experiment {} nor a store URI",
                    job.file, job.resume_from, job.experiment_name));
  } else {
    TR_ASSIGN_OR_RETURN(source, CheckpointPlaceOf(run, job.resume_from));
  }
  source.store->SetCancel(ctx.cancel);
  Result<RestoreReport> restored = RestoreCheckpointFiles(source.store, source.prefix, dir);
  source.store->SetCancel(nullptr);
  if (!restored.ok()) {
    return Status(restored.status().code(),
                  fmt::format("restoring the checkpoints from {} into {}: {}", source.Uri(), dir,
                              restored.status().message()));
  }
  if (restored->units == 0 && !job.resume_from.empty()) {
    return NotFoundError(fmt::format("{}: /resumeFrom: \"{}\" has no checkpoints at {}", job.file,
                                     RedactUri(job.resume_from), source.Uri()));
  }
  if (ctx.journal) {
    ctx.journal->record().details["checkpoints"] = {{"restoredFrom", source.Uri()},
                                                    {"units", restored->units},
                                                    {"files", restored->files},
                                                    {"bytes", restored->bytes}};
  }
  if (restored->units == 0) {
    ctx.reporter->Info(fmt::format("checkpoints: nothing to restore from {}", source.Uri()));
  } else {
    ctx.reporter->Notice(
        fmt::format("restored {} checkpoint(s) from {} into {}: {} file(s), {} ({} already there)",
                    restored->units, source.Uri(), dir, restored->files,
                    FormatBytes(restored->bytes), restored->skipped));
  }
  return Status::Ok();
}

std::unique_ptr<CheckpointSync> CheckpointSync::Start(const RunContext& ctx, const LoadedRun& run,
                                                      const LocalRunLayout& layout) {
  const CheckpointConfig& config = run.job.checkpoints;
  if (!config.enabled) return nullptr;
  Result<CheckpointPlace> place = CheckpointPlaceOf(run, run.job.run_id);
  if (!place.ok()) {
    ctx.reporter->Warning(
        fmt::format("checkpoints are not uploaded: {}", place.status().message()));
    return nullptr;
  }
  std::unique_ptr<CheckpointSync> sync(new CheckpointSync());
  sync->place_ = std::move(place).value();
  sync->reporter_ = ctx.reporter;
  CheckpointSyncOptions options;
  options.local_dir = CheckpointDir(run.job, layout);
  options.key_prefix = sync->place_.prefix;
  options.node_rank = run.node_rank();
  options.quiet_period = Seconds(config.quiet_period_seconds);
  options.scan_interval = Seconds(config.scan_interval_seconds);
  options.keep_last = config.keep_last;
  options.max_bytes_per_second = config.max_upload_bytes_per_second;
  sync->uploader_ = std::make_unique<CheckpointUploader>(sync->place_.store, ctx.reporter, options);
  ctx.reporter->Info(fmt::format(
      "checkpoints: {} uploaded to {} once complete (quiet period {:g} s, or the script's "
      "signal), keeping the last {}{}",
      options.local_dir, sync->place_.Uri(), config.quiet_period_seconds,
      config.keep_last == 0 ? std::string("(all)") : std::to_string(config.keep_last),
      config.max_upload_bytes_per_second == 0
          ? std::string()
          : fmt::format(", at most {}/s", FormatBytes(config.max_upload_bytes_per_second))));
  if (ctx.journal) {
    ctx.journal->record().details["checkpoints"]["uri"] = sync->place_.Uri();
  }
  sync->uploader_->Start();
  return sync;
}

CheckpointSync::~CheckpointSync() {
  if (uploader_) uploader_->Stop();
}

UploadReport CheckpointSync::UploadLast(bool ranks_ended_cleanly,
                                        std::optional<TimePoint> deadline) {
  uploader_->Stop();
  // Run history's store has Finalizing's deadline already.
  if (place_.owned) place_.store->SetRetryDeadline(deadline);
  UploadReport report = uploader_->FinalPass(ranks_ended_cleanly);
  if (report.files > 0) {
    reporter_->Notice(fmt::format("checkpoints: {} file(s) ({}) uploaded to {} after the ranks",
                                  report.files, FormatBytes(report.bytes), place_.Uri()));
  }
  return report;
}

std::unique_ptr<PreemptionWatch> StartPreemptionWatch(const RunContext& ctx, const JobConfig& job) {
  const PreemptionConfig& config = job.preemption;
  if (config.notice_file.empty() && config.notice_url.empty()) return nullptr;
  PreemptionWatchOptions options;
  options.notice_file = config.notice_file;
  options.url = config.notice_url;
  options.body_contains = config.body_contains;
  options.headers = config.headers;
  options.url_interval = std::chrono::seconds(config.poll_interval_seconds);
  Reporter* reporter = ctx.reporter;
  auto watch = std::make_unique<PreemptionWatch>(options, [reporter](const std::string& why) {
    reporter->Warning(fmt::format(
        "preempted: {}; stopping the run as on SIGTERM, so that the ranks can write a last "
        "checkpoint and it is uploaded first",
        why));
    // The same stop as the scheduler's own SIGTERM, through the same handlers.
    kill(getpid(), SIGTERM);
  });
  if (watch->stale_file()) {
    reporter->Warning(fmt::format(
        "the preemption notice file {} is already there (from an earlier start?): it is a notice "
        "only once written again",
        config.notice_file));
  }
  watch->Start();
  return watch;
}

}  // namespace trainrun
