// The variables a communicator needs beyond RANK, WORLD_SIZE, MASTER_ADDR... of
// rank_env.h, for one rank of a job assignment:
//
// clang-format off
//   multi-node jobs      NCCL_SOCKET_IFNAME, GLOO_SOCKET_IFNAME: the interface this
//                        node reaches the head by (defaults: a user's value wins)
//   communicator Mpi     AZ_BATCH_MASTER_NODE (address:port) and
//                        AZ_BATCHAI_MPI_MASTER_NODE (address), as Azure scripts read
//   communicator TensorFlow  TF_CONFIG: every rank a worker, this rank's index
//   communicator ParameterServer  TF_CONFIG with chief, ps and worker roles
//                        (tf_roles.h), this rank's type and index
// clang-format on
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "runtime/cluster/rendezvous.h"
#include "runtime/cluster/tf_roles.h"
#include "runtime/process/rank_env.h"
#include "runtime/run/job_config.h"

namespace trainrun {

// `roles`: the job's TensorFlow roles, needed for communicator ParameterServer
// (kInternal without them, or when TfConfigWithRoles fails).
Result<std::vector<TrainrunVar>> CommunicatorVariables(Communicator communicator,
                                                       const JobAssignment& job, int node_rank,
                                                       int local_rank,
                                                       const std::optional<TfRoles>& roles = {});

// Whether every node picks a port per local rank for TF_CONFIG (NodeSlot::tf_ports).
bool NeedsTfPorts(Communicator communicator);

// The assignment of a job that runs on this node alone: node 0 at 127.0.0.1
// with `process_count` ranks.
JobAssignment SingleNodeAssignment(const std::string& run_id, const std::string& host,
                                   int process_count, int master_port, std::vector<int> tf_ports);

// `count` distinct ports that are free now (for TensorFlow's workers).
Result<std::vector<int>> FreePorts(int count);

}  // namespace trainrun
