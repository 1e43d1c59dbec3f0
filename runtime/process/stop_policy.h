// The stop policy: when and how a supervisor stops the processes of a run. One policy
// for the Supervisor (supervisor.h) and the MPI supervisor (runtime/mpi), so both stop
// the same way whatever they supervise.
//
// The sequence, whatever the reason: a stop begins (the first reason wins and fixes
// the outcome and exit code); the supervisor sends order().signal to every live
// process group; one grace period later SIGKILL is due for whatever is still there.
// A second SIGTERM, SIGINT or SIGHUP to trainrun while stopping makes SIGKILL due at
// once, unless it came within kSameStopWindow of the stop's start: under Slurm,
// `scancel` signals every process of the step while the head's stop message arrives,
// and that pair is one stop, not an impatient user. A SIGINT after a SIGINT cancel
// (Ctrl-C pressed twice at a terminal) always kills at once. Without a stop,
// max_run_duration after Start() a timeout stop begins. Once SIGKILL was sent, the
// supervisor waits at most unkillable_timeout more: a process in an uninterruptible
// sleep (a hung NFS or FUSE read, a GPU driver call) does not die of SIGKILL until the
// kernel lets it, maybe never, and trainrun must still record the run, upload what it
// can and exit (Slurm's UnkillableStepTimeout).
//
// The policy sends nothing and waits for nothing: it reads the clock it was given
// (the ProcessSet's, so a fake clock drives it in tests) and says what is due. The
// supervisor carries it out. Not thread-safe: the supervising thread calls it.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

#include "base/clock.h"

namespace trainrun {

// A signal this soon after a stop began is the same stop (see above).
constexpr std::chrono::seconds kSameStopWindow{1};

constexpr std::chrono::seconds kDefaultGracePeriod{30};
constexpr std::chrono::seconds kDefaultUnkillableTimeout{60};
constexpr int kExitCodeTimeout = 124;
constexpr int kExitCodeCanceled = 143;

enum class RunOutcome {
  kSucceeded,   // every rank exited 0
  kRankFailed,  // a rank exited non-zero, died by a signal, or could not start
  kTimedOut,    // max_run_duration passed
  kCanceled,    // trainrun got SIGTERM, SIGINT or SIGHUP
  kStopped,     // RequestStop() from another part of trainrun (a peer failed)
};
std::string_view RunOutcomeName(RunOutcome outcome);

// Why the processes are being stopped, and how. Before any stop: kSucceeded, exit 0.
struct StopOrder {
  RunOutcome outcome = RunOutcome::kSucceeded;
  int exit_code = 0;      // what `trainrun run` should exit with
  std::string reason;     // "rank 2 exited with exit code 3", "trainrun received SIGINT"
  int signal = 0;         // what every live process group gets first
  int cancel_signal = 0;  // for kCanceled: the signal trainrun received
};

class StopPolicy {
 public:
  // `clock` is not owned and must outlive the policy: the clock of the ProcessSet
  // whose waits this policy's deadlines bound. `max_run_duration`: none = no limit.
  // `unkillable_timeout`: how long after SIGKILL processes may take to end.
  StopPolicy(Clock* clock, Duration grace_period, std::optional<Duration> max_run_duration,
             Duration unkillable_timeout = kDefaultUnkillableTimeout);

  // The processes start now: max_run_duration counts from here. Call once, first.
  void Start();

  // Begins a stop. Each returns true when it began the stop now: then order() says
  // why and with which signal, and the caller signals every live process group. It
  // returns false, and changes nothing, when a stop already began.
  //
  // A rank (or mpirun) failed: kRankFailed with the rank's `exit_code`, SIGTERM.
  bool RankFailed(int exit_code, std::string reason);
  // Another part of trainrun asked (a peer failed, a node was lost): kStopped, SIGTERM.
  bool Requested(int exit_code, std::string reason);
  // Processes outlived what launched them: SIGTERM, the outcome and exit code stay as
  // they are (kSucceeded, 0).
  bool Leftovers(std::string reason);

  // What trainrun receiving `signal` means.
  enum class SignalAction {
    kIgnore,    // not SIGTERM/SIGINT/SIGHUP, or SIGKILL was already sent
    kStop,      // a cancel began: kCanceled, 143; SIGINT is forwarded as SIGINT,
                // SIGTERM and SIGHUP (the terminal went away) as SIGTERM
    kKillNow,   // a second one while stopping: SIGKILL everything now (recorded as
                // sent, like KillDue())
    kSameStop,  // within kSameStopWindow of the stop's start: the grace period goes on
  };
  SignalAction OnSignal(int signal);

  // Call after every wait. Begins the timeout stop (kTimedOut, 124, SIGTERM) and
  // returns true when max_run_duration has passed and no stop began.
  bool CheckTimeout();

  // True once, the first time it is called at or after the grace deadline of a stop
  // (and no second signal killed already): the caller sends SIGKILL to everything
  // still there. Recorded as sent.
  bool KillDue();

  // True once, the first time it is called at or after unkillable_timeout past the
  // SIGKILL (KillDue() or kKillNow): the caller stops waiting for what is still there
  // and records it as unkillable.
  bool UnkillableDue();

  // What a process that starts or reports itself while stopping gets: SIGTERM, or
  // SIGKILL once everything else got SIGKILL.
  int LateStarterSignal() const;

  // When the next wait has to end: the max-run deadline while running (none without
  // a limit), the grace deadline while stopping, unkillable_timeout after SIGKILL,
  // none once UnkillableDue() said so.
  std::optional<TimePoint> WaitDeadline() const;

  bool stopping() const { return stopping_; }
  bool killed() const { return killed_; }
  const StopOrder& order() const { return order_; }
  Duration grace_period() const { return grace_period_; }
  Duration unkillable_timeout() const { return unkillable_timeout_; }
  // When SIGKILL is due; meaningful once stopping().
  TimePoint kill_deadline() const { return kill_deadline_; }

 private:
  bool Begin(RunOutcome outcome, int exit_code, std::string reason, int signal);

  Clock* clock_;
  Duration grace_period_;
  std::optional<Duration> max_run_duration_;
  std::optional<TimePoint> run_deadline_;
  bool stopping_ = false;
  bool killed_ = false;
  bool gave_up_ = false;  // UnkillableDue() said so
  Duration unkillable_timeout_;
  TimePoint killed_at_{};
  TimePoint kill_deadline_{};
  TimePoint stop_began_{};
  StopOrder order_;
};

}  // namespace trainrun
