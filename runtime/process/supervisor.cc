#include "runtime/process/supervisor.h"

#include <signal.h>

#include <algorithm>

#include <fmt/format.h>

namespace trainrun {

std::string FailureHint(const ExitStatus& status) {
  if (status.signal == SIGKILL || (status.signal == 0 && status.code == 128 + SIGKILL)) {
    return "SIGKILL that trainrun did not send usually comes from the kernel's "
           "out-of-memory killer: check `dmesg` or the container's memory limit, and "
           "reduce the batch size or the number of data-loader workers";
  }
  return {};
}

Supervisor::Supervisor(ProcessSet* processes, Reporter* reporter, SupervisorOptions options)
    : processes_(processes),
      reporter_(reporter),
      options_(std::move(options)),
      policy_(processes->clock(), options_.grace_period, options_.max_run_duration,
              options_.unkillable_timeout) {}

void Supervisor::RequestStop(int exit_code, std::string reason) {
  {
    std::lock_guard lock(stop_mu_);
    if (stop_request_) return;
    stop_request_.emplace(exit_code, std::move(reason));
  }
  processes_->Interrupt();
}

void Supervisor::StopServers(std::string reason) {
  {
    std::lock_guard lock(stop_mu_);
    if (servers_stop_) return;
    servers_stop_ = std::move(reason);
  }
  processes_->Interrupt();
}

void Supervisor::CheckWorkersDone() {
  // Only jobs with servers (on this node or another) look: O(ranks) per wait.
  const bool servers = std::find(server_.begin(), server_.end(), true) != server_.end();
  if (workers_done_ || policy_.stopping() || (!servers && !options_.on_workers_done)) return;
  for (const auto& [pid, live] : live_) {
    if (!server_[live.index]) return;
  }
  for (size_t i = 0; i < result_.ranks.size(); ++i) {
    const RankResult& rank = result_.ranks[i];
    if (!server_[i] && (!rank.started || !rank.status.success())) return;
  }
  workers_done_ = true;
  if (servers) reporter_->Info("every worker rank on this node exited 0");
  if (options_.on_workers_done) {
    options_.on_workers_done();
  } else {
    BeginServersStop("every worker exited 0");
  }
}

void Supervisor::BeginServersStop(const std::string& reason) {
  if (live_.empty()) return;
  if (policy_.Leftovers(fmt::format("{}: stopping the parameter servers", reason))) BeginStop();
}

void RecordStop(const StopOrder& order, const SupervisorOptions& options,
                SupervisionResult* result) {
  result->outcome = order.outcome;
  result->exit_code = order.exit_code;
  result->stop_reason = order.reason;
  result->cancel_signal = order.cancel_signal;
  if (options.on_stop) options.on_stop(result->outcome, result->exit_code, result->stop_reason);
}

void Supervisor::BeginStop() {
  const StopOrder& order = policy_.order();
  RecordStop(order, options_, &result_);
  if (!live_.empty()) {
    // On the console too: the grace period can be long, and silent it looks like a hang.
    reporter_->Notice(fmt::format("stopping {} rank(s) with {} ({}); SIGKILL after {:.0f} s",
                                  live_.size(), SignalName(order.signal), result_.stop_reason,
                                  ToSeconds(policy_.grace_period())));
  }
  for (auto& [pid, live] : live_) {
    Status s = processes_->SignalGroup(pid, order.signal);
    if (!s.ok()) reporter_->Warning(s.message());
  }
}

void Supervisor::KillAll() {
  for (auto& [pid, live] : live_) {
    const RankResult& rank = result_.ranks[live.index];
    reporter_->Warning(
        fmt::format("rank {} (pid {}) still running after the grace period; "
                    "sending SIGKILL",
                    rank.rank, pid));
    result_.killed_after_grace = true;
    Status s = processes_->SignalGroup(pid, SIGKILL);
    if (!s.ok()) reporter_->Warning(s.message());
  }
}

void RecordUnkillable(size_t index, int pid, ProcessSet* processes, Reporter* reporter,
                      Duration waited, SupervisionResult* result) {
  RankResult& rank = result->ranks[index];
  rank.unkillable = true;
  rank.state = processes->Inspect(pid);
  rank.status = ExitStatus{};
  rank.status.signal = SIGKILL;
  rank.stopped_by_trainrun = true;
  ++result->unkillable;
  if (result->exit_code == 0) result->exit_code = kExitCodeUnkillable;
  const std::string state =
      rank.state.state == 0
          ? std::string("its state could not be read")
          : fmt::format("state {}{}", rank.state.state,
                        rank.state.wchan.empty() ? "" : ", waiting in " + rank.state.wchan);
  reporter->Warning(
      fmt::format("rank {} (pid {}) is unkillable: still there {:.0f} s after SIGKILL ({}); "
                  "trainrun stops waiting for it",
                  rank.rank, pid, ToSeconds(waited), state));
}

void Supervisor::GiveUpOnUnkillable() {
  for (auto& [pid, live] : live_) {
    RecordUnkillable(live.index, pid, processes_, reporter_, policy_.unkillable_timeout(),
                     &result_);
    result_.ranks[live.index].seconds = ToSeconds(processes_->clock()->Now() - live.started);
  }
  live_.clear();
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
  rank.stopped_by_trainrun = policy_.stopping();
  reporter_->RankExited(rank.rank, status, rank.stopped_by_trainrun);
  if (status.success() || policy_.stopping()) return;

  RankFailure failure;
  failure.rank = rank.rank;
  failure.pid = pid;
  failure.status = status;
  failure.reason = status.HowItEnded();
  failure.hint = FailureHint(status);
  result_.failure = failure;
  if (options_.on_rank_failed) options_.on_rank_failed(failure);
  const std::string reason = fmt::format("rank {} {}", rank.rank, failure.reason);
  if (policy_.RankFailed(status.ToExitCode(), reason)) BeginStop();
}

void Supervisor::OnSignal(int signal) {
  switch (policy_.OnSignal(signal)) {
    case StopPolicy::SignalAction::kIgnore: break;
    case StopPolicy::SignalAction::kStop: BeginStop(); break;
    case StopPolicy::SignalAction::kSameStop:
      reporter_->Info(
          fmt::format("{} within {} s of the stop: the same stop, the grace "
                      "period goes on",
                      SignalName(signal), kSameStopWindow.count()));
      break;
    case StopPolicy::SignalAction::kKillNow:
      reporter_->Warning(
          fmt::format("{} again while stopping: killing the ranks now", SignalName(signal)));
      KillAll();
      break;
  }
}

void Supervisor::Start(std::vector<RankLaunch> launches) {
  Clock* clock = processes_->clock();
  policy_.Start();
  result_.ranks.reserve(launches.size());

  for (RankLaunch& launch : launches) {
    RankResult rank;
    rank.rank = launch.rank;
    result_.ranks.push_back(rank);
    server_.push_back(launch.server);
    if (policy_.stopping()) continue;  // a previous rank could not start
    Result<int> pid = processes_->Spawn(launch.spec);
    if (options_.on_spawned) options_.on_spawned(launch.rank);
    if (!pid.ok()) {
      RankFailure failure;
      failure.rank = launch.rank;
      failure.status = ExitStatus::CouldNotStart(pid.status());
      failure.reason = fmt::format("could not start: {}", pid.status().message());
      result_.ranks.back().status = failure.status;
      result_.failure = failure;
      reporter_->Error(fmt::format("rank {} {}", launch.rank, failure.reason));
      if (options_.on_rank_failed) options_.on_rank_failed(failure);
      if (policy_.RankFailed(failure.status.code,
                             fmt::format("rank {} could not start", launch.rank)))
        BeginStop();
      continue;
    }
    result_.ranks.back().pid = *pid;
    result_.ranks.back().started = true;
    live_.emplace_back(*pid, Live{result_.ranks.size() - 1, clock->Now()});
    reporter_->RankStarted(launch.rank, *pid);
  }
}

SupervisionResult Supervisor::Wait() {
  while (!live_.empty()) {
    CheckWorkersDone();
    if (live_.empty()) break;
    for (const ProcessEvent& event : processes_->Wait(policy_.WaitDeadline())) {
      switch (event.kind) {
        case ProcessEvent::Kind::kExited: OnExit(event.pid, event.status); break;
        case ProcessEvent::Kind::kSignal: OnSignal(event.signal); break;
        case ProcessEvent::Kind::kInterrupt: {
          std::optional<std::pair<int, std::string>> request;
          {
            std::lock_guard lock(stop_mu_);
            request = stop_request_;
          }
          if (request && policy_.Requested(request->first, request->second)) BeginStop();
          std::optional<std::string> servers;
          {
            std::lock_guard lock(stop_mu_);
            servers = servers_stop_;
          }
          if (servers && !policy_.stopping()) BeginServersStop(*servers);
          break;
        }
      }
    }
    if (policy_.CheckTimeout()) BeginStop();
    if (policy_.KillDue() && !live_.empty()) KillAll();
    if (policy_.UnkillableDue() && !live_.empty()) GiveUpOnUnkillable();
  }
  // A node whose last rank was a worker: the head still waits to hear it.
  CheckWorkersDone();

  // Whatever a rank left in its own process group goes with it.
  for (const RankResult& rank : result_.ranks) {
    if (rank.started) processes_->SignalGroup(rank.pid, SIGKILL).IgnoreError();
  }
  return result_;
}

}  // namespace trainrun
