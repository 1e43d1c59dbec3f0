// StopPlan: how this node's stop fits the time the scheduler or container engine
// leaves between its SIGTERM and its SIGKILL (runtime/process/stop_budget.h). The
// budget is probed on a thread of its own from the start of `trainrun run` (under
// Slurm `scontrol show config` may take up to kScontrolTimeout), so nothing waits
// for it until the ranks start or the run is finalized. Internal to the launcher.
#pragma once

#include <atomic>
#include <future>
#include <optional>
#include <string>

#include "launcher/run_options.h"
#include "runtime/process/stop_budget.h"

namespace trainrun {

class StopPlan {
 public:
  // Starts the probe. `options` gives --stop-timeout, --grace-period and
  // --unkillable-timeout (each none when not given).
  explicit StopPlan(const RunOptions& options);
  // Waits for the probe (bounded as ProbeStopBudget is).
  ~StopPlan();
  StopPlan(const StopPlan&) = delete;
  StopPlan& operator=(const StopPlan&) = delete;

  // The grace period, unkillable timeout and margins. The first call waits for the
  // probe; then any thread.
  const StopTiming& timing();
  // Where the budget came from (empty without one).
  const std::string& source();
  // One line for the system log and --dry-run (DescribeStopTiming).
  std::string Describe();

  // trainrun received `signal` at `at` (SignalCancel's watcher, or the supervisor's
  // cancel). A SIGTERM (or 0: a cancel signal the watcher could not name) starts the
  // scheduler's clock; the earliest one counts. Any thread.
  void NoteSignal(int signal, TimePoint at);
  // When the budget's SIGKILL is due: the first SIGTERM plus the budget; none
  // without a budget or before a SIGTERM. Waits for the probe like timing().
  std::optional<TimePoint> KillAt();

 private:
  std::optional<Duration> grace_;
  std::optional<Duration> unkillable_;
  std::future<StopBudget> probe_;
  std::once_flag once_;
  StopBudget budget_;
  StopTiming timing_;
  // steady-clock ticks of the first SIGTERM; kNoSignal until one comes.
  static constexpr int64_t kNoSignal = INT64_MAX;
  std::atomic<int64_t> sigterm_ticks_{kNoSignal};
};

}  // namespace trainrun
