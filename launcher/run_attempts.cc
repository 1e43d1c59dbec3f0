#include "launcher/run_attempts.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <thread>

#include <fmt/format.h>

#include "launcher/exit_codes.h"
#include "launcher/run_finalize.h"
#include "runtime/process/process_posix.h"
#include "runtime/process/rank_env.h"

namespace trainrun {

namespace {

// How often the backoff between attempts looks for a cancel.
constexpr auto kBackoffPoll = std::chrono::milliseconds(50);

// Appends `line` to every rank's log. The ranks of the attempt have not started,
// so the line comes before anything they write.
Status MarkLogs(const LocalRunLayout& layout, const std::vector<RankLaunch>& launches,
                const std::string& line) {
  const std::string text = line + "\n";
  for (const RankLaunch& launch : launches) {
    const std::string path = layout.rank_log(launch.rank);
    const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) return ErrnoStatus(errno, path);
    const ssize_t written = write(fd, text.data(), text.size());
    const int err = errno;
    close(fd);
    if (written != static_cast<ssize_t>(text.size())) {
      return written < 0 ? ErrnoStatus(err, path) : IoError(fmt::format("{}: short write", path));
    }
  }
  return Status::Ok();
}

// Makes attempt `attempt` ready to start: see run_attempts.h. After this node's
// first attempt (`again`), `first_launches` are the launches as Prepare planned
// them (their pipes are replaced here).
Status PrepareAttempt(const RunContext& ctx, const LoadedRun& run, const LocalRunLayout& layout,
                      const std::vector<RankLaunch>& first_launches, int attempt, bool again,
                      PreparedRun* prepared) {
  const RestartPolicy& policy = run.job.restarts;
  if (!again && attempt > 1) {
    // A node that replaces a lost one: its first attempt is a later one.
    for (RankLaunch& launch : prepared->plan.launches) {
      SetAttemptVariables(attempt, run.job.environment_variables, &launch.spec.env);
    }
  }
  if (again) {
    // The last attempt's output is whole in the logs before this attempt's marker.
    if (!prepared->pump->WaitDrained(kLogDrainTimeout)) {
      ctx.reporter->Warning(fmt::format(
          "a process outside the ranks' process groups still holds a rank's output of attempt "
          "{} open; what it writes from now on is not in the logs",
          attempt - 1));
    }
    prepared->pump.reset();
    prepared->plan.launches = first_launches;
    for (RankLaunch& launch : prepared->plan.launches) {
      SetAttemptVariables(attempt, run.job.environment_variables, &launch.spec.env);
    }
  }
  if (policy.enabled()) {
    Status marked = MarkLogs(layout, prepared->plan.launches,
                             AttemptMarker(attempt, policy.max_restarts, SystemClock()->WallNow()));
    if (!marked.ok()) {
      ctx.reporter->Warning(fmt::format("attempt {}'s marker line is not in the ranks' logs: {}",
                                        attempt, marked.message()));
    }
  }
  if (again) TR_RETURN_IF_ERROR(StartLogPump(ctx, run, layout, prepared));
  return Status::Ok();
}

// The head's verdict on an attempt (ClusterSession): whether another follows, and
// how the attempt ended in its run.json entry (its `next` is the decision's why).
RestartDecision ApplyVerdict(const AttemptVerdict& verdict, AttemptRecord* entry) {
  entry->outcome = verdict.outcome;
  entry->exit_code = verdict.exit_code;
  entry->failed_rank = verdict.failed_rank;
  entry->failed_node_rank = verdict.failed_node_rank;
  entry->reason = verdict.reason;
  RestartDecision decision;
  decision.restart = verdict.restart;
  decision.wait = std::chrono::milliseconds(verdict.wait_ms);
  decision.why = verdict.why;
  return decision;
}

// How attempt `attempt` ended, recorded, and whether another one follows: see
// run_attempts.h. On several nodes the head decides for the job
// (ClusterSession::EndAttempt), from the attempt's earliest failure on any node.
RestartDecision RanksFinished(const RunContext& ctx, const LoadedRun& run,
                              const LocalRunLayout& layout, int attempt, PreparedRun* prepared,
                              RanRanks* ran) {
  const RestartPolicy& policy = run.job.restarts;
  const SupervisionResult& result = ran->result;
  if (!policy.enabled()) return DecideRestart(policy, attempt, result.outcome, result.exit_code);
  RunRecord& record = ctx.journal->record();
  AttemptRecord& entry = record.attempts.back();
  entry.end = SystemClock()->WallNow();
  RestartDecision decision;
  ClusterSession* session = ctx.cluster ? ctx.cluster->session() : nullptr;
  if (session != nullptr) {
    decision = ApplyVerdict(session->EndAttempt(attempt, policy), &entry);
    if (entry.reason.empty()) entry.reason = result.stop_reason;
  } else {
    decision = DecideRestart(policy, attempt, result.outcome, result.exit_code);
    entry.outcome = std::string(RunOutcomeName(result.outcome));
    entry.exit_code = result.exit_code;
    if (result.failure) {
      entry.failed_rank = result.failure->rank;
      entry.failed_node_rank = run.node_rank();
      entry.reason = fmt::format("rank {} {}", result.failure->rank, result.failure->reason);
    } else {
      entry.reason = result.stop_reason;
    }
  }
  entry.next = decision.why;
  if (decision.restart) {
    // The summary as a run without restarts gives it at its end, with the stderr
    // tail: the failure is the user's to see even when the next attempt succeeds.
    // On several nodes, the node whose rank failed gives it.
    prepared->pump->WaitDrained(kLogDrainTimeout);
    const JobConfig& job = run.job;
    ReportRankFailure(ctx, run.node_rank(), layout,
                      run.store->Uri() + "/" + RunKey{job.experiment_name, job.run_id}.Prefix(),
                      prepared->pump.get(), ran, /*restarted=*/true);
    record.failure.reset();
    ctx.reporter->Notice(fmt::format("attempt {} failed (exit code {}): {}", attempt,
                                     entry.exit_code, decision.why));
  } else if (entry.outcome != RunOutcomeName(RunOutcome::kSucceeded)) {
    ctx.reporter->Notice(
        fmt::format("attempt {} ended (exit code {}), {}", attempt, entry.exit_code, decision.why));
  }
  ctx.journal->Save();
  return decision;
}

// An attempt the head ended before its ranks started (a node lost between
// attempts: ClusterSession::WaitForAttemptStart), recorded as RanksFinished
// records one whose ranks ran; its verdict is a restart.
RestartDecision EndedBeforeStart(const RunContext& ctx, const AttemptVerdict& verdict,
                                 PreparedRun* prepared, RanRanks* ran) {
  // No rank got the pipes made for the attempt: the next one's drain must not wait
  // for their write ends.
  if (prepared->pump) prepared->pump->CloseChildEnds();
  ran->result.outcome = RunOutcome::kStopped;
  ran->result.exit_code = verdict.exit_code;
  ran->result.stop_reason = verdict.reason;
  AttemptRecord& entry = ctx.journal->record().attempts.back();
  entry.end = SystemClock()->WallNow();
  const RestartDecision decision = ApplyVerdict(verdict, &entry);
  entry.next = decision.why;
  ctx.journal->Save();
  ctx.reporter->Notice(fmt::format("attempt {} ended before its ranks started ({}): {}",
                                   verdict.attempt, verdict.reason, verdict.why));
  return decision;
}

// Waits `wait` before the next attempt. False when trainrun was canceled (a
// SIGTERM, SIGINT or SIGHUP) first.
bool WaitBeforeNextAttempt(const RunContext& ctx, Duration wait) {
  const TimePoint until = SystemClock()->Now() + wait;
  while (true) {
    if (IsCanceled(ctx.cancel) || SupervisionSignalPending()) return false;
    const TimePoint now = SystemClock()->Now();
    if (now >= until) return true;
    std::this_thread::sleep_for(std::min<Duration>(kBackoffPoll, until - now));
  }
}

}  // namespace

