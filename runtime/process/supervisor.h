// The supervisor: starts a node's ranks, watches them, and stops them all on the
// first failure, a timeout, a cancel or a stop request from elsewhere.
//
// The stop sequence is the same whatever the reason, and decided by StopPolicy
// (stop_policy.h): the signal (SIGTERM, or the signal trainrun itself got when it is
// being canceled) to every live rank's process group, a grace period, then SIGKILL to
// the groups that are still there. A second SIGTERM/SIGINT/SIGHUP while stopping
// skips the rest of the grace period. A rank still there unkillable_timeout after
// SIGKILL is recorded as unkillable (its state and wait channel from /proc) and no
// longer waited for.
//
// Server ranks (a TensorFlow parameter server: RankLaunch::server) never end by
// themselves. Once every other rank ended with 0 and no stop began, the workers
// are done: on one node the supervisor then stops the servers itself; on several,
// on_workers_done tells the head, and the head's word comes back as StopServers().
// That stop is the same sequence (SIGTERM, grace, SIGKILL) but keeps the outcome
// kSucceeded and exit 0: how a server ends once stopped is not a failure. A server
// that fails before then is a failure like any rank's.
#pragma once

#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "runtime/process/process.h"
#include "runtime/process/stop_policy.h"
#include "runtime/report/reporter.h"

namespace trainrun {

struct RankLaunch {
  int rank = 0;  // global rank, used in every message
  SpawnSpec spec;
  bool server = false;  // a parameter server: stopped once the workers are done
};

// The root cause: the first rank that failed, not the ranks stopped after it.
struct RankFailure {
  int rank = 0;
  int pid = 0;                           // 0 when it never started
  ExitStatus status;                     // for a rank that could not start: 127 or 126
  std::string reason;                    // "exited with exit code 3", "could not start: ..."
  std::string hint;                      // e.g. the out-of-memory hint for SIGKILL; may be empty
  std::vector<std::string> stderr_tail;  // filled by the caller once logs drained
};

struct RankResult {
  int rank = 0;
  int pid = 0;
  bool started = false;
  // Its end was seen after trainrun began stopping the run (and signalled it, or
  // what launched it); false for the rank whose failure began the stop. Set when
  // the end is seen, by both supervisors.
  bool stopped_by_trainrun = false;
  ExitStatus status;
  double seconds = 0;  // how long it ran
  // Still there unkillable_timeout after SIGKILL: `status` is that SIGKILL (pending),
  // `state` what /proc said then (ProcessState: 'D' and its wait channel).
  bool unkillable = false;
  ProcessState state;
};

struct SupervisionResult {
  RunOutcome outcome = RunOutcome::kSucceeded;
  int exit_code = 0;                   // what `trainrun run` should exit with
  std::optional<RankFailure> failure;  // set for kRankFailed
  std::string stop_reason;             // why the ranks were stopped, if they were
  int cancel_signal = 0;               // for kCanceled
  bool killed_after_grace = false;     // some rank needed SIGKILL
  int unkillable = 0;                  // ranks given up on after SIGKILL (RankResult)
  std::vector<RankResult> ranks;       // in launch order
};

struct SupervisorOptions {
  // Time between the stop signal and SIGKILL.
  Duration grace_period = kDefaultGracePeriod;
  // How long to wait for ranks after SIGKILL before giving up on them as unkillable.
  Duration unkillable_timeout = kDefaultUnkillableTimeout;
  // Stop with exit 124 once the ranks have run this long; none = no limit.
  std::optional<Duration> max_run_duration;
  // Called once, on the supervising thread, when the first rank fails (before the
  // others are signalled): the multi-node layer tells the other nodes.
  std::function<void(const RankFailure&)> on_rank_failed;
  // Called once, on the supervising thread, when the ranks start being stopped
  // (after on_rank_failed for a failure): the outcome, exit code and reason. The
  // multi-node layer tells the other nodes about a cancel or a time limit.
  std::function<void(RunOutcome, int exit_code, const std::string& reason)> on_stop;
  // Called on the supervising thread when a process the set spawned that is not a
  // rank ends while the ranks run: a helper the ranks depend on, such as the rclone
  // behind a data mount. The owner of the helper says what its end means.
  std::function<void(int pid, const ExitStatus& status)> on_helper_exit;
  // Called on the starting thread right after each rank's spawn (started or not),
  // before the next: the caller closes what only that child needed (its ends of
  // the output pipes), so descriptors do not pile up while thousands start.
  std::function<void(int rank)> on_spawned;
  // Called once, on the supervising thread, when every rank that is not a server
  // has ended with 0 and no stop began (also when this node has no such rank, or
  // no server): the multi-node layer tells the head, which answers, once the whole
  // job's workers are done, with StopServers(). Unset: the supervisor stops its
  // servers itself at that point.
  std::function<void()> on_workers_done;
};

// The out-of-memory hint for a rank killed by SIGKILL that trainrun did not send;
// empty for other statuses.
std::string FailureHint(const ExitStatus& status);

// The exit code of a run whose stop left unkillable processes: the stop's own (a
// failed rank's code, 124, 143), or 70 (an internal error) when it had none.
constexpr int kExitCodeUnkillable = 70;

// What both supervisors do when unkillable_timeout passed after SIGKILL: records
// rank `index` of `result` as unkillable with what `processes` says of `pid`, warns
// through `reporter`, and makes the exit code non-zero.
void RecordUnkillable(size_t index, int pid, ProcessSet* processes, Reporter* reporter,
                      Duration waited, SupervisionResult* result);

// What both supervisors do as a stop begins: `order`'s outcome, exit code, reason and
// cancel signal go into `result`, then `options.on_stop` (if set) hears of it.
void RecordStop(const StopOrder& order, const SupervisorOptions& options,
                SupervisionResult* result);

class Supervisor {
 public:
  // Does not own `processes` or `reporter`; both must outlive Run().
  Supervisor(ProcessSet* processes, Reporter* reporter, SupervisorOptions options);

