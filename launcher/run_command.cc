// `trainrun run`: the phases in order, and what each failure does to the run. The
// phases themselves are in run_load.cc, run_prepare.cc, run_ranks.cc,
// run_finalize.cc and dry_run.cc.
#include "launcher/run_command.h"

#include <fmt/format.h>

#include "launcher/dry_run.h"
#include "launcher/exit_codes.h"
#include "launcher/rank_plan.h"
#include "launcher/run_context.h"
#include "launcher/run_finalize.h"
#include "launcher/run_load.h"
#include "launcher/run_prepare.h"
#include "launcher/run_ranks.h"
#include "runtime/process/process_posix.h"

namespace trainrun {

namespace {

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
  // The first record claims the run id, exclusively: of several starts with the same
  // id at once (on other hosts, with other --workdirs), one goes on; the others stop
  // here, having written nothing to history.
  Status writable =
      cluster && !cluster->is_head() ? Status::Ok() : run->history->CreateRecord(record);
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
                    "the system log is in {}",
                    run->store->Uri(), writable.message(), layout.system_logs()));
    if (cluster) {
      cluster->session()->WaitForStart(UploadFailedError(writable.message()), kExitUploadFailed);
    }
    return kExitUploadFailed;
  }
  reporter->Notice(
      fmt::format("run {} (experiment {}) in {}", job.run_id, job.experiment_name, layout.root));
  Status ready = Prepare(ctx, *run, layout, prepared);
  if (cluster) {
    // Every node prepared (or one failed, or one was canceled): start, or stop together.
    std::optional<StopNotice> stop =
        cluster->session()->WaitForStart(ready, ready.ok() ? 0 : ExitCodeFor(ready));
    if (stop && ready.ok()) {
      reporter->Error(fmt::format("the ranks were not started: {}", stop->reason));
      record.outcome = stop->exit_code == kExitCanceled ? "canceled" : "stopped";
      record.stop_reason = stop->reason;
      return Finalize(ctx, run, layout, prepared, /*ran=*/nullptr, stop->exit_code,
                      stop->exit_code == kExitCanceled ? RunStatus::kCanceled : RunStatus::kFailed);
    }
  }
  if (!ready.ok()) {
    reporter->Error(ready.message());
    record.outcome = "preparation failed";
    record.stop_reason = ready.message();
    return Finalize(ctx, run, layout, prepared, /*ran=*/nullptr, ExitCodeFor(ready),
                    RunStatus::kFailed);
  }
  if (SupervisionSignalPending()) {
    if (cluster) cluster->session()->Stopping(kExitCanceled, "canceled before the ranks started");
    reporter->Error("canceled before the ranks started");
    record.outcome = std::string(RunOutcomeName(RunOutcome::kCanceled));
    return Finalize(ctx, run, layout, prepared, /*ran=*/nullptr, kExitCanceled,
                    RunStatus::kCanceled);
  }
  RanRanks ran = RunRanks(ctx, *run, layout, prepared);
  RunStatus status = RunStatus::kFailed;
  if (ran.result.outcome == RunOutcome::kSucceeded) status = RunStatus::kCompleted;
  if (ran.result.outcome == RunOutcome::kCanceled) status = RunStatus::kCanceled;
  return Finalize(ctx, run, layout, prepared, &ran, ran.result.exit_code, status);
}

}  // namespace

int RunJob(const RunOptions& options, Console* out, Console* err) {
  RunReporting reporting(options, err);
  Reporter* reporter = reporting.reporter();
  Result<LoadedRun> loaded = LoadRun(options, reporter);
  if (!loaded.ok()) {
    reporter->Error(loaded.status().message());
    return ExitCodeFor(loaded.status());
  }
  LoadedRun run = std::move(loaded).value();
  RunContext ctx{
      .options = options, .out = out, .reporter = reporter, .cluster = run.cluster.get()};
  if (options.dry_run) {
    LocalRunLayout layout = LayOutRun(options, run.placement, &run.job);
    return DryRun(ctx, run, layout);
  }
  PreparedRun prepared;
  if (run.cluster) {
    Status joined = JoinCluster(options, reporter, &run, &prepared.binding);
    if (!joined.ok()) {
      reporter->Error(joined.message());
      return SupervisionSignalPending() ? kExitCanceled : ExitCodeFor(joined);
    }
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
  ctx.journal = &journal;
  return PrepareRunAndFinalize(ctx, &run, layout, &prepared);
}

}  // namespace trainrun