std::string AttemptMarker(int attempt, int max_restarts, WallTime started) {
  return fmt::format("=== trainrun: attempt {} of at most {} ({}) ===", attempt, max_restarts + 1,
                     FormatIso8601(started));
}

RanRanks RunAttempts(const RunContext& ctx, const LoadedRun& run, const LocalRunLayout& layout,
                     PreparedRun* prepared) {
  const JobConfig& job = run.job;
  const RestartPolicy& policy = job.restarts;
  RunRecord& record = ctx.journal->record();
  // The launches as planned, for every attempt after the first; only kept when
  // there may be one.
  std::vector<RankLaunch> first_launches;
  if (policy.enabled()) first_launches = prepared->plan.launches;
  const TimePoint first_start = SystemClock()->Now();
  std::unique_ptr<LiveUploader> live;
  std::unique_ptr<CheckpointSync> checkpoints;
  ClusterSession* session = ctx.cluster ? ctx.cluster->session() : nullptr;
  // 1, or for a node that replaces a lost one, the attempt it joins.
  const int first = ctx.cluster ? ctx.cluster->first_attempt() : 1;
  for (int attempt = first;; ++attempt) {
    AttemptStart start;
    start.attempt = attempt;
    start.first_here = attempt == first;
    if (attempt > first && job.max_run_duration_seconds) {
      const Duration limit = std::chrono::seconds(*job.max_run_duration_seconds);
      start.time_left = std::max<Duration>(limit - (SystemClock()->Now() - first_start),
                                           std::chrono::milliseconds(1));
    }
    if (policy.enabled()) {
      AttemptRecord entry;
      entry.attempt = attempt;
      entry.start = SystemClock()->WallNow();
      record.attempts.push_back(std::move(entry));
    }
    // An attempt that ends before its ranks start: the run ends with it.
    auto not_started = [&](RunOutcome outcome, int exit_code, const std::string& why) {
      // No rank got the pipes made for it: their write ends are trainrun's alone, and
      // Finalizing's drain would wait for them and blame "a process outside the ranks".
      if (prepared->pump) prepared->pump->CloseChildEnds();
      RanRanks ended;
      ended.live = std::move(live);
      ended.checkpoints = std::move(checkpoints);
      ended.result.outcome = outcome;
      ended.result.exit_code = exit_code;
      ended.result.stop_reason = why;
      if (!record.attempts.empty()) {
        AttemptRecord& entry = record.attempts.back();
        entry.end = SystemClock()->WallNow();
        entry.outcome = std::string(RunOutcomeName(outcome));
        entry.exit_code = exit_code;
        entry.reason = why;
      }
      ctx.reporter->Error(why);
      return ended;
    };
    Status ready =
        PrepareAttempt(ctx, run, layout, first_launches, attempt, attempt > first, prepared);
    std::optional<AttemptVerdict> ended;  // before its ranks started
    if (attempt > first && session != nullptr) {
      // Every node starts the attempt together, as the first (WaitForStart); a node
      // that could not prepare it stops the job. (A node's first attempt was
      // started so after its Prepare, run_command.cc.)
      std::optional<StopNotice> stop =
          session->WaitForAttemptStart(attempt, ready, kExitInternal, &ended);
      if (stop && ready.ok()) {
        const bool canceled = stop->exit_code == kExitCanceled;
        return not_started(canceled ? RunOutcome::kCanceled : RunOutcome::kStopped, stop->exit_code,
                           fmt::format("attempt {} was not started: {}", attempt, stop->reason));
      }
    }
    RanRanks ran;
    RestartDecision decision;
    if (ended) {
      decision = EndedBeforeStart(ctx, *ended, prepared, &ran);
    } else if (!ready.ok()) {
      return not_started(
          RunOutcome::kStopped, kExitInternal,
          fmt::format("attempt {} could not be prepared: {}", attempt, ready.message()));
    } else {
      if (attempt > 1) {
        ctx.reporter->Notice(fmt::format("attempt {} of at most {}: starting the ranks again",
                                         attempt, policy.max_restarts + 1));
      }
      ran = RunRanks(ctx, run, layout, prepared, start);
      if (attempt == first) {
        live = std::move(ran.live);
        checkpoints = std::move(ran.checkpoints);
      }
      decision = RanksFinished(ctx, run, layout, attempt, prepared, &ran);
    }
    if (decision.restart && WaitBeforeNextAttempt(ctx, decision.wait)) continue;
    ran.live = std::move(live);
    ran.checkpoints = std::move(checkpoints);
    if (decision.restart) {
      // Canceled while waiting to restart: the run ends as canceled, as it would
      // had the signal come while the ranks ran; the other nodes stop with it.
      const std::string why =
          fmt::format("canceled by {} before attempt {} started",
                      IsCanceled(ctx.cancel) ? ctx.cancel->reason() : "a signal", attempt + 1);
      if (session != nullptr)
        session->WaitForStart(Status(StatusCode::kCanceled, why), kExitCanceled);
      ran.result.outcome = RunOutcome::kCanceled;
      ran.result.exit_code = kExitCanceled;
      ran.result.stop_reason = why;
      ran.result.failure.reset();
      record.attempts.back().next += "; " + why;
      record.stop_reason = why;
    }
    return ran;
  }
}

}  // namespace trainrun
