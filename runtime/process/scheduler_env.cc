#include "runtime/process/scheduler_env.h"

#include <algorithm>
#include <array>
#include <string_view>

namespace trainrun {

namespace {

bool StartsWith(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

// clang-format off
// Slurm's variables of the step and of the task srun started (trainrun).
constexpr std::array<std::string_view, 12> kSlurmTaskNames = {
    "SLURM_STEPID", "SLURM_TASK_PID", "SLURM_GTIDS", "SLURM_LAUNCH_NODE_IPADDR",
    "SLURM_DISTRIBUTION", "SLURM_TASKS_PER_NODE", "SLURM_SRUN_COMM_HOST",
    "SLURM_SRUN_COMM_PORT", "SLURM_PTY_PORT", "SLURM_PTY_WIN_COL", "SLURM_PTY_WIN_ROW",
    "SLURM_MPI_TYPE"};
constexpr std::array<std::string_view, 4> kSlurmTaskPrefixes = {
    "SLURM_STEP_", "SLURM_CPU_BIND", "SLURM_PMIX", "SLURM_PMI"};
// Open MPI's MCA parameters that mpirun or srun set for the process they launched.
constexpr std::array<std::string_view, 7> kOmpiLaunchPrefixes = {
    "OMPI_MCA_ess", "OMPI_MCA_orte_", "OMPI_MCA_pmix", "OMPI_MCA_plm", "OMPI_MCA_ras",
    "OMPI_MCA_initial_wdir", "OMPI_MCA_shmem_RUNTIME_QUERY_hint"};
// clang-format on

bool AnyPrefix(std::string_view name, const auto& prefixes) {
  return std::any_of(prefixes.begin(), prefixes.end(),
                     [&](std::string_view p) { return StartsWith(name, p); });
}

}  // namespace

bool LauncherVariable(const std::string& name) {
  if (StartsWith(name, "PMI_") || StartsWith(name, "PMIX_")) return true;
  if (StartsWith(name, "SLURM_")) {
    return std::find(kSlurmTaskNames.begin(), kSlurmTaskNames.end(), name) !=
               kSlurmTaskNames.end() ||
           AnyPrefix(name, kSlurmTaskPrefixes);
  }
  if (StartsWith(name, "OMPI_")) {
    if (StartsWith(name, "OMPI_ALLOW_RUN_AS_ROOT")) return false;
    if (!StartsWith(name, "OMPI_MCA_")) return true;  // OMPI_COMM_WORLD_RANK, OMPI_COMMAND...
    return AnyPrefix(name, kOmpiLaunchPrefixes);
  }
  return false;
}

std::vector<std::string> WithoutLauncherVariables(std::vector<std::string> env) {
  std::erase_if(env, [](const std::string& entry) {
    return LauncherVariable(entry.substr(0, entry.find('=')));
  });
  return env;
}

std::vector<TrainrunVar> SchedulerRankVariables(const std::map<std::string, std::string>& env,
                                                const RankContext& c) {
  if (env.count("SLURM_JOB_ID") == 0 && env.count("SLURM_JOBID") == 0) return {};
  using K = TrainrunVar::Kind;
  return {
      {"SLURM_PROCID", std::to_string(c.rank), K::kIdentity},
      {"SLURM_LOCALID", std::to_string(c.local_rank), K::kIdentity},
      {"SLURM_NODEID", std::to_string(c.node_rank), K::kIdentity},
      {"SLURM_NTASKS", std::to_string(c.world_size), K::kIdentity},
      {"SLURM_NPROCS", std::to_string(c.world_size), K::kIdentity},
      {"SLURM_NTASKS_PER_NODE", std::to_string(c.local_world_size), K::kIdentity},
  };
}

}  // namespace trainrun
