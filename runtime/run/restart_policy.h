// In-place restarts (README "In-place restarts"): which failures of a run's ranks
// start them again, how many times, and the wait in between. A plain value, read
// from the job file (job_config.h) and the command line; the attempt loop that
// follows it is launcher/run_attempts.h.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "base/clock.h"
#include "runtime/process/stop_policy.h"

namespace trainrun {

// maxRestarts may be 0 (the default: no restart) to this.
constexpr int kMaxRestartsLimit = 1000;
// The wait before the first restart; each later one doubles it, up to the maximum.
constexpr double kDefaultRestartBackoffSeconds = 1;
constexpr double kDefaultRestartBackoffMaxSeconds = 60;
// The exit codes that mean the job itself is wrong, so that another attempt would
// fail the same way; not retried unless restarts.retryExitCodes names them:
//   2    a command-line usage error (Python's argparse, Python that cannot open
//        the script, the shell's misuse of a builtin)
//   64   EX_USAGE
//   65   EX_DATAERR (trainrun's own "invalid job file")
//   126  the program is not executable
//   127  the program was not found
inline const std::vector<int>& NonRetryableExitCodes() {
  static const std::vector<int> codes = {2, 64, 65, 126, 127};
  return codes;
}

struct RestartPolicy {
  // How many times the ranks are started again after a retryable failure; 0: never.
  int max_restarts = 0;
  // The exit codes that are retried; none: every non-zero code but
  // NonRetryableExitCodes(). A rank killed by a signal has 128 + the signal.
  std::optional<std::vector<int>> retry_exit_codes;
  // The wait before attempt 2; doubled before each later attempt, up to the maximum.
  double backoff_seconds = kDefaultRestartBackoffSeconds;
  double backoff_max_seconds = kDefaultRestartBackoffMaxSeconds;
  // A job on several nodes: how long the head waits, after a node's trainrun was
  // lost, for a new one with the same node rank to join the next attempt; 0: a lost
  // node ends the job (69). None: the rendezvous timeout (README "A replaced node
  // rejoins").
  std::optional<double> rejoin_timeout_seconds;

  bool enabled() const { return max_restarts > 0; }
  // Whether a rank failure with this exit code is retried (attempts left aside).
  bool RetriesExitCode(int exit_code) const;
  // The wait before attempt `attempt` (2 or more).
  Duration BackoffBefore(int attempt) const;
};

// What the attempt loop does after attempt `attempt` (1, 2, ...) ended with
// `outcome` and `exit_code`.
struct RestartDecision {
  bool restart = false;
  Duration wait{};  // before the next attempt, when restarting
  // Why, for the log and run.json: "restart 1 of 3 in 1 s" or "not restarted:
  // exit code 65 is not retried (it means a bad job)".
  std::string why;
};

// Only a rank's failure is retried: a success, a cancel, the time limit and a stop
// for another reason (a lost data mount) end the run as they would without restarts.
RestartDecision DecideRestart(const RestartPolicy& policy, int attempt, RunOutcome outcome,
                              int exit_code);

}  // namespace trainrun
