#include "launcher/run_finalize.h"

#include <fmt/format.h>

#include "base/fs_util.h"
#include "base/net_util.h"
#include "launcher/exit_codes.h"
#include "launcher/run_uploads.h"
#include "runtime/mpi/mpi_supervisor.h"

namespace trainrun {

namespace {

// The head of a multi-node job died before writing the final status: this node
// writes it into run history instead.
void CloseRecordForLostHead(const RunContext& ctx, const LoadedRun& run) {
  // Every surviving node may get here; each writes the same final status (with its
  // own ranks), so the run never stays "Running" in history for ever.
  const RunRecord& record = ctx.journal->record();
  RunKey key{run.job.experiment_name, run.job.run_id};
  Result<RunRecord> stored = run.history->ReadRecord(key);
  RunRecord closed = stored.ok() ? std::move(stored).value() : record;
  if (IsFinal(closed.status)) return;
  closed.SetStatus(record.status, SystemClock()->WallNow());
  closed.exit_code = record.exit_code;
  closed.outcome = record.outcome;
  closed.stop_reason = record.stop_reason;
  if (record.failure) closed.failure = record.failure;
  for (const RankRecord& rank : record.ranks) closed.ranks.push_back(rank);
  closed.warnings.push_back(
      fmt::format("the head was lost before it wrote the final status; node {} ({}) wrote it",
                  run.node_rank(), LocalHostName()));
  Status written = run.history->WriteRecord(closed);
  if (!written.ok()) {
    ctx.reporter->Warning(fmt::format(
        "the head was lost and the final status could not be saved: {}", written.message()));
  } else {
    ctx.reporter->Info("the head was lost: this node wrote the run's final status to history");
  }
}

// What a rank's lost output is, where the part that was kept is, and where the rest
// went: one line per rank for the console, run.json and the head.
std::string DescribeLostOutput(const LostOutput& lost, const std::string& history_uri) {
  const std::string whose =
      lost.rank == kMpirunRank ? "mpirun's output" : fmt::format("rank {}'s output", lost.rank);
  return fmt::format(
      "{} from byte {} on ({}) is not in its log: {}; {} after that {}; the log holds the "
      "{} before it, whole lines, in {} and on this node",
      whose, lost.kept_bytes, FormatIso8601(lost.since), lost.error.message(),
      FormatBytes(lost.lost_bytes),
      lost.to_console ? "went to trainrun's console (standard output) only"
                      : "was not kept (the console showed no rank output)",
      FormatBytes(lost.kept_bytes), history_uri);
}

// The ranks' processes are done with: their output drained, the data unmounted,
// what they left behind killed or reaped. Returns the ranks' output that could not
// be written to their logs.
std::vector<LostOutput> CleanUpAfterRanks(const RunContext& ctx, PreparedRun* prepared) {
  Reporter* reporter = ctx.reporter;
  LogPump* pump = prepared->pump.get();
  if (pump && !pump->WaitDrained(kLogDrainTimeout)) {
    reporter->Warning(
        "a process outside the ranks' process groups still holds a rank's output "
        "open; what it writes from now on is not in the logs");
  }
  std::vector<LostOutput> lost;
  if (pump) lost = pump->LostOutputs();
  // Unmounts (FUSE tools are trainrun's children: before the orphans go).
  prepared->data.reset();
  PosixProcessSet* processes = prepared->processes.get();
  if (processes) {
    std::vector<int> orphans = processes->KillAdoptedOrphans();
    if (!orphans.empty()) {
      reporter->Info(fmt::format("killed {} process(es) the ranks left behind: {}", orphans.size(),
                                 fmt::join(orphans, ", ")));
      processes->Wait(SystemClock()->Now() + std::chrono::milliseconds(200));
    }
    if (processes->orphans_reaped() > 0) {
      reporter->Info(fmt::format("reaped {} orphaned process(es)", processes->orphans_reaped()));
    }
  }
  return lost;
}

// After the scheduler's SIGTERM its SIGKILL is due at a known time: this node's
// uploads start no retry after it less the uploads margin, and the head stops
// waiting for the other nodes a head margin before it, so that it writes the run's
// final status in time.
void LimitToStopBudget(const RunContext& ctx, LoadedRun* run) {
  const std::optional<TimePoint> kill_at = ctx.stop->KillAt();
  if (!kill_at) return;
  const StopTiming& timing = ctx.stop->timing();
  const TimePoint now = SystemClock()->Now();
  run->uploader->LimitDeadline(*kill_at - timing.uploads_margin);
  if (ctx.cluster) ctx.cluster->session()->LimitFinalize(*kill_at - timing.head_margin);
  ctx.reporter->Info(fmt::format(
      "the SIGKILL of the stop budget ({}) is due in {:.1f} s: uploads retry for at most {:.1f} s",
      ctx.stop->source(), ToSeconds(*kill_at - now),
      std::max(0.0, ToSeconds(*kill_at - timing.uploads_margin - now))));
}

// Uploads the last checkpoints of the folder, retrying until the stop budget's
// uploads deadline (else the finalize timeout). When every rank ended by itself
// (an exit code), none was killed while writing one, so every unit is complete.
UploadReport UploadLastCheckpoints(const RunContext& ctx, RanRanks* ran) {
  bool clean = true;
  for (const RankResult& r : ran->result.ranks)
    clean = clean && r.status.signal == 0 && !r.unkillable;
  std::optional<TimePoint> deadline =
      SystemClock()->Now() + std::chrono::duration_cast<Duration>(std::chrono::duration<double>(
                                 ctx.options.finalize_timeout_seconds));
  if (std::optional<TimePoint> kill_at = ctx.stop->KillAt()) {
    deadline = std::min(*deadline, *kill_at - ctx.stop->timing().uploads_margin);
  }
  UploadReport report = ran->checkpoints->UploadLast(clean, deadline);
  ran->checkpoints.reset();
  return report;
}

}  // namespace

int Finalize(const RunContext& ctx, LoadedRun* run, const LocalRunLayout& layout,
             PreparedRun* prepared, RanRanks* ran, int exit_code, RunStatus status) {
  const JobConfig& job = run->job;
  const int node_rank = run->node_rank();
  RunJournal* journal = ctx.journal;
  RunRecord& record = journal->record();
  Reporter* reporter = ctx.reporter;
  if (ran && ran->live) {
    ran->live->Stop();
    run->uploader->SetAlreadyUploaded(ran->live->uploaded());
  }
  run->uploader->StartDeadline();
  LimitToStopBudget(ctx, run);
  journal->EnterPhase(RunStatus::kFinalizing);
  journal->Save();
  const std::vector<LostOutput> lost_output = CleanUpAfterRanks(ctx, prepared);
  // The ranks' last checkpoint (a preemption's SIGTERM gave them the grace period to
  // write it) goes up before anything else.
  UploadReport checkpoint_uploads;
  if (ran && ran->checkpoints) checkpoint_uploads = UploadLastCheckpoints(ctx, ran);
  const SupervisionResult none;
  const SupervisionResult& result = ran ? ran->result : none;
  if (ran) {
    record.outcome = std::string(RunOutcomeName(result.outcome));
    record.stop_reason = result.stop_reason;
    const JobAssignment& assignment = prepared->plan.assignment;
    for (const RankResult& r : result.ranks) {
      const int local_rank = r.rank - assignment.nodes[node_rank].first_rank;
      RankRecord rank{.rank = r.rank,
                      .node_rank = node_rank,
                      .local_rank = local_rank,
                      .pid = r.pid,
                      .exit_code = r.status.code,
                      .signal = r.status.signal,
                      .seconds = r.seconds,
                      .stopped_by_trainrun = r.stopped_by_trainrun};
      if (r.unkillable) {
        rank.unkillable_state = std::string(1, r.state.state != 0 ? r.state.state : '?');
        rank.unkillable_wchan = r.state.wchan;
      }
      record.ranks.push_back(std::move(rank));
    }
    ReportRankFailure(ctx, node_rank, layout,
                      run->store->Uri() + "/" + RunKey{job.experiment_name, job.run_id}.Prefix(),
                      prepared->pump.get(), ran);
    // On a multi-node job the job's stop, which names its node, is said once the
    // nodes have finished together (ClusterRun::Finish).
    if (!ctx.cluster &&
        (result.outcome == RunOutcome::kTimedOut || result.outcome == RunOutcome::kCanceled)) {
      reporter->Error(fmt::format("ranks stopped: {}", result.stop_reason));
    }
  }
  if (ctx.cluster) {
    journal->CollectWarnings();
    // No ranks ran: the record says why (a preflight failed, the job stopped).
    ctx.cluster->ReportResult(record,
                              ran || record.outcome.empty()
                                  ? std::string(RunOutcomeName(result.outcome))
                                  : record.outcome,
                              exit_code, ran ? ran->failure_time_ms : 0);
  }
  prepared->pump.reset();

  UploadReport uploads;
  uploads.errors = checkpoint_uploads.errors;
  uploads.failed_paths = checkpoint_uploads.failed_paths;
  UploadOutputsAndLogs(ctx, run, layout, &uploads);
  record.skipped_symlinks = uploads.skipped_symlinks;
  record.upload_errors = uploads.errors;
  const bool upload_failed = !uploads.errors.empty();
  if (upload_failed) {
    if (exit_code == kExitOk) {
      exit_code = kExitUploadFailed;
      status = RunStatus::kFailed;
      record.outcome = "upload failed";
    }
    reporter->Error(fmt::format(
        "{} file(s) did not reach run history at {}; everything stays on this node under {}\n{}",
        uploads.failed_paths.size(), run->store->Uri(), layout.root,
        fmt::join(uploads.errors.begin(),
                  uploads.errors.begin() + std::min<size_t>(uploads.errors.size(), 10), "\n")));
  }
  if (!lost_output.empty()) {
    // Output that never reached its log is lost like a log that never reached history:
    // the run is not a success (74), and on a multi-node job the head learns of it
    // with this node's upload errors.
    nlohmann::json entries = nlohmann::json::array();
    for (const LostOutput& lost : lost_output) {
      std::string message = DescribeLostOutput(
          lost, run->store->Uri() + "/" + RunKey{job.experiment_name, job.run_id}.Prefix() +
                    kUserLogsDir);
      reporter->Error(message);
      entries.push_back({{"rank", lost.rank},
                         {"file", lost.file},
                         {"keptBytes", lost.kept_bytes},
                         {"lostFrom", FormatIso8601(lost.since)},
                         {"lostBytes", lost.lost_bytes},
                         {"toConsole", lost.to_console},
                         {"error", lost.error.message()}});
      uploads.errors.push_back(std::move(message));
    }
    record.details["lostOutput"] = std::move(entries);
    if (exit_code == kExitOk) {
      exit_code = kExitUploadFailed;
      status = RunStatus::kFailed;
      record.outcome = "rank output lost";
    }
  }
  if (ctx.cluster) ctx.cluster->Finish(uploads, &exit_code, &status, &record);
  record.exit_code = exit_code;
  journal->EnterPhase(status);
  const std::string prefix = RunKey{job.experiment_name, job.run_id}.Prefix();
  reporter->Notice(fmt::format("run {} {} (exit code {}); history: {}/{}", job.run_id,
                               RunStatusName(status), exit_code, run->store->Uri(), prefix));

  // The system log goes up once, last but one, so it holds everything above; the
  // upload line after it counts it with the outputs and logs.
  UploadReport last = UploadSystemLog(ctx, run, layout, &uploads);
  record.upload_errors.insert(record.upload_errors.end(), last.errors.begin(), last.errors.end());
  journal->Save();
  if (ctx.cluster && ctx.cluster->head_lost()) CloseRecordForLostHead(ctx, *run);
  Result<ObjectInfo> saved = run->store->Stat(prefix + kRunRecordName);
  if ((!last.errors.empty() || !saved.ok() || !journal->history_saved()) && exit_code == kExitOk) {
    reporter->Error(fmt::format("the run record or system log did not reach {}; they stay in {}",
                                run->store->Uri(), layout.root));
    exit_code = kExitUploadFailed;
    // The local record ends the way trainrun does.
    record.exit_code = exit_code;
    record.outcome = "upload failed";
    if (!journal->history_saved()) {
      record.upload_errors.push_back(
          fmt::format("{}: {}", kRunRecordName, journal->history_status().message()));
    }
    journal->EnterPhase(RunStatus::kFailed);
    journal->SaveLocally();
  }
  return exit_code;
}

}  // namespace trainrun
