// Running, the third phase of `trainrun run` (run_command.h): the ranks started,
// supervised fail-fast and streamed to their logs, the logs uploaded live; and the
// summary of the rank that failed. Internal to the launcher.
#pragma once

#include <cstdint>
#include <memory>

#include "launcher/run_checkpoints.h"
#include "launcher/run_context.h"
#include "launcher/run_load.h"
#include "launcher/run_prepare.h"
#include "runtime/process/supervisor.h"
#include "runtime/run/live_uploader.h"
#include "runtime/run/run_layout.h"

namespace trainrun {

// What Running produces, for Finalizing (run_finalize.h).
struct RanRanks {
  SupervisionResult result;            // how the ranks ended, and the exit code
  int64_t failure_time_ms = 0;         // when the first rank failed (Unix ms); 0: none did
  int64_t oom_kills_before = -1;       // CgroupOomKills() before the ranks started
  std::unique_ptr<LiveUploader> live;  // uploading the logs; Finalizing stops it
  // Uploading the checkpoints (null when off); Finalizing uploads the last ones first.
  std::unique_ptr<CheckpointSync> checkpoints;
};

// The container's count of OOM kills (cgroup v2), or -1 when it cannot be read.
int64_t CgroupOomKills();

// Which start of the ranks RunRanks makes (run_attempts.h).
struct AttemptStart {
  int attempt = 1;
  // This node's first start of the ranks: attempt 1, or the attempt a node that
  // replaces a lost one joins (README "A replaced node rejoins").
  bool first_here = true;
  // What is left of maxRunDurationSeconds, which counts from the first attempt's
  // start; none: the job's whole limit (or none).
  std::optional<Duration> time_left;
};

// This node's first attempt enters Running (saving the record), starts the live upload
// and releases MASTER_PORT (held since its choice); every attempt starts the ranks of `prepared`
// (their launches are moved out) and supervises them until they have all ended, fail-fast, with the
// grace period and time limit of the options and the job; an MPI job through mpirun (mpi_run.h). On
// a multi-node job the other nodes hear of this node's first failure, cancel or time limit, and a
// stop from them stops these ranks. Does not fail: a rank that could not start is in the result.
// ctx.journal must be set.
RanRanks RunRanks(const RunContext& ctx, const LoadedRun& run, const LocalRunLayout& layout,
                  PreparedRun* prepared, const AttemptStart& attempt = {});

// When a rank failed: completes ran->result.failure (its stderr tail from `pump`,
// which may be null, and a hint when the kernel's OOM killer was at work), puts it
// into the journal's record and reports the summary: as an error, or, for an
// attempt that is `restarted`, as a notice (the run goes on; the caller says so
// next). The summary names the full log in history first (`history_run`: the run's
// folder there, the store's URI and the run's prefix), which outlives a container,
// then on this node.
void ReportRankFailure(const RunContext& ctx, int node_rank, const LocalRunLayout& layout,
                       const std::string& history_run, const LogPump* pump, RanRanks* ran,
                       bool restarted = false);

}  // namespace trainrun
