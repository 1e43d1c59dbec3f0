// Preflight (README "Preflight"): before the user's script, on every node, the GPU
// health checks (gpu/gpu_health.h) and then trainrun-nccl-check on every planned
// rank of every node, with the ranks' own binding and environment. A failed check
// stops the job before any rank of the user's starts, naming the node, the GPU (PCI
// bus id) and the check, with exit code 75 (kExitPreflightFailed). Internal to the
// launcher; `trainrun run` and `trainrun check` call PreflightJob.
#pragma once

#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "base/status.h"
#include "launcher/run_context.h"
#include "launcher/run_load.h"
#include "launcher/run_prepare.h"
#include "runtime/run/job_config.h"
#include "runtime/run/run_layout.h"

namespace trainrun {

// Names the NCCL check program to run instead of the trainrun-nccl-check beside
// trainrun's own executable (the tests point it at their build or at a stand-in).
constexpr const char* kNcclCheckVariable = "TRAINRUN_NCCL_CHECK";
constexpr const char* kNcclCheckProgram = "trainrun-nccl-check";

// trainrun-nccl-check's exit code when it finds no GPU (gpu/nccl/nccl_check_main.cc).
constexpr int kNcclCheckNoGpu = 3;

// Where this node's NCCL check ranks write their output, and rank 0 its JSON lines
// and table, under system_logs/ (uploaded with the run).
std::string PreflightRankLogName(int rank);  // "preflight_nccl_rank_<rank>.txt"
constexpr const char* kPreflightJsonName = "preflight_nccl.jsonl";
constexpr const char* kPreflightTableName = "preflight_nccl_table.txt";

// $TRAINRUN_NCCL_CHECK when set, else trainrun-nccl-check in the folder of
// trainrun's own executable (/proc/self/exe).
std::string NcclCheckPath();

// Checks what the job file's parser leaves to the launcher: the health thresholds
// (/preflight/health, gpu/gpu_health.h). kInvalidJob naming the file and field.
Status ValidatePreflight(const JobConfig& job);

// The job's preflight stopped it: the code and reason the run ends with.
struct PreflightStop {
  int exit_code = 0;      // 75 failed, 143 canceled, 69 node lost, ...
  std::string outcome;    // for run.json: "preflight failed", "canceled", "stopped"
  std::string reason;     // names the node, the GPU and the check
  bool canceled = false;  // end as Canceled rather than Failed
};

// Runs this node's preflight (health, then the NCCL check) and, on a multi-node
// job, gathers every node's verdict through the head (ClusterSession::
// GatherPreflight). Writes details.preflight into the journal's record and
// summarises on the console. None: every node passed (or skipped, as the job
// file allows), go on to the ranks. Otherwise why the job stops; nothing of the
// user's was started. ctx.journal must be set; `prepared` has the ranks' plan.
std::optional<PreflightStop> PreflightJob(const RunContext& ctx, const LoadedRun& run,
                                          const LocalRunLayout& layout, PreparedRun* prepared);

}  // namespace trainrun
