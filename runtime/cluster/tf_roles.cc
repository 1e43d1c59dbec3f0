#include "runtime/cluster/tf_roles.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace trainrun {

Result<TfRoles> ResolveTfRoles(const JobConfig& job, int node_count) {
  const TensorFlowConfig& tf = job.tensorflow;
  TfRoles roles;
  roles.chief = tf.chief ? 1 : 0;
  roles.ps = tf.parameter_server_count.value_or(1);
  const std::optional<int>& per_node = job.process_count_per_node;
  const int64_t slots = per_node ? int64_t{node_count} * *per_node : 0;
  if (tf.worker_count) {
    roles.workers = *tf.worker_count;
  } else if (per_node) {
    if (slots - roles.chief - roles.ps < 1) {
      return InvalidJobError(fmt::format(
          "{}: /tensorflow: nodeCount {} x processCountPerNode {} = {} processes leave no "
          "worker beside {}{} parameter server(s); give more processes or fewer parameter "
          "servers",
          job.file, node_count, *per_node, slots, roles.chief ? "1 chief and " : "", roles.ps));
    }
    roles.workers = static_cast<int>(slots - roles.chief - roles.ps);
  } else {
    roles.workers = node_count;
  }
  if (per_node && roles.total() != slots) {
    return InvalidJobError(fmt::format(
        "{}: /tensorflow: {} = {} processes, but nodeCount {} x processCountPerNode {} = {}; "
        "make tensorflow.workerCount and tensorflow.parameterServerCount add up, or leave "
        "processCountPerNode out to have the processes dealt over the nodes",
        job.file, roles.Describe(), roles.total(), node_count, *per_node, slots));
  }
  if (!per_node && roles.total() < node_count) {
    return InvalidJobError(fmt::format(
        "{}: /tensorflow: {} = {} processes on nodeCount {} nodes: a node would run nothing; "
        "raise tensorflow.workerCount or lower nodeCount",
        job.file, roles.Describe(), roles.total(), node_count));
  }
  return roles;
}

Status ApplyTfRoles(JobConfig* job, int node_count, int node_rank) {
  if (job->communicator != Communicator::kParameterServer) return Status::Ok();
  TR_ASSIGN_OR_RETURN(TfRoles roles, ResolveTfRoles(*job, node_count));
  job->tensorflow.roles = roles;
  job->process_count_per_node =
      static_cast<int>(TfTasksOnNode(roles, node_count, node_rank).size());
  return Status::Ok();
}

Result<TfTask> TfTaskOf(const JobAssignment& job, const TfRoles& roles, int rank) {
  const int node_count = static_cast<int>(job.nodes.size());
  for (const NodeSlot& node : job.nodes) {
    if (rank < node.first_rank || rank >= node.first_rank + node.process_count) continue;
    std::vector<TfTask> tasks = TfTasksOnNode(roles, node_count, node.node_rank);
    const size_t local = static_cast<size_t>(rank - node.first_rank);
    if (local >= tasks.size()) break;
    return tasks[local];
  }
  return InternalError(
      fmt::format("rank {} has no TensorFlow task among {}", rank, roles.Describe()));
}

Result<std::string> TfConfigWithRoles(const JobAssignment& job, const TfRoles& roles, int rank) {
  const int node_count = static_cast<int>(job.nodes.size());
  std::vector<std::string> chief(roles.chief), ps(roles.ps), workers(roles.workers);
  for (const NodeSlot& node : job.nodes) {
    std::vector<TfTask> tasks = TfTasksOnNode(roles, node_count, node.node_rank);
    if (static_cast<int>(tasks.size()) != node.process_count) {
      return InternalError(fmt::format(
          "node {} runs {} process(es), but {} over {} nodes gives it {}", node.node_rank,
          node.process_count, roles.Describe(), node_count, tasks.size()));
    }
    for (size_t local = 0; local < tasks.size(); ++local) {
      const TfTask& task = tasks[local];
      std::vector<std::string>& list = task.type == "chief" ? chief
                                       : task.type == "ps"  ? ps
                                                            : workers;
      const int port = local < node.tf_ports.size() ? node.tf_ports[local] : 0;
      list.at(task.index) = fmt::format("{}:{}", node.address, port);
    }
  }
  TR_ASSIGN_OR_RETURN(TfTask me, TfTaskOf(job, roles, rank));
  nlohmann::json cluster = nlohmann::json::object();
  if (!chief.empty()) cluster["chief"] = chief;
  if (!ps.empty()) cluster["ps"] = ps;
  cluster["worker"] = workers;
  nlohmann::json config = {{"cluster", cluster},
                           {"task", {{"type", me.type}, {"index", me.index}}}};
  return config.dump();
}

}  // namespace trainrun
