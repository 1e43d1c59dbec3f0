#include "runtime/run/restart_policy.h"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

namespace trainrun {

bool RestartPolicy::RetriesExitCode(int exit_code) const {
  if (exit_code == 0) return false;
  if (retry_exit_codes) {
    return std::find(retry_exit_codes->begin(), retry_exit_codes->end(), exit_code) !=
           retry_exit_codes->end();
  }
  const std::vector<int>& never = NonRetryableExitCodes();
  return std::find(never.begin(), never.end(), exit_code) == never.end();
}

Duration RestartPolicy::BackoffBefore(int attempt) const {
  // attempt 2 waits backoff_seconds, attempt 3 twice that, ...; the exponent is
  // capped so that a thousand restarts do not overflow before the maximum applies.
  const int doublings = std::clamp(attempt - 2, 0, 62);
  const double seconds =
      std::min(backoff_seconds * std::pow(2.0, doublings), std::max(backoff_max_seconds, 0.0));
  return std::chrono::duration_cast<Duration>(
      std::chrono::duration<double>(std::max(seconds, 0.0)));
}

RestartDecision DecideRestart(const RestartPolicy& policy, int attempt, RunOutcome outcome,
                              int exit_code) {
  RestartDecision decision;
  if (outcome == RunOutcome::kSucceeded) return decision;
  if (!policy.enabled()) {
    decision.why = "not restarted: maxRestarts is 0";
    return decision;
  }
  if (outcome != RunOutcome::kRankFailed) {
    decision.why = fmt::format("not restarted: the run was {} (only a rank's failure is retried)",
                               RunOutcomeName(outcome));
    return decision;
  }
  if (!policy.RetriesExitCode(exit_code)) {
    const std::vector<int>& never = NonRetryableExitCodes();
    const bool bad_job =
        !policy.retry_exit_codes && std::find(never.begin(), never.end(), exit_code) != never.end();
    decision.why =
        bad_job ? fmt::format(
                      "not restarted: exit code {} means a bad job (a usage error, a "
                      "program that is missing or not executable), which fails again; "
                      "name it in restarts.retryExitCodes to retry it",
                      exit_code)
                : fmt::format("not restarted: exit code {} is not in restarts.retryExitCodes",
                              exit_code);
    return decision;
  }
  const int restarts_used = attempt - 1;
  if (restarts_used >= policy.max_restarts) {
    decision.why =
        fmt::format("not restarted: all {} restart(s) of maxRestarts used", policy.max_restarts);
    return decision;
  }
  decision.restart = true;
  decision.wait = policy.BackoffBefore(attempt + 1);
  decision.why = fmt::format("restart {} of {} in {:g} s", restarts_used + 1, policy.max_restarts,
                             ToSeconds(decision.wait));
  return decision;
}

}  // namespace trainrun