  // Starts every rank in order. A rank that cannot start is a failure like any
  // other (exit 127 or 126): the ranks after it are not started and those before
  // it are being stopped when Start returns. Call once, before Wait().
  void Start(std::vector<RankLaunch> launches);

  // Supervises until every started rank has ended, then kills what remains in
  // their process groups.
  SupervisionResult Wait();

  // Start() then Wait().
  SupervisionResult Run(std::vector<RankLaunch> launches) {
    Start(std::move(launches));
    return Wait();
  }

  // Stops every rank and makes Run() return kStopped with `exit_code`, unless the
  // run already ended or is already stopping for another reason. Safe from any
  // thread.
  void RequestStop(int exit_code, std::string reason);

  // Every worker of the job is done: stops the server ranks (see above) unless a
  // stop already began. Safe from any thread; before Wait() it takes effect once
  // Wait() runs.
  void StopServers(std::string reason);

 private:
  struct Live {
    size_t index;  // into result_.ranks
    TimePoint started;
  };
  // Carries out the stop the policy just began: records it, on_stop, the signal.
  void BeginStop();
  void OnExit(int pid, const ExitStatus& status);
  void OnSignal(int signal);
  void KillAll();
  // unkillable_timeout passed after SIGKILL: records what is left, stops waiting.
  void GiveUpOnUnkillable();
  // Reports the workers done once they are (on_workers_done, or stops the servers).
  void CheckWorkersDone();
  // Begins the servers' stop: outcome kSucceeded, exit 0.
  void BeginServersStop(const std::string& reason);

  ProcessSet* processes_;
  Reporter* reporter_;
  SupervisorOptions options_;
  SupervisionResult result_;
  std::vector<std::pair<int, Live>> live_;  // pid -> live rank
  std::vector<bool> server_;                // by index into result_.ranks
  bool workers_done_ = false;               // CheckWorkersDone() reported them
  StopPolicy policy_;

  std::mutex stop_mu_;
  std::optional<std::pair<int, std::string>> stop_request_;  // guarded by stop_mu_
  std::optional<std::string> servers_stop_;                  // guarded by stop_mu_
};

}  // namespace trainrun
