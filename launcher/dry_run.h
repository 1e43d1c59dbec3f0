// `trainrun run --dry-run` (run_command.h): the launch plan, printed; nothing is
// created or started. Internal to the launcher.
#pragma once

#include "launcher/run_context.h"
#include "launcher/run_load.h"
#include "runtime/run/run_layout.h"

namespace trainrun {

// Plans the binding and the ranks of the loaded job as a run would (without
// checking the binding against this machine or picking ports) and writes the plan
// to ctx.out: the run, its nodes, each rank's command, binding and the
// environment trainrun or the job sets. Returns 0, or the planning error's exit
// code after reporting it.
int DryRun(const RunContext& ctx, const LoadedRun& run, const LocalRunLayout& layout);

}  // namespace trainrun
