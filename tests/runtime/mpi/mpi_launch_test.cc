#include "runtime/mpi/mpi_launch.h"

#include <algorithm>

#include <gtest/gtest.h>

namespace trainrun {
namespace {

// The value that follows `--mca NAME` in argv, or "" when absent.
std::string Mca(const std::vector<std::string>& argv, const std::string& name) {
  for (size_t i = 0; i + 2 < argv.size(); ++i) {
    if (argv[i] == "--mca" && argv[i + 1] == name) return argv[i + 2];
  }
  return "";
}

TEST(MpiLaunchTest, MpirunUsesTrainrunsNodesAndAgentWhateverTheScheduler) {
  JobAssignment job;
  job.world_size = 4;
  for (int n = 0; n < 2; ++n) {
    NodeSlot node;
    node.node_rank = n;
    node.address = "10.78.0." + std::to_string(11 + n);
    node.interface = "eth0";
    node.process_count = 2;
    job.nodes.push_back(node);
  }
  MpirunOptions options;
  options.hostfile = "/tmp/h";
  options.trainrun = "/usr/bin/trainrun";
  options.program = {"python3", "train.py"};
  std::vector<std::string> argv = MpirunArgv(job, options);
  // Open MPI under Slurm would otherwise take SLURM_JOB_NODELIST (ras slurm) and
  // srun (plm slurm), and reject the hostfile's addresses.
  EXPECT_EQ(Mca(argv, "plm"), "rsh");
  EXPECT_EQ(Mca(argv, "ras"), "^slurm,gridengine,tm,lsf,alps");
  EXPECT_EQ(Mca(argv, "plm_rsh_agent"), "/usr/bin/trainrun rsh");
  EXPECT_EQ(Mca(argv, "btl_tcp_if_include"), "eth0");
  auto program = std::find(argv.begin(), argv.end(), "mpi-rank");
  ASSERT_NE(program, argv.end());
  EXPECT_EQ(
      std::vector<std::string>(program - 1, argv.end()),
      (std::vector<std::string>{"/usr/bin/trainrun", "mpi-rank", "--", "python3", "train.py"}));
  EXPECT_EQ(MpiHostfile(job), "10.78.0.11 slots=2 max_slots=2\n10.78.0.12 slots=2 max_slots=2\n");
}

// The agents say which attempt of the ranks their mpirun runs (in-place restarts):
// the head refuses one of a stopped attempt. One node has no agents.
TEST(MpiLaunchTest, TheAgentsEnvironmentNamesTheAttemptOnSeveralNodes) {
  auto has = [](const std::vector<std::string>& env, const std::string& entry) {
    return std::find(env.begin(), env.end(), entry) != env.end();
  };
  std::vector<std::string> env = MpiLauncherEnv({"PATH=/bin", "TRAINRUN_RSH_ATTEMPT=9"},
                                                "/tmp/ranks.sock", "ab12", "127.0.0.1:29400", 3);
  EXPECT_TRUE(has(env, "TRAINRUN_RSH_ATTEMPT=3"));
  EXPECT_FALSE(has(env, "TRAINRUN_RSH_ATTEMPT=9"));
  EXPECT_TRUE(has(env, "TRAINRUN_RSH_HEAD=127.0.0.1:29400"));
  EXPECT_TRUE(has(env, "TRAINRUN_RSH_KEY=ab12"));
  EXPECT_TRUE(has(env, "PATH=/bin"));
  std::vector<std::string> one_node = MpiLauncherEnv({"PATH=/bin"}, "/tmp/ranks.sock", "", "", 3);
  EXPECT_TRUE(std::none_of(one_node.begin(), one_node.end(), [](const std::string& entry) {
    return entry.rfind("TRAINRUN_RSH_", 0) == 0;
  }));
}

}  // namespace
}  // namespace trainrun
