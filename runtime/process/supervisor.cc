#include "runtime/process/supervisor.h"

#include <signal.h>

#include <algorithm>

#include <fmt/format.h>

namespace trainrun {

std::string_view RunOutcomeName(RunOutcome outcome) {
  switch (outcome) {
    case RunOutcome::kSucceeded: return "succeeded";
    case RunOutcome::kRankFailed: return "rank failed";
    case RunOutcome::kTimedOut: return "timed out";
    case RunOutcome::kCanceled: return "canceled";
    case RunOutcome::kStopped: return "stopped";
  }
  return "unknown";
}

std::string FailureHint(const ExitStatus& status) {
  if (status.signal == SIGKILL || (status.signal == 0 && status.code == 128 + SIGKILL)) {
    return "SIGKILL that trainrun did not send usually comes from the kernel's "
           "out-of-memory killer: check `dmesg` or the container's memory limit, and "
           "reduce the batch size or the number of data-loader workers";
  }
  return {};
}

Supervisor::Supervisor(ProcessSet* processes, Reporter* reporter, SupervisorOptions options)
    : processes_(processes), reporter_(reporter), options_(std::move(options)) {}

void Supervisor::RequestStop(int exit_code, std::string reason) {
  {
    std::lock_guard lock(stop_mu_);
    if (stop_request_) return;
    stop_request_.emplace(exit_code, std::move(reason));
  }
  processes_->Interrupt();
}

void Supervisor::BeginStop(int signal, std::string reason) {
  if (stopping_) return;
  stopping_ = true;
  result_.stop_reason = std::move(reason);
  kill_deadline_ = processes_->clock()->Now() + options_.grace_period;
  if (options_.on_stop) options_.on_stop(result_.outcome, result_.exit_code, result_.stop_reason);
  if (!live_.empty()) {
    reporter_->Info(fmt::format("stopping {} rank(s) with {} ({}); SIGKILL after {:.0f} s",
                                live_.size(), SignalName(signal), result_.stop_reason,
                                ToSeconds(options_.grace_period)));
  }
  for (auto& [pid, live] : live_) {
    result_.ranks[live.index].stopped_by_trainrun = true;
    Status s = processes_->SignalGroup(pid, signal);
    if (!s.ok()) reporter_->Warning(s.message());
  }
}

void Supervisor::KillAll() {
  killed_ = true;
  for (auto& [pid, live] : live_) {
    const RankResult& rank = result_.ranks[live.index];
    reporter_->Warning(fmt::format("rank {} (pid {}) still running after the grace period; "
                                   "sending SIGKILL",
                                   rank.rank, pid));
    result_.killed_after_grace = true;
    Status s = processes_->SignalGroup(pid, SIGKILL);
    if (!s.ok()) reporter_->Warning(s.message());
  }
}

void Supervisor::OnExit(int pid, const ExitStatus& status) {
  auto it = std::find_if(live_.begin(), live_.end(),
                         [pid](const auto& entry) { return entry.first == pid; });
  if (it == live_.end()) {
    if (options_.on_helper_exit) options_.on_helper_exit(pid, status);
    return;
  }
  Live live = it->second;
  live_.erase(it);
  RankResult& rank = result_.ranks[live.index];
  rank.status = status;
  rank.seconds = ToSeconds(processes_->clock()->Now() - live.started);
  reporter_->RankExited(rank.rank, status, rank.stopped_by_trainrun);
  if (status.success() || stopping_) return;

  RankFailure failure;
  failure.rank = rank.rank;
  failure.pid = pid;
  failure.status = status;
  failure.reason = status.HowItEnded();
  failure.hint = FailureHint(status);
  result_.outcome = RunOutcome::kRankFailed;
  result_.exit_code = status.ToExitCode();
  result_.failure = failure;
  if (options_.on_rank_failed) options_.on_rank_failed(failure);
  BeginStop(SIGTERM, fmt::format("rank {} {}", rank.rank, failure.reason));
}

void Supervisor::OnSignal(int signal) {
  if (signal != SIGTERM && signal != SIGINT && signal != SIGHUP) return;
  if (stopping_) {
    if (!killed_) {
      reporter_->Warning(fmt::format("{} again while stopping: killing the ranks now",
                                     SignalName(signal)));
      KillAll();
    }
    return;
  }
  result_.outcome = RunOutcome::kCanceled;
  result_.exit_code = kExitCodeCanceled;
  result_.cancel_signal = signal;
  // SIGHUP means the controlling terminal went away; the ranks get SIGTERM.
  BeginStop(signal == SIGHUP ? SIGTERM : signal,
            fmt::format("trainrun received {}", SignalName(signal)));
}

void Supervisor::Start(std::vector<RankLaunch> launches) {
  Clock* clock = processes_->clock();
  started_ = clock->Now();
  result_.ranks.reserve(launches.size());

  for (RankLaunch& launch : launches) {
    RankResult rank;
    rank.rank = launch.rank;
    result_.ranks.push_back(rank);
    if (stopping_) continue;  // a previous rank could not start
    Result<int> pid = processes_->Spawn(launch.spec);
    if (!pid.ok()) {
      RankFailure failure;
      failure.rank = launch.rank;
      failure.status = ExitStatus::CouldNotStart(pid.status());
      failure.reason = fmt::format("could not start: {}", pid.status().message());
      result_.ranks.back().status = failure.status;
      result_.outcome = RunOutcome::kRankFailed;
      result_.exit_code = failure.status.code;
      result_.failure = failure;
      reporter_->Error(fmt::format("rank {} {}", launch.rank, failure.reason));
      if (options_.on_rank_failed) options_.on_rank_failed(failure);
      BeginStop(SIGTERM, fmt::format("rank {} could not start", launch.rank));
      continue;
    }
    result_.ranks.back().pid = *pid;
    result_.ranks.back().started = true;
    live_.emplace_back(*pid, Live{result_.ranks.size() - 1, clock->Now()});
    reporter_->RankStarted(launch.rank, *pid);
  }
}

SupervisionResult Supervisor::Wait() {
  Clock* clock = processes_->clock();
  std::optional<TimePoint> timeout;
  if (options_.max_run_duration) timeout = started_ + *options_.max_run_duration;

  while (!live_.empty()) {
    std::optional<TimePoint> deadline;
    if (stopping_ && !killed_) {
      deadline = kill_deadline_;
    } else if (!stopping_) {
      deadline = timeout;
    }
    for (const ProcessEvent& event : processes_->Wait(deadline)) {
      switch (event.kind) {
        case ProcessEvent::Kind::kExited:
          OnExit(event.pid, event.status);
          break;
        case ProcessEvent::Kind::kSignal:
          OnSignal(event.signal);
          break;
        case ProcessEvent::Kind::kInterrupt: {
          std::optional<std::pair<int, std::string>> request;
          {
            std::lock_guard lock(stop_mu_);
            request = stop_request_;
          }
          if (request && !stopping_) {
            result_.outcome = RunOutcome::kStopped;
            result_.exit_code = request->first;
            BeginStop(SIGTERM, request->second);
          }
          break;
        }
      }
    }
    const TimePoint now = clock->Now();
    if (!stopping_ && timeout && now >= *timeout) {
      result_.outcome = RunOutcome::kTimedOut;
      result_.exit_code = kExitCodeTimeout;
      BeginStop(SIGTERM, fmt::format("maxRunDurationSeconds ({:.0f} s) exceeded",
                                     ToSeconds(*options_.max_run_duration)));
    }
    if (stopping_ && !killed_ && now >= kill_deadline_ && !live_.empty()) KillAll();
  }

  // Whatever a rank left in its own process group goes with it.
  for (const RankResult& rank : result_.ranks) {
    if (rank.started) processes_->SignalGroup(rank.pid, SIGKILL).IgnoreError();
  }
  return result_;
}

}  // namespace trainrun
