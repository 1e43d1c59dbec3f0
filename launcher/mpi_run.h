// Running this node's part of an MPI job (communicator Mpi): the head starts
// mpirun over a hostfile of the job's nodes with `trainrun rsh` as the launch
// agent; every node serves its ranks' `trainrun mpi-rank` wrappers and, except
// the head, runs the Open MPI daemons the agent asks for. See
// runtime/mpi_launch.h, runtime/mpi_supervisor.h and runtime/mpi_rank_server.h.
#pragma once

#include <string>
#include <vector>

#include "runtime/cluster/cluster_session.h"
#include "runtime/cluster/rendezvous.h"
#include "runtime/process/process.h"
#include "runtime/process/supervisor.h"
#include "runtime/run/job_config.h"

namespace trainrun {

struct MpiRunInputs {
  const JobAssignment* assignment = nullptr;
  int node_rank = 0;
  std::vector<RankLaunch> launches;  // this node's ranks as planned, log pipes set
  int mpirun_stdout_fd = -1;         // the head: where mpirun's own output goes
  int mpirun_stderr_fd = -1;
  ProcessSet* processes = nullptr;
  Reporter* reporter = nullptr;
  SupervisorOptions supervision;
  ClusterSession* session = nullptr;  // null for a single-node job
  std::string rsh_key_hex;            // the rsh agent's key; empty on one node
  int control_port = 0;
  std::vector<std::string> base_env;  // the container's environment, job token removed
  int attempt = 1;                    // of the ranks (in-place restarts): the rsh agents say it
};

SupervisionResult RunMpi(MpiRunInputs in);

}  // namespace trainrun
