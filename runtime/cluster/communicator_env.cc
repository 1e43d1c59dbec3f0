#include "runtime/cluster/communicator_env.h"

#include <set>

#include <fmt/format.h>

#include "base/free_port.h"

namespace trainrun {

Result<std::vector<TrainrunVar>> CommunicatorVariables(Communicator communicator,
                                                       const JobAssignment& job, int node_rank,
                                                       int local_rank,
                                                       const std::optional<TfRoles>& roles) {
  using K = TrainrunVar::Kind;
  std::vector<TrainrunVar> vars;
  const NodeSlot& node = job.nodes.at(node_rank);
  if (job.nodes.size() > 1 && !node.interface.empty()) {
    vars.push_back({"NCCL_SOCKET_IFNAME", node.interface, K::kDefault});
    vars.push_back({"GLOO_SOCKET_IFNAME", node.interface, K::kDefault});
  }
  if (communicator == Communicator::kMpi) {
    vars.push_back({"AZ_BATCH_MASTER_NODE", fmt::format("{}:{}", job.master_addr, job.master_port),
                    K::kIdentity});
    vars.push_back({"AZ_BATCHAI_MPI_MASTER_NODE", job.master_addr, K::kIdentity});
  }
  if (communicator == Communicator::kTensorFlow) {
    vars.push_back({"TF_CONFIG", TfConfigFor(job, node.first_rank + local_rank), K::kIdentity});
  }
  if (communicator == Communicator::kParameterServer) {
    if (!roles) return InternalError("a ParameterServer job without its TensorFlow roles");
    TR_ASSIGN_OR_RETURN(std::string config,
                        TfConfigWithRoles(job, *roles, node.first_rank + local_rank));
    vars.push_back({"TF_CONFIG", std::move(config), K::kIdentity});
  }
  return vars;
}

bool NeedsTfPorts(Communicator communicator) {
  return communicator == Communicator::kTensorFlow ||
         communicator == Communicator::kParameterServer;
}

JobAssignment SingleNodeAssignment(const std::string& run_id, const std::string& host,
                                   int process_count, int master_port, std::vector<int> tf_ports) {
  JobAssignment job;
  job.run_id = run_id;
  job.world_size = process_count;
  job.master_addr = "127.0.0.1";
  job.master_port = master_port;
  NodeSlot node;
  node.host = host;
  node.address = "127.0.0.1";
  node.interface = "lo";
  node.process_count = process_count;
  node.tf_ports = std::move(tf_ports);
  job.nodes.push_back(std::move(node));
  return job;
}

Result<std::vector<int>> FreePorts(int count) {
  std::set<int> ports;
  for (int attempt = 0; static_cast<int>(ports.size()) < count && attempt < count * 10; ++attempt) {
    TR_ASSIGN_OR_RETURN(int port, FindFreePort("0.0.0.0"));
    ports.insert(port);
  }
  if (static_cast<int>(ports.size()) < count) {
    return UnavailableError(fmt::format("could not find {} free ports", count));
  }
  return std::vector<int>(ports.begin(), ports.end());
}

}  // namespace trainrun
