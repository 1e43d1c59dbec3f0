// `trainrun run`: the phases in order, and what each failure does to the run. The
// phases themselves are in run_load.cc, run_prepare.cc, run_ranks.cc,
// run_finalize.cc and dry_run.cc.
#include "launcher/run_command.h"

#include <future>
#include <optional>
#include <string>
#include <string_view>

#include <fmt/format.h>

#include "launcher/dry_run.h"
#include "launcher/exit_codes.h"
#include "launcher/preflight.h"
#include "launcher/rank_plan.h"
#include "launcher/run_attempts.h"
#include "launcher/run_checkpoints.h"
#include "launcher/run_context.h"
#include "launcher/run_finalize.h"
#include "launcher/run_load.h"
#include "launcher/run_prepare.h"
#include "launcher/run_ranks.h"
#include "launcher/signal_cancel.h"
#include "runtime/process/process_posix.h"

namespace trainrun {

namespace {

// The cancel reason when the job's stop, not a signal, cut Preparing short.
constexpr std::string_view kJobStopCancel = "the job's stop";

// A multi-node job: the run id and the ranks come from the rendezvous, before
// anything is on disk. The binding is planned first (every node's rank count is
// needed) and kept in *binding for Preparing.
Status JoinCluster(const RunOptions& options, Reporter* reporter, LoadedRun* run,
                   std::optional<NodeBinding>* binding) {
  TR_ASSIGN_OR_RETURN(*binding, PlanBinding(options, run->job, reporter));
  const NodeBinding& planned = **binding;
  return run->cluster->Join(&run->job, planned.plan.process_count,
                            planned.plan.process_count_source,
                            static_cast<int>(planned.inventory.Ours().size()));
}

// Preparing, Running and Finalizing, once the run directory exists: whatever
// happens from here on is recorded and uploaded.
int PrepareRunAndFinalize(const RunContext& ctx, LoadedRun* run, const LocalRunLayout& layout,
                          PreparedRun* prepared) {
  RunJournal* journal = ctx.journal;
  RunRecord& record = journal->record();
  Reporter* reporter = ctx.reporter;
  ClusterRun* cluster = ctx.cluster;
  const JobConfig& job = run->job;
  journal->EnterPhase(RunStatus::kPreparing);
  reporter->Notice(
      fmt::format("run {} (experiment {}) in {}", job.run_id, job.experiment_name, layout.root));
  // The first record claims the run id, exclusively: of several starts with the same
  // id at once (on other hosts, with other --workdirs), one goes on; the others stop
  // before their ranks start, having written nothing to history. The claim goes on
  // alongside Preparing (a slow store does not hold up the snapshot, the data and the
  // plan) and is awaited once this node is prepared, before the ranks may start. The
  // claim writes a copy of the record as it is now; Prepare goes on filling the journal's.
  std::optional<std::future<Status>> claim;
  if (!cluster || cluster->is_head()) {
    claim = std::async(std::launch::async, [&ctx, journal, history = run->history.get(),
                                            first = record, root = layout.root]() {
      Status claimed = history->CreateRecord(first);
      // From the first record on, the run's lease says it is alive (run_lease.h).
      if (claimed.ok()) {
        journal->StartLease(root,
                            std::chrono::duration_cast<Duration>(
                                std::chrono::duration<double>(ctx.options.lease_interval_seconds)));
      }
      return claimed;
    });
  }
  Status ready = Prepare(ctx, *run, layout, prepared);
  Status writable = claim ? claim->get() : Status::Ok();
  if (!writable.ok()) {
    // Nothing of this start reaches history; what Prepare made is let go of here
    // (the log pump sees its pipes close, the data is unmounted).
    if (prepared->pump) prepared->pump->CloseChildEnds();
    prepared->pump.reset();
    prepared->data.reset();
  }
  if (writable.code() == StatusCode::kAlreadyExists) {
    Status taken = AlreadyExistsError(fmt::format(
        "run \"{}\" already exists in {} (experiment {}): another start with the same run id "
        "claimed it first, and nothing of it was touched; give a new runId or leave it out to "
        "get a generated one",
        job.run_id, run->store->Uri(), job.experiment_name));
    reporter->Error(taken.message());
    if (cluster) cluster->session()->WaitForStart(taken, ExitCodeFor(taken));
    return ExitCodeFor(taken);
  }
  if (!writable.ok()) {
    reporter->Error(
        fmt::format("run history {} is not writable, so nothing was started: {}\n"
                    "the system log and run.json are in {}",
                    run->store->Uri(), writable.message(), layout.root));
    record.exit_code = kExitUploadFailed;
    record.outcome = "history not writable";
    record.stop_reason = writable.message();
    journal->EnterPhase(RunStatus::kFailed);
    journal->CollectWarnings();
    journal->SaveLocally();
    if (cluster) {
      cluster->session()->WaitForStart(UploadFailedError(writable.message()), kExitUploadFailed);
    }
    return kExitUploadFailed;
  }
  // The job stopped (another node failed or was canceled) while this node prepared:
  // the job's stop, with its code, is the outcome, not a cancel of this node.
  const bool cut_short_by_job_stop = !ready.ok() && cluster != nullptr && IsCanceled(ctx.cancel) &&
                                     ctx.cancel->reason() == kJobStopCancel;
  if (!ready.ok() && IsCanceled(ctx.cancel) && !cut_short_by_job_stop) {
    // Whatever step gave up, a signal made it: the run is canceled, and the
    // message says what was interrupted.
    ready = Status(StatusCode::kCanceled, fmt::format("canceled by {} while preparing: {}",
                                                      ctx.cancel->reason(), ready.message()));
  }
  if (cluster) {
    // Every node prepared (or one failed, or one was canceled): start, or stop together.
    std::optional<StopNotice> stop =
        cluster->session()->WaitForStart(ready, ready.ok() ? 0 : ExitCodeFor(ready));
    if (stop && (ready.ok() || cut_short_by_job_stop)) {
      reporter->Error(fmt::format("the ranks were not started: {}", stop->reason));
      record.outcome = stop->exit_code == kExitCanceled ? "canceled" : "stopped";
      record.stop_reason = stop->reason;
      return Finalize(ctx, run, layout, prepared, /*ran=*/nullptr, stop->exit_code,
                      stop->exit_code == kExitCanceled ? RunStatus::kCanceled : RunStatus::kFailed);
    }
  }
  if (!ready.ok()) {
    const bool canceled = ready.code() == StatusCode::kCanceled;
    reporter->Error(ready.message());
    record.outcome =
        canceled ? std::string(RunOutcomeName(RunOutcome::kCanceled)) : "preparation failed";
    record.stop_reason = ready.message();
    return Finalize(ctx, run, layout, prepared, /*ran=*/nullptr, ExitCodeFor(ready),
                    canceled ? RunStatus::kCanceled : RunStatus::kFailed);
  }
  if (SupervisionSignalPending()) {
    // The token names the signal when the watcher saw it first ("…: canceled (SIGTERM)").
    const std::string why = IsCanceled(ctx.cancel)
                                ? CanceledError(*ctx.cancel, "the ranks were not started").message()
                                : "canceled before the ranks started";
    if (cluster) cluster->session()->Stopping(kExitCanceled, why);
    reporter->Error(why);
    record.stop_reason = why;
    record.outcome = std::string(RunOutcomeName(RunOutcome::kCanceled));
    return Finalize(ctx, run, layout, prepared, /*ran=*/nullptr, kExitCanceled,
                    RunStatus::kCanceled);
  }
  // A node that replaces a lost one joins a job whose preflight is over.
  const bool rejoined = cluster != nullptr && cluster->first_attempt() > 1;
  if (job.preflight.enabled && !rejoined) {
    std::optional<PreflightStop> stop = PreflightJob(ctx, *run, layout, prepared);
    if (stop) {
      prepared->pump->CloseChildEnds();
      record.outcome = stop->outcome;
      record.stop_reason = stop->reason;
      return Finalize(ctx, run, layout, prepared, /*ran=*/nullptr, stop->exit_code,
                      stop->canceled ? RunStatus::kCanceled : RunStatus::kFailed);
    }
  }
  if (ctx.options.check_only) {
    prepared->pump->CloseChildEnds();
    record.outcome = "preflight passed";
    return Finalize(ctx, run, layout, prepared, /*ran=*/nullptr, kExitOk, RunStatus::kCompleted);
  }
  // The latest checkpoints (this run's, or resumeFrom's) into the checkpoint folder.
  Status restored = RestoreCheckpoints(ctx, *run, layout);
  if (!restored.ok()) {
    const int code = ExitCodeFor(restored);
    if (cluster) cluster->session()->Stopping(code, restored.message());
    prepared->pump->CloseChildEnds();
    reporter->Error(restored.message());
    record.outcome = "preparation failed";
    record.stop_reason = restored.message();
    return Finalize(
        ctx, run, layout, prepared, /*ran=*/nullptr, code,
        restored.code() == StatusCode::kCanceled ? RunStatus::kCanceled : RunStatus::kFailed);
  }
  RanRanks ran = RunAttempts(ctx, *run, layout, prepared);
  RunStatus status = RunStatus::kFailed;
  if (ran.result.outcome == RunOutcome::kSucceeded) status = RunStatus::kCompleted;
  if (ran.result.outcome == RunOutcome::kCanceled) status = RunStatus::kCanceled;
  return Finalize(ctx, run, layout, prepared, &ran, ran.result.exit_code, status);
}

}  // namespace

int RunJob(const RunOptions& options, Console* out, Console* err) {
  RunReporting reporting(options, err);
  Reporter* reporter = reporting.reporter();
  if (options.fd_limit_failed) {
    reporter->Warning(options.fd_limit_note);
  } else if (!options.fd_limit_note.empty()) {
    reporter->Info(options.fd_limit_note);
  }
  Result<LoadedRun> loaded = LoadRun(options, reporter, [&](const Placement& placement) {
    if (placement.node_count > 1) reporting.LabelNode(placement.node_rank);
  });
  if (!loaded.ok()) {
    reporter->Error(loaded.status().message());
    return ExitCodeFor(loaded.status());
  }
  LoadedRun run = std::move(loaded).value();
  // `trainrun check`: the preflight, with the job file's settings or the defaults.
  if (options.check_only) run.job.preflight.enabled = true;
  if (run.job.preflight.enabled) {
    Status valid = ValidatePreflight(run.job);
    if (!valid.ok()) {
      reporter->Error(valid.message());
      return ExitCodeFor(valid);
    }
  }
  // Probed while the run loads and prepares; the ranks' grace period comes from it.
  StopPlan stop(options);
  RunContext ctx{.options = options,
                 .out = out,
                 .reporter = reporter,
                 .cluster = run.cluster.get(),
                 .stop = &stop};
  if (options.dry_run) {
    LocalRunLayout layout = LayOutRun(options, run.placement, &run.job);
    return DryRun(ctx, run, layout);
  }
  // From here until the process ends a SIGTERM, SIGINT or SIGHUP cancels `cancel`:
  // Preparing gives up soon after; the supervisor reads the signal itself later.
  CancelToken cancel;
  SignalCancel watch(&cancel, [&stop](int signal, TimePoint at) { stop.NoteSignal(signal, at); });
  if (!watch.start_error().ok()) reporter->Warning(watch.start_error().message());
  ctx.cancel = &cancel;
  PreparedRun prepared;
  if (run.cluster) {
    Status joined = JoinCluster(options, reporter, &run, &prepared.binding);
    if (!joined.ok()) {
      // Nothing is on disk yet (the run id comes from the rendezvous), so there is
      // no record to write, as for a rendezvous that fails.
      if (cancel.canceled() || SupervisionSignalPending()) {
        reporter->Error(fmt::format("canceled by {} while joining the other nodes: {}",
                                    cancel.canceled() ? cancel.reason() : "a signal",
                                    joined.message()));
        return kExitCanceled;
      }
      reporter->Error(joined.message());
      return ExitCodeFor(joined);
    }
  }
  if (run.cluster) {
    // Another node's failure or stop while this one prepares cuts this node's
    // preparation short too (a snapshot, a download) instead of finishing it for
    // nothing; the supervisor's handler replaces this one once ranks run.
    run.cluster->session()->SetStopHandler(
        [&cancel](const StopNotice&) { cancel.Cancel(std::string(kJobStopCancel)); });
  }
  LocalRunLayout layout = LayOutRun(options, run.placement, &run.job);
  Status created = CreateRunDirectory(run, layout, &reporting);
  if (!created.ok()) {
    reporter->Error(created.message());
    if (run.cluster) run.cluster->session()->WaitForStart(created, ExitCodeFor(created));
    return ExitCodeFor(created);
  }
  const bool keeps_job_record = !run.cluster || run.cluster->is_head();
  RunJournal journal(StartRunRecord(run.job, run.cluster.get()), layout.record(), run.history.get(),
                     keeps_job_record, &reporting);
  journal.ReserveSpace();
  ctx.journal = &journal;
  return PrepareRunAndFinalize(ctx, &run, layout, &prepared);
}

}  // namespace trainrun
