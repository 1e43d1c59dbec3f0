// How the head starts an MPI job: a hostfile with one line per node (its
// address and its rank count, in node order) and an mpirun command line that
// maps ranks by slot (node-major, as trainrun numbers them), leaves binding to
// trainrun, and uses `trainrun rsh` as Open MPI's remote launch agent (no sshd,
// no ssh keys). Each rank runs as `trainrun mpi-rank -- PROGRAM...` so this
// node's trainrun gives it its environment, binding and log files
// (mpi_rank_server.h).
#pragma once

#include <string>
#include <vector>

#include "runtime/cluster/rendezvous.h"

namespace trainrun {

constexpr const char* kRshKeyVariable = "TRAINRUN_RSH_KEY";  // the rsh role's key, hex
constexpr const char* kRshHeadVariable =
    "TRAINRUN_RSH_HEAD";  // host:port of the head's control server
// The attempt of the ranks (in-place restarts) that the agent's mpirun runs: the
// head refuses an agent of another attempt (head_session_rsh.cc).
constexpr const char* kRshAttemptVariable = "TRAINRUN_RSH_ATTEMPT";

// Open MPI's allocation readers (ras components) that mpirun is told to ignore:
// the nodes are the hostfile's, whatever scheduler started trainrun.
constexpr const char* kMpiIgnoredAllocators = "^slurm,gridengine,tm,lsf,alps";

// "10.0.0.1 slots=2 max_slots=2\n10.0.0.2 slots=2 max_slots=2\n"; a single-node
// job lists "localhost".
std::string MpiHostfile(const JobAssignment& job);

struct MpirunOptions {
  std::string mpirun = "mpirun";
  std::string hostfile;              // path of MpiHostfile's text
  std::string trainrun;              // absolute path of this trainrun executable
  std::vector<std::string> program;  // the rank's argv
};

// The argv of mpirun for `job`. Command-line MCA parameters win over the
// environment's OMPI_MCA_*, so a user's OMPI_MCA_plm=slurm cannot undo them.
std::vector<std::string> MpirunArgv(const JobAssignment& job, const MpirunOptions& options);

// What mpirun and orted need in their environment besides the container's: the
// rank socket, the rsh agent's key, head and `attempt` (when there is a key: on
// several nodes), and, as root, Open MPI's consent to run as root (set here, for
// these processes only).
std::vector<std::string> MpiLauncherEnv(std::vector<std::string> base,
                                        const std::string& rank_socket,
                                        const std::string& rsh_key_hex, const std::string& rsh_head,
                                        int attempt = 1);

}  // namespace trainrun
