#include "runtime/process/scheduler_env.h"

#include <gtest/gtest.h>

namespace trainrun {
namespace {

TEST(SchedulerEnvTest, LaunchVariablesOfTrainrunsOwnProcessAreRemoved) {
  for (const char* name :
       {"SLURM_STEP_ID", "SLURM_STEPID", "SLURM_STEP_NODELIST", "SLURM_STEP_NUM_TASKS",
        "SLURM_TASK_PID", "SLURM_GTIDS", "SLURM_SRUN_COMM_PORT", "SLURM_CPU_BIND_LIST",
        "SLURM_TASKS_PER_NODE", "SLURM_PMIXP_ABORT_AGENT_PORT", "PMI_FD", "PMI_RANK", "PMIX_RANK",
        "PMIX_NAMESPACE", "OMPI_COMM_WORLD_RANK", "OMPI_COMMAND", "OMPI_MCA_ess",
        "OMPI_MCA_orte_hnp_uri", "OMPI_MCA_pmix", "OMPI_MCA_plm", "OMPI_MCA_ras"}) {
    EXPECT_TRUE(LauncherVariable(name)) << name;
  }
  for (const char* name :
       {"SLURM_JOB_ID", "SLURM_JOBID", "SLURM_JOB_NAME", "SLURM_JOB_NODELIST", "SLURM_NODELIST",
        "SLURM_NNODES", "SLURM_JOB_NUM_NODES", "SLURM_CLUSTER_NAME", "SLURM_SUBMIT_DIR",
        "SLURMD_NODENAME", "SLURM_CPUS_ON_NODE", "OMPI_MCA_btl", "OMPI_MCA_btl_tcp_if_include",
        "OMPI_ALLOW_RUN_AS_ROOT", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "PATH", "PMIXY"}) {
    EXPECT_FALSE(LauncherVariable(name)) << name;
  }
  EXPECT_EQ(WithoutLauncherVariables({"PATH=/bin", "SLURM_STEP_ID=0", "SLURM_JOB_ID=7",
                                      "PMI_FD=5", "OMPI_COMM_WORLD_SIZE=2"}),
            (std::vector<std::string>{"PATH=/bin", "SLURM_JOB_ID=7"}));
}

TEST(SchedulerEnvTest, UnderSlurmTheTaskVariablesAreTheRanks) {
  RankContext c;
  c.rank = 3;
  c.local_rank = 1;
  c.world_size = 4;
  c.local_world_size = 2;
  c.node_rank = 1;
  std::vector<TrainrunVar> vars = SchedulerRankVariables({{"SLURM_JOB_ID", "42"}}, c);
  std::map<std::string, std::string> got;
  for (const TrainrunVar& v : vars) {
    EXPECT_EQ(v.kind, TrainrunVar::Kind::kIdentity) << v.name;
    got[v.name] = v.value;
  }
  EXPECT_EQ(got, (std::map<std::string, std::string>{{"SLURM_PROCID", "3"},
                                                     {"SLURM_LOCALID", "1"},
                                                     {"SLURM_NODEID", "1"},
                                                     {"SLURM_NTASKS", "4"},
                                                     {"SLURM_NPROCS", "4"},
                                                     {"SLURM_NTASKS_PER_NODE", "2"}}));
  EXPECT_TRUE(SchedulerRankVariables({{"PATH", "/bin"}}, c).empty());
  // Merged like trainrun's other identity variables: srun's value is replaced,
  // the job file's wins.
  MergedEnvironment merged =
      MergeEnvironment({"SLURM_JOB_ID=42", "SLURM_PROCID=1"}, {{"SLURM_NTASKS", "9"}}, vars);
  std::map<std::string, std::string> env = EnvironmentMap(merged.entries);
  EXPECT_EQ(env["SLURM_PROCID"], "3");
  EXPECT_EQ(env["SLURM_NTASKS"], "9");
  EXPECT_EQ(env["SLURM_JOB_ID"], "42");
}

}  // namespace
}  // namespace trainrun
