// Finalizing, the last phase of `trainrun run` (run_command.h), whatever way the
// run ended: the logs drained, the data unmounted, orphans killed, everything
// uploaded to run history, the final status written, and the exit code decided.
// Internal to the launcher.
#pragma once

#include "launcher/run_context.h"
#include "launcher/run_load.h"
#include "launcher/run_prepare.h"
#include "launcher/run_ranks.h"
#include "runtime/run/run_layout.h"

namespace trainrun {

// How long the log pump may take to read what the ranks left in their pipes once
// they are gone; only a descendant that escaped its process group and still holds
// a pipe makes it wait this long.
constexpr auto kLogDrainTimeout = std::chrono::seconds(5);

// Finalizes the run and returns its exit code. `exit_code` and `status` are how
// it ended so far (the ranks' result, or why they never started); `ran` is null
// when the ranks never started, and `prepared` holds whatever Preparing made.
// Stops the live upload, drains and closes the log pump, unmounts the data, kills
// what the ranks left behind, records the ranks and the failure, tells the other
// nodes (multi-node), uploads ./outputs and the logs, then (once the final status
// is said) the system log and run.json. A failed upload turns a success into 74
// (kExitUploadFailed); on a multi-node job every node exits with the job's code (cluster_run.h
// Finish()). Everything on local disk stays. ctx.journal must be set.
int Finalize(const RunContext& ctx, LoadedRun* run, const LocalRunLayout& layout,
             PreparedRun* prepared, RanRanks* ran, int exit_code, RunStatus status);

}  // namespace trainrun
