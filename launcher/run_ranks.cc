#include "launcher/run_ranks.h"

#include <signal.h>

#include <atomic>
#include <fstream>

#include <fmt/format.h>

#include "base/net_util.h"
#include "base/text.h"
#include "launcher/exit_codes.h"
#include "launcher/mpi_run.h"
#include "launcher/run_uploads.h"
#include "runtime/mpi/mpi_supervisor.h"

namespace trainrun {

int64_t CgroupOomKills() {
  std::ifstream events("/sys/fs/cgroup/memory.events");
  std::string key;
  int64_t value;
  while (events >> key >> value) {
    if (key == "oom_kill") return value;
  }
  return -1;
}

namespace {

// The stop timing in the system log and run.json (details.stop), and a warning when
// a --grace-period leaves no time to upload under the stop budget.
void ReportStopTiming(const RunContext& ctx) {
  StopPlan* stop = ctx.stop;
  const StopTiming& timing = stop->timing();
  ctx.reporter->Info(fmt::format("stopping: {}", stop->Describe()));
  nlohmann::json details = {{"gracePeriodSeconds", ToSeconds(timing.grace_period)},
                            {"unkillableTimeoutSeconds", ToSeconds(timing.unkillable_timeout)}};
  if (timing.budget) {
    details["stopTimeoutSeconds"] = ToSeconds(*timing.budget);
    details["stopTimeoutSource"] = stop->source();
    if (!timing.grace_from_budget &&
        timing.grace_period + timing.uploads_margin >= *timing.budget) {
      ctx.reporter->Warning(fmt::format(
          "--grace-period {:g} s leaves no time to upload before the SIGKILL {:g} s after a "
          "SIGTERM ({}): a rank that ignores SIGTERM costs this node its outputs; leave "
          "--grace-period out to have it fitted",
          ToSeconds(timing.grace_period), ToSeconds(*timing.budget), stop->source()));
    }
  }
  ctx.journal->record().details["stop"] = std::move(details);
}

}  // namespace

RanRanks RunRanks(const RunContext& ctx, const LoadedRun& run, const LocalRunLayout& layout,
                  PreparedRun* prepared, const AttemptStart& attempt) {
  const bool first = attempt.first_here;
  const JobConfig& job = run.job;
  RanRanks ran;
  std::atomic<int64_t> failure_time_ms{0};  // written by the supervision callbacks
  SupervisorOptions supervision;
  const StopTiming& timing = ctx.stop->timing();
  supervision.grace_period = timing.grace_period;
  supervision.unkillable_timeout = timing.unkillable_timeout;
  if (first) ReportStopTiming(ctx);
  // When a cancel began stopping the ranks: the scheduler's clock started then at
  // the latest, should the signal watcher have missed the signal.
  std::atomic<int64_t> cancel_ticks{0};
  if (job.max_run_duration_seconds) {
    supervision.max_run_duration = std::chrono::seconds(*job.max_run_duration_seconds);
  }
  if (attempt.time_left) supervision.max_run_duration = attempt.time_left;
  ClusterSession* session = ctx.cluster ? ctx.cluster->session() : nullptr;
  if (session != nullptr) {
    // The other nodes hear of this node's first failure, cancel or time limit at once.
    supervision.on_rank_failed = [&failure_time_ms, session](const RankFailure& failure) {
      failure_time_ms = WallMillis();
      session->RankFailed(failure);
    };
  } else {
    supervision.on_rank_failed = [&failure_time_ms](const RankFailure&) {
      failure_time_ms = WallMillis();
    };
  }
  supervision.on_stop = [session, &cancel_ticks](RunOutcome outcome, int code,
                                                 const std::string& reason) {
    if (outcome == RunOutcome::kCanceled) {
      cancel_ticks = SystemClock()->Now().time_since_epoch().count();
    }
    if (session != nullptr &&
        (outcome == RunOutcome::kCanceled || outcome == RunOutcome::kTimedOut)) {
      session->Stopping(code, reason);
    }
  };
  // A data mount's rclone that ends while the ranks run is an error that names the
  // data: the ranks are stopped (exit 66, their input is gone) and, on several nodes,
  // the other nodes with them. Set once the Supervisor exists; MPI jobs only warn.
  Supervisor* stoppable = nullptr;
  supervision.on_helper_exit = [data = prepared->data.get(), &stoppable, session](
                                   int pid, const ExitStatus& status) {
    const std::string lost = data->HelperExited(pid, status);
    if (lost.empty() || stoppable == nullptr) return;
    if (session != nullptr) session->Stopping(kExitNoInput, lost);
    stoppable->RequestStop(kExitNoInput, lost);
  };
  // Parameter servers on several nodes end when the head has heard every node's
  // workers are done (ClusterSession::WorkersDone); on one node the supervisor
  // stops them itself.
  const bool servers = job.tensorflow.roles && job.tensorflow.roles->ps > 0;
  if (session != nullptr && servers) {
    supervision.on_workers_done = [session] { session->WorkersDone(); };
  }
  supervision.on_spawned = [pump = prepared->pump.get()](int rank) { pump->CloseChildEnds(rank); };
  ran.oom_kills_before = CgroupOomKills();
  // A preemption notice while the ranks run stops them as a SIGTERM does.
  std::unique_ptr<PreemptionWatch> preemption = StartPreemptionWatch(ctx, job);
  std::vector<RankLaunch>& launches = prepared->plan.launches;
  // The Running record (run.json, locally and in history), the live upload and the
  // checkpoint watch: after the ranks started (issue 15: the record's upload is off
  // the launch path), except for MPI jobs, whose mpirun call returns at the end.
  // The run id was claimed before Preparing ended, so no rank starts without it.
  auto enter_running = [&] {
    ctx.journal->Save();
    ran.live = StartLiveUpload(ctx, run, layout);
    // Kept across attempts, as the live upload is (run_attempts.h).
    ran.checkpoints = CheckpointSync::Start(ctx, run, layout);
  };
  if (first) {
    ctx.journal->EnterPhase(RunStatus::kRunning);
    // Held since it was chosen (rank_plan.h, ClusterSession::ReleaseMasterPort):
    // free now for rank 0 to bind. Later attempts use the same port again.
    prepared->plan.master_port_hold.Release();
    if (session != nullptr) session->ReleaseMasterPort();
  }
  ctx.reporter->Notice(fmt::format("run {}: {} rank(s) of {}", job.run_id, launches.size(),
                                   ShellJoin(ctx.journal->record().command)));
  // An attempt starts with its ranks (run.json's attempts[].start), not when it was
  // decided: every node may have been preparing it, a rejoining one from scratch.
  std::vector<AttemptRecord>& attempts = ctx.journal->record().attempts;
  if (!attempts.empty()) attempts.back().start = SystemClock()->WallNow();
  if (job.communicator == Communicator::kMpi) {
    if (first) enter_running();
    MpiRunInputs mpi;
    mpi.assignment = &prepared->plan.assignment;
    mpi.node_rank = run.node_rank();
    mpi.launches = std::move(launches);
    mpi.mpirun_stdout_fd = prepared->mpirun_pipes.stdout_fd;
    mpi.mpirun_stderr_fd = prepared->mpirun_pipes.stderr_fd;
    mpi.processes = prepared->processes.get();
    mpi.reporter = ctx.reporter;
    mpi.supervision = supervision;
    mpi.session = session;
    mpi.rsh_key_hex = ctx.cluster ? ctx.cluster->RshKeyHex() : "";
    mpi.control_port = ctx.options.control_port;
    mpi.base_env = EnvironmentForRanks();
    mpi.attempt = attempt.attempt;
    ran.result = RunMpi(std::move(mpi));
    prepared->pump->CloseChildEnds();
  } else {
    Supervisor supervisor(prepared->processes.get(), ctx.reporter, supervision);
    stoppable = &supervisor;
    if (session != nullptr) {
      session->SetStopHandler([&supervisor](const StopNotice& stop) {
        supervisor.RequestStop(stop.exit_code, stop.reason);
      });
      if (servers) {
        session->SetServersStopHandler(
            [&supervisor] { supervisor.StopServers("every worker of the job exited 0"); });
      }
    }
    supervisor.Start(std::move(launches));
    prepared->pump->CloseChildEnds();
    if (first) enter_running();
    ran.result = supervisor.Wait();
    stoppable = nullptr;
    if (session != nullptr) {
      session->SetStopHandler({});
      session->SetServersStopHandler({});
    }
  }
  preemption.reset();
  ran.failure_time_ms = failure_time_ms;
  if (ran.result.outcome == RunOutcome::kCanceled && cancel_ticks != 0) {
    ctx.stop->NoteSignal(ran.result.cancel_signal, TimePoint(Duration(cancel_ticks.load())));
  }
  return ran;
}

void ReportRankFailure(const RunContext& ctx, int node_rank, const LocalRunLayout& layout,
                       const std::string& history_run, const LogPump* pump, RanRanks* ran,
                       bool restarted) {
  if (!ran->result.failure) return;
  RankFailure& failure = *ran->result.failure;
  if (pump) failure.stderr_tail = pump->StderrTail(failure.rank);
  if (failure.status.signal == SIGKILL) {
    const int64_t before = ran->oom_kills_before;
    int64_t after = CgroupOomKills();
    if (before >= 0 && after > before) {
      failure.hint = fmt::format(
          "the kernel's out-of-memory killer killed {} process(es) in this container during the "
          "run (cgroup memory.events oom_kill {} -> {}): give the job more memory or use less",
          after - before, before, after);
    }
  }
  FailureRecord record;
  record.rank = failure.rank;
  record.node_rank = node_rank;
  record.host = LocalHostName();
  record.pid = failure.pid;
  record.exit_code = failure.status.ToExitCode();
  record.signal = failure.status.signal;
  record.reason = fmt::format("rank {} {}", failure.rank, failure.reason);
  record.hint = failure.hint;
  record.stderr_tail = failure.stderr_tail;
  const bool mpirun = failure.rank == kMpirunRank;
  record.log_file = mpirun ? fmt::format("{}/{}", kSystemLogsDir, kMpirunLogName)
                           : fmt::format("{}/{}", kUserLogsDir, RankLogName(failure.rank));
  ctx.journal->record().failure = record;

  std::string summary = fmt::format("rank {} on {} (node {}) {}", failure.rank, record.host,
                                    node_rank, failure.reason);
  if (!failure.stderr_tail.empty()) {
    summary += fmt::format("\nlast lines of rank {}'s stderr:", failure.rank);
    for (const std::string& line : failure.stderr_tail) summary += "\n  | " + line;
  }
  if (!failure.hint.empty()) summary += "\nhint: " + failure.hint;
  summary += fmt::format("\nfull log: {}{} (on this node: {})", history_run, record.log_file,
                         mpirun ? layout.mpirun_log() : layout.rank_log(failure.rank));
  // An "error:" for a failure that is retried would read as the run's end, before
  // the line that says it restarts.
  if (restarted) {
    ctx.reporter->Notice(summary);
  } else {
    ctx.reporter->Error(summary);
  }
}

}  // namespace trainrun
