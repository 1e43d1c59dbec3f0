// Preparing, the second phase of `trainrun run` (run_command.h): the source
// snapshot, the data references, the ranks' plan, and their processes' pipes to the
// log pump. Nothing is started. Internal to the launcher.
#pragma once

#include <memory>
#include <optional>
#include <vector>

#include "launcher/node_binding.h"
#include "launcher/rank_plan.h"
#include "launcher/run_context.h"
#include "launcher/run_load.h"
#include "runtime/process/log_pump.h"
#include "runtime/process/process_posix.h"
#include "runtime/run/data_refs.h"
#include "runtime/run/python_env.h"
#include "runtime/run/run_layout.h"

namespace trainrun {

// What Preparing produces, filled in as it goes: when it fails, what it made so
// far is here for Finalizing (run_finalize.h) to clean up (data unmounted, the
// process set reaped).
struct PreparedRun {
  // Planned before the rendezvous on a multi-node job (the caller sets it), else
  // by Prepare, after the data.
  std::optional<NodeBinding> binding;
  // Made before the data, so that a FUSE mount's rclone is its child too; declared
  // before `data` so that it outlives the mounts that hold a pointer to it.
  std::unique_ptr<PosixProcessSet> processes;
  std::unique_ptr<DataPreparer> data;  // holds the mounts; reset at Finalizing
  std::vector<PreparedData> prepared_data;
  // environment.python's environment, held (its cache lock shared) until the run
  // ends; null when the job asks for none.
  std::unique_ptr<PythonEnv> python_env;
  RankPlan plan;                  // the launches have their log pipes once Prepare succeeded
  std::unique_ptr<LogPump> pump;  // started: reads the ranks' pipes into their logs
  RankPipes mpirun_pipes;         // the head of an MPI job: where mpirun's output goes

  // This node's rank count and why, from the binding plan (once planned).
  int process_count() const { return binding->plan.process_count; }
  const std::string& process_count_source() const { return binding->plan.process_count_source; }
};

// Copies the source snapshot into the run directory, makes ./outputs and ./logs,
// prepares every data reference, finds or builds the job's Python environment
// (python_env_step.h), plans the binding (unless `prepared->binding` is
// set) and the ranks, writes the binding table to system_logs/, then creates the
// process set and starts the log pump with each rank's pipes. Fills the journal's
// record (source, data, command, binding, nodes). Returns the first failure;
// `prepared` keeps what was made. ctx.journal must be set. Once ctx.cancel is
// canceled, the snapshot, the data (copies, downloads, mount waits) and the steps
// after them give up soon with kCanceled, naming what was interrupted.
Status Prepare(const RunContext& ctx, const LoadedRun& run, const LocalRunLayout& layout,
               PreparedRun* prepared);

// A new log pump for prepared->plan.launches, started, with fresh pipes for each
// rank (and mpirun's on the head of an MPI job), appending to their logs. Prepare
// makes the first; each restart (run_attempts.h) a new one, once the last one has
// drained. Replaces prepared->pump.
Status StartLogPump(const RunContext& ctx, const LoadedRun& run, const LocalRunLayout& layout,
                    PreparedRun* prepared);

}  // namespace trainrun
