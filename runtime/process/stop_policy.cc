#include "runtime/process/stop_policy.h"

#include <signal.h>

#include <fmt/format.h>

#include "base/exit_status.h"

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

StopPolicy::StopPolicy(Clock* clock, Duration grace_period,
                       std::optional<Duration> max_run_duration, Duration unkillable_timeout)
    : clock_(clock),
      grace_period_(grace_period),
      max_run_duration_(max_run_duration),
      unkillable_timeout_(unkillable_timeout) {}

void StopPolicy::Start() {
  if (max_run_duration_) run_deadline_ = clock_->Now() + *max_run_duration_;
}

bool StopPolicy::Begin(RunOutcome outcome, int exit_code, std::string reason, int signal) {
  if (stopping_) return false;
  stopping_ = true;
  order_.outcome = outcome;
  order_.exit_code = exit_code;
  order_.reason = std::move(reason);
  order_.signal = signal;
  stop_began_ = clock_->Now();
  kill_deadline_ = stop_began_ + grace_period_;
  return true;
}

bool StopPolicy::RankFailed(int exit_code, std::string reason) {
  return Begin(RunOutcome::kRankFailed, exit_code, std::move(reason), SIGTERM);
}

bool StopPolicy::Requested(int exit_code, std::string reason) {
  return Begin(RunOutcome::kStopped, exit_code, std::move(reason), SIGTERM);
}

bool StopPolicy::Leftovers(std::string reason) {
  return Begin(order_.outcome, order_.exit_code, std::move(reason), SIGTERM);
}

StopPolicy::SignalAction StopPolicy::OnSignal(int signal) {
  if (signal != SIGTERM && signal != SIGINT && signal != SIGHUP) return SignalAction::kIgnore;
  if (stopping_) {
    // Whoever sends a second one does not want to wait out the grace period, unless
    // it is the same stop arriving twice (scancel and the head's stop message).
    if (killed_) return SignalAction::kIgnore;
    const bool ctrl_c_twice = signal == SIGINT && order_.cancel_signal == SIGINT;
    if (!ctrl_c_twice && clock_->Now() - stop_began_ < kSameStopWindow) {
      return SignalAction::kSameStop;
    }
    killed_ = true;
    killed_at_ = clock_->Now();
    return SignalAction::kKillNow;
  }
  // SIGHUP means the controlling terminal went away; the ranks get SIGTERM.
  Begin(RunOutcome::kCanceled, kExitCodeCanceled,
        fmt::format("trainrun received {}", SignalName(signal)),
        signal == SIGHUP ? SIGTERM : signal);
  order_.cancel_signal = signal;
  return SignalAction::kStop;
}

bool StopPolicy::CheckTimeout() {
  if (stopping_ || !run_deadline_ || clock_->Now() < *run_deadline_) return false;
  return Begin(
      RunOutcome::kTimedOut, kExitCodeTimeout,
      fmt::format("maxRunDurationSeconds ({:.0f} s) exceeded", ToSeconds(*max_run_duration_)),
      SIGTERM);
}

bool StopPolicy::KillDue() {
  if (!stopping_ || killed_ || clock_->Now() < kill_deadline_) return false;
  killed_ = true;
  killed_at_ = clock_->Now();
  return true;
}

bool StopPolicy::UnkillableDue() {
  if (!killed_ || gave_up_ || clock_->Now() < killed_at_ + unkillable_timeout_) return false;
  gave_up_ = true;
  return true;
}

int StopPolicy::LateStarterSignal() const { return killed_ ? SIGKILL : SIGTERM; }

std::optional<TimePoint> StopPolicy::WaitDeadline() const {
  if (!stopping_) return run_deadline_;
  if (gave_up_) return std::nullopt;
  if (killed_) return killed_at_ + unkillable_timeout_;
  return kill_deadline_;
}

}  // namespace trainrun
