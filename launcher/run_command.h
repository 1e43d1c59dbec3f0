// `trainrun run JOB.json`: the phase pipeline of a run on this node.
//
// clang-format off
//   Preparing   read the job file, open run history, lay out the run directory,
//               snapshot the source, prepare the data references, plan the ranks
//   Running     start and supervise the ranks, stream their logs
//   Finalizing  upload ./outputs, ./logs, user_logs/, system_logs/ and run.json,
//               whatever way the run ended
// clang-format on
//
// Each phase is a function with its own header: run_load.h (the job, run history,
// the run directory), run_prepare.h, run_ranks.h, run_finalize.h, and dry_run.h for
// --dry-run; what they share is run_context.h.
#pragma once

#include "launcher/run_options.h"
#include "runtime/report/console.h"

namespace trainrun {

// Runs the job and returns an exit code of README.md ("Exit codes of `trainrun run`"):
// 0, the failing rank's code, 124, 143, 64, 65, 69, 74 or 70. Rank output goes to
// `out`, trainrun's own messages to `err`.
int RunJob(const RunOptions& options, Console* out, Console* err);

}  // namespace trainrun
