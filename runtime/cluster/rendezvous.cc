#include "runtime/cluster/rendezvous.h"

#include <algorithm>

#include <fmt/format.h>

#include "runtime/cluster/control_messages.h"
#include "runtime/cluster/field_reader.h"
#include "runtime/run/restart_policy.h"

namespace trainrun {

using nlohmann::json;

json NodeJoin::ToJson() const {
  return {{"nodeRank", node_rank},
          {"nodeCount", node_count},
          {"host", host},
          {"address", address},
          {"interface", interface},
          {"addresses", addresses},
          {"processCount", process_count},
          {"processCountSource", process_count_source},
          {"gpuCount", gpu_count},
          {"pid", pid},
          {"jobDigest", job_digest},
          {"trainrunVersion", trainrun_version},
          {"runId", run_id},
          {"tfPorts", tf_ports},
          {"heartbeatTimeoutMs", heartbeat_timeout_ms}};
}

Result<NodeJoin> NodeJoin::FromJson(const json& j) {
  constexpr auto kOptional = Presence::kOptional;
  FieldReader r(MessageType::kJoin, j);
  NodeJoin n;
  TR_RETURN_IF_ERROR(r.Int("nodeRank", 0, kMaxNodeCount - 1, &n.node_rank));
  TR_RETURN_IF_ERROR(r.Int("nodeCount", 1, kMaxNodeCount, &n.node_count));
  TR_RETURN_IF_ERROR(r.Text("host", kMaxShortTextBytes, &n.host, kOptional));
  TR_RETURN_IF_ERROR(r.Text("address", kMaxShortTextBytes, &n.address, kOptional));
  TR_RETURN_IF_ERROR(r.Text("interface", kMaxShortTextBytes, &n.interface, kOptional));
  TR_RETURN_IF_ERROR(
      r.TextList("addresses", kMaxPeerListItems, kMaxShortTextBytes, &n.addresses, kOptional));
  TR_RETURN_IF_ERROR(r.Int("processCount", 1, kMaxProcessesPerNode, &n.process_count));
  TR_RETURN_IF_ERROR(
      r.Text("processCountSource", kMaxShortTextBytes, &n.process_count_source, kOptional));
  TR_RETURN_IF_ERROR(r.Int("gpuCount", 0, kMaxProcessesPerNode, &n.gpu_count, kOptional));
  TR_RETURN_IF_ERROR(r.Int("pid", 0, kMaxPid, &n.pid, kOptional));
  TR_RETURN_IF_ERROR(r.String("jobDigest", kMaxShortTextBytes, &n.job_digest, kOptional));
  TR_RETURN_IF_ERROR(r.Text("trainrunVersion", kMaxShortTextBytes, &n.trainrun_version, kOptional));
  TR_RETURN_IF_ERROR(r.String("runId", kMaxShortTextBytes, &n.run_id, kOptional));
  if (!n.run_id.empty() && !IsValidRunName(n.run_id)) {
    return r.Error(
        "runId",
        "expected 1-255 letters, digits, '_', '-' or '.', starting with a letter or digit");
  }
  TR_RETURN_IF_ERROR(r.IntList("tfPorts", kMaxProcessesPerNode, 0, 65535, &n.tf_ports, kOptional));
  TR_RETURN_IF_ERROR(
      r.Int("heartbeatTimeoutMs", 0, kMaxTimeMs, &n.heartbeat_timeout_ms, kOptional));
  return n;
}

std::string NodeJoin::Describe() const {
  return fmt::format("node {} ({}{}{})", node_rank, host, address.empty() ? "" : ", ", address);
}

json JobAssignment::ToJson(std::optional<int> for_node) const {
  json nodes_json = json::array();
  auto add = [&](const NodeSlot& n) {
    nodes_json.push_back({{"nodeRank", n.node_rank},
                          {"host", n.host},
                          {"address", n.address},
                          {"interface", n.interface},
                          {"addresses", n.addresses},
                          {"processCount", n.process_count},
                          {"firstRank", n.first_rank},
                          {"pid", n.pid},
                          {"tfPorts", n.tf_ports}});
  };
  // One node's message takes its two slots by index (the nodes are by node
  // rank), not by a scan: the head sends N of them, and N scans of N slots made
  // the rendezvous quadratic.
  auto slot = [&](int rank) -> const NodeSlot* {
    const size_t i = static_cast<size_t>(rank);
    if (rank >= 0 && i < nodes.size() && nodes[i].node_rank == rank) return &nodes[i];
    auto it = std::find_if(nodes.begin(), nodes.end(),
                           [rank](const NodeSlot& n) { return n.node_rank == rank; });
    return it == nodes.end() ? nullptr : &*it;
  };
  if (!for_node) {
    for (const NodeSlot& n : nodes) add(n);
  } else {
    if (const NodeSlot* head = slot(0)) add(*head);
    if (*for_node != 0) {
      if (const NodeSlot* own = slot(*for_node)) add(*own);
    }
  }
  json out = {{"runId", run_id},           {"nodeCount", nodes.size()}, {"worldSize", world_size},
              {"masterAddr", master_addr}, {"masterPort", master_port}, {"nodes", nodes_json}};
  if (attempt > 1) out["attempt"] = attempt;
  if (head_heartbeat_timeout_ms > 0) out["headHeartbeatTimeoutMs"] = head_heartbeat_timeout_ms;
  return out;
}

Result<JobAssignment> JobAssignment::FromJson(const json& j) {
  constexpr auto kOptional = Presence::kOptional;
  FieldReader r(MessageType::kAssign, j);
  JobAssignment a;
  TR_RETURN_IF_ERROR(r.String("runId", kMaxShortTextBytes, &a.run_id));
  if (!IsValidRunName(a.run_id)) {
    return r.Error(
        "runId",
        "expected 1-255 letters, digits, '_', '-' or '.', starting with a letter or digit");
  }
  TR_RETURN_IF_ERROR(r.Int("worldSize", 1, kMaxGlobalRank + 1, &a.world_size));
  TR_RETURN_IF_ERROR(r.String("masterAddr", kMaxShortTextBytes, &a.master_addr));
  TR_RETURN_IF_ERROR(r.Int("masterPort", 0, 65535, &a.master_port));
  TR_RETURN_IF_ERROR(r.Int("attempt", 1, kMaxRestartsLimit + 1, &a.attempt, kOptional));
  TR_RETURN_IF_ERROR(
      r.Int("headHeartbeatTimeoutMs", 0, kMaxTimeMs, &a.head_heartbeat_timeout_ms, kOptional));
  TR_ASSIGN_OR_RETURN(std::vector<FieldReader> nodes, r.Objects("nodes", kMaxNodeCount));
  int count = static_cast<int>(nodes.size());
  TR_RETURN_IF_ERROR(r.Int("nodeCount", 1, kMaxNodeCount, &count, kOptional));
  a.nodes.resize(static_cast<size_t>(count));
  for (int i = 0; i < count; ++i) a.nodes[static_cast<size_t>(i)].node_rank = i;
  for (const FieldReader& n : nodes) {
    NodeSlot slot;
    TR_RETURN_IF_ERROR(n.Int("nodeRank", 0, count - 1, &slot.node_rank));
    TR_RETURN_IF_ERROR(n.Text("host", kMaxRelayedShortTextBytes, &slot.host, kOptional));
    TR_RETURN_IF_ERROR(n.Text("address", kMaxRelayedShortTextBytes, &slot.address, kOptional));
    TR_RETURN_IF_ERROR(n.Text("interface", kMaxRelayedShortTextBytes, &slot.interface, kOptional));
    TR_RETURN_IF_ERROR(n.TextList("addresses", kMaxPeerListItems, kMaxRelayedShortTextBytes,
                                  &slot.addresses, kOptional));
    TR_RETURN_IF_ERROR(n.Int("processCount", 1, kMaxProcessesPerNode, &slot.process_count));
    TR_RETURN_IF_ERROR(n.Int("firstRank", 0, a.world_size - 1, &slot.first_rank));
    if (int64_t{slot.first_rank} + slot.process_count > a.world_size) {
      return n.Error("processCount",
                     fmt::format("ranks {} to {} do not fit the world size {}", slot.first_rank,
                                 slot.first_rank + slot.process_count - 1, a.world_size));
    }
    TR_RETURN_IF_ERROR(n.Int("pid", 0, kMaxPid, &slot.pid, kOptional));
    TR_RETURN_IF_ERROR(
        n.IntList("tfPorts", kMaxProcessesPerNode, 0, 65535, &slot.tf_ports, kOptional));
    a.nodes[static_cast<size_t>(slot.node_rank)] = std::move(slot);
  }
  return a;
}

const NodeSlot* JobAssignment::FindHost(const std::string& host) const {
  for (const NodeSlot& n : nodes) {
    if (n.host == host || n.address == host || host == fmt::format("node{}", n.node_rank) ||
        std::find(n.addresses.begin(), n.addresses.end(), host) != n.addresses.end()) {
      return &n;
    }
  }
  // A fully qualified name of a node known by its short name, or the reverse.
  std::string short_host = host.substr(0, host.find('.'));
  for (const NodeSlot& n : nodes) {
    if (n.host.substr(0, n.host.find('.')) == short_host) return &n;
  }
  return nullptr;
}

RendezvousBook::RendezvousBook(NodeJoin head) : head_(std::move(head)) {
  joined_[head_.node_rank] = head_;
}

Status RendezvousBook::Add(const NodeJoin& node) {
  const std::string who = node.Describe();
  if (node.node_count != head_.node_count) {
    return InvalidArgumentError(
        fmt::format("{} thinks the job has {} node(s); the head ({}) says {}", who, node.node_count,
                    head_.host, head_.node_count));
  }
  if (node.node_rank == head_.node_rank) {
    return InvalidArgumentError(
        fmt::format("{} claims node rank {}, which is the head's ({}): two "
                    "nodes think they are the head",
                    who, node.node_rank, head_.host));
  }
  if (node.node_rank < 0 || node.node_rank >= head_.node_count) {
    return InvalidArgumentError(fmt::format("{}: node rank {} is out of range for a {}-node job",
                                            who, node.node_rank, head_.node_count));
  }
  if (node.job_digest != head_.job_digest) {
    return InvalidArgumentError(fmt::format(
        "{} runs a different job file (sha256 {}) than the head {} "
        "(sha256 {}): every node must "
        "get the same job file",
        who, node.job_digest.substr(0, 12), head_.host, head_.job_digest.substr(0, 12)));
  }
  if (!node.run_id.empty() && !head_.run_id.empty() && node.run_id != head_.run_id) {
    return InvalidArgumentError(
        fmt::format("{} was given run id \"{}\", the head \"{}\"", who, node.run_id, head_.run_id));
  }
  auto existing = joined_.find(node.node_rank);
  if (existing != joined_.end() && existing->second.host != node.host) {
    return InvalidArgumentError(fmt::format("node rank {} is claimed by {} and by {}",
                                            node.node_rank, existing->second.Describe(), who));
  }
  joined_[node.node_rank] = node;
  return Status::Ok();
}

void RendezvousBook::Remove(int node_rank) {
  if (node_rank != head_.node_rank) joined_.erase(node_rank);
}

std::vector<int> RendezvousBook::missing() const {
  std::vector<int> out;
  for (int r = 0; r < head_.node_count; ++r) {
    if (joined_.count(r) == 0) out.push_back(r);
  }
  return out;
}

std::vector<std::string> RendezvousBook::Warnings() const {
  std::vector<std::string> warnings;
  for (const auto& [rank, node] : joined_) {
    if (node.trainrun_version != head_.trainrun_version) {
      warnings.push_back(fmt::format("{} runs trainrun {}, the head {}", node.Describe(),
                                     node.trainrun_version, head_.trainrun_version));
    }
    if (node.process_count != head_.process_count) {
      warnings.push_back(
          fmt::format("{} runs {} rank(s) ({}), the head {} ({}); ranks are still "
                      "numbered node by node",
                      node.Describe(), node.process_count, node.process_count_source,
                      head_.process_count, head_.process_count_source));
    }
  }
  return warnings;
}

JobAssignment RendezvousBook::Assign(const std::string& run_id, const std::string& master_addr,
                                     int master_port) const {
  JobAssignment a;
  a.run_id = run_id;
  a.master_addr = master_addr;
  a.master_port = master_port;
  int next_rank = 0;
  for (const auto& [rank, node] : joined_) {
    NodeSlot slot;
    slot.node_rank = rank;
    slot.host = node.host;
    slot.address = node.address;
    slot.interface = node.interface;
    slot.addresses = node.addresses;
    slot.process_count = node.process_count;
    slot.first_rank = next_rank;
    slot.pid = node.pid;
    slot.tf_ports = node.tf_ports;
    next_rank += node.process_count;
    a.nodes.push_back(std::move(slot));
  }
  a.world_size = next_rank;
  return a;
}

std::string TfConfigFor(const JobAssignment& job, int rank) {
  json workers = json::array();
  for (const NodeSlot& node : job.nodes) {
    for (int local = 0; local < node.process_count; ++local) {
      int port = local < static_cast<int>(node.tf_ports.size()) ? node.tf_ports[local] : 0;
      workers.push_back(fmt::format("{}:{}", node.address, port));
    }
  }
  json config = {{"cluster", {{"worker", workers}}},
                 {"task", {{"type", "worker"}, {"index", rank}}}};
  return config.dump();
}

}  // namespace trainrun
