#include "launcher/stop_plan.h"

#include <signal.h>

namespace trainrun {

namespace {

std::optional<Duration> Given(const std::optional<double>& seconds) {
  if (!seconds) return std::nullopt;
  return std::chrono::duration_cast<Duration>(std::chrono::duration<double>(*seconds));
}

}  // namespace

StopPlan::StopPlan(const RunOptions& options)
    : grace_(Given(options.grace_period_seconds)),
      unkillable_(Given(options.unkillable_timeout_seconds)) {
  StopBudgetProbe probe;
  probe.flag_seconds = options.stop_timeout_seconds;
  probe_ = std::async(std::launch::async, [probe] { return ProbeStopBudget(probe); });
}

StopPlan::~StopPlan() {
  if (probe_.valid()) probe_.wait();
}

const StopTiming& StopPlan::timing() {
  std::call_once(once_, [this] {
    budget_ = probe_.get();
    timing_ = DeriveStopTiming(budget_.budget, grace_, unkillable_);
  });
  return timing_;
}

const std::string& StopPlan::source() {
  timing();
  return budget_.source;
}

std::string StopPlan::Describe() { return DescribeStopTiming(timing(), source()); }

void StopPlan::NoteSignal(int signal, TimePoint at) {
  if (signal != SIGTERM && signal != 0) return;
  const int64_t ticks = at.time_since_epoch().count();
  int64_t seen = sigterm_ticks_.load();
  while (ticks < seen && !sigterm_ticks_.compare_exchange_weak(seen, ticks)) {
  }
}

std::optional<TimePoint> StopPlan::KillAt() {
  const StopTiming& t = timing();
  const int64_t ticks = sigterm_ticks_.load();
  if (!t.budget || ticks == kNoSignal) return std::nullopt;
  return TimePoint(Duration(ticks)) + *t.budget;
}

}  // namespace trainrun
