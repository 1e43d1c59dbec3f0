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
  EXPECT_EQ(std::vector<std::string>(program - 1, argv.end()),
            (std::vector<std::string>{"/usr/bin/trainrun", "mpi-rank", "--", "python3",
                                      "train.py"}));
  EXPECT_EQ(MpiHostfile(job),
            "10.78.0.11 slots=2 max_slots=2\n10.78.0.12 slots=2 max_slots=2\n");
}

}  // namespace
}  // namespace trainrun
