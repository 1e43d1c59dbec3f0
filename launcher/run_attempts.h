// Running as a loop of attempts: in-place restarts (README "In-place restarts").
//
// clang-format off
//   PrepareAttempt   the one place where an attempt is made ready, before its ranks
//                    start: its marker line in each rank's log, then (from attempt 2
//                    on) fresh log pipes and the attempt's environment. The
//                    checkpoints were restored before attempt 1 (run_checkpoints.h);
//                    a later attempt finds the folder as the last one left it, which
//                    is never older than what was uploaded from it.
//   RunRanks         run_ranks.h: start, supervise fail-fast, stop
//   RanksFinished    the one place that sees how an attempt ended: its run.json
//                    entry, a failure's summary, the decision to restart or not
//   backoff          RestartPolicy::BackoffBefore; a SIGTERM/SIGINT/SIGHUP ends it
//                    and the run is canceled (143)
// clang-format on
//
// Every attempt runs in the same working directory (wd/), with the same run id,
// MASTER_PORT and logs (appended to); what a rank wrote there, a checkpoint file
// among it, is there for the next attempt. Internal to the launcher.
#pragma once

#include "launcher/run_context.h"
#include "launcher/run_load.h"
#include "launcher/run_prepare.h"
#include "launcher/run_ranks.h"
#include "runtime/run/run_layout.h"

namespace trainrun {

// Runs the ranks of `prepared` (RunRanks) and, while the job's RestartPolicy
// (job.restarts) says so, starts them again after their failure. Returns the last
// attempt's result, with the first attempt's live upload; the failure of an
// attempt that was restarted has been reported and recorded in
// record().attempts, and is not in record().failure. Does not fail: an attempt
// that cannot be prepared ends the loop with that attempt failed (exit 70).
// ctx.journal must be set.
RanRanks RunAttempts(const RunContext& ctx, const LoadedRun& run, const LocalRunLayout& layout,
                     PreparedRun* prepared);

// The line that opens attempt `attempt` in each rank's log when the run allows
// restarts, e.g. "=== trainrun: attempt 2 of at most 4 (2026-11-26T09:30:00.000Z) ===".
std::string AttemptMarker(int attempt, int max_restarts, WallTime started);

}  // namespace trainrun
