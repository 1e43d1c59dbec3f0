// What a rank sees of the scheduler or launcher that started trainrun itself
// (README "What a rank sees under a scheduler").
//
// srun, an outer mpirun or a PMI server describe trainrun's own process: under
// `srun --ntasks-per-node=1` trainrun is task 1 of 2, so a rank inheriting that
// would read SLURM_PROCID=1 while it is RANK=3, and Open MPI in the rank would
// take SLURM_STEP_ID for a direct launch by srun and abort. So:
//   - the launch's per-process variables are removed (LauncherVariable());
//   - under Slurm, the per-task variables a framework reads (SLURM_PROCID,
//     SLURM_LOCALID, SLURM_NODEID, SLURM_NTASKS, SLURM_NPROCS,
//     SLURM_NTASKS_PER_NODE) are set to trainrun's values for the rank;
//   - the job-level ones (SLURM_JOB_ID, SLURM_JOB_NAME, SLURM_JOB_NODELIST,
//     SLURM_NNODES, SLURM_CLUSTER_NAME, SLURM_SUBMIT_DIR...) are kept.
// A value the job file sets still wins over all of this (rank_env.h).
#pragma once

#include <map>
#include <string>
#include <vector>

#include "runtime/process/rank_env.h"

namespace trainrun {

// True for a variable that describes the process srun, mpirun or a PMI/PMIx
// server started (trainrun), not a rank: SLURM_STEP_*, SLURM_STEPID,
// SLURM_TASK_PID, SLURM_GTIDS, SLURM_SRUN_COMM_*, SLURM_LAUNCH_NODE_IPADDR,
// SLURM_CPU_BIND*, SLURM_DISTRIBUTION, SLURM_TASKS_PER_NODE, SLURM_PMIX*,
// PMI_*, PMIX_*, and OMPI_* except the user's settings (OMPI_MCA_* other than
// the launch's own ess/orte/pmix/plm/ras ones, OMPI_ALLOW_RUN_AS_ROOT*).
bool LauncherVariable(const std::string& name);

// `env` ("NAME=value" entries) without the LauncherVariable ones; order kept.
std::vector<std::string> WithoutLauncherVariables(std::vector<std::string> env);

// Under Slurm (SLURM_JOB_ID or SLURM_JOBID in `env`), the per-task Slurm
// variables with this rank's values, as identity variables; else nothing.
std::vector<TrainrunVar> SchedulerRankVariables(const std::map<std::string, std::string>& env,
                                                const RankContext& context);

}  // namespace trainrun
