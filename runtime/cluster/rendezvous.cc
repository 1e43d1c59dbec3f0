#include "runtime/cluster/rendezvous.h"

#include <algorithm>

#include <fmt/format.h>

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
          {"tfPorts", tf_ports}};
}

Result<NodeJoin> NodeJoin::FromJson(const json& j) {
  NodeJoin n;
  try {
    n.node_rank = j.at("nodeRank").get<int>();
    n.node_count = j.at("nodeCount").get<int>();
    n.host = j.value("host", "");
    n.address = j.value("address", "");
    n.interface = j.value("interface", "");
    n.addresses = j.value("addresses", std::vector<std::string>{});
    n.process_count = j.at("processCount").get<int>();
    n.process_count_source = j.value("processCountSource", "");
    n.gpu_count = j.value("gpuCount", 0);
    n.pid = j.value("pid", 0);
    n.job_digest = j.value("jobDigest", "");
    n.trainrun_version = j.value("trainrunVersion", "");
    n.run_id = j.value("runId", "");
    n.tf_ports = j.value("tfPorts", std::vector<int>{});
  } catch (const json::exception& e) {
    return InvalidArgumentError(fmt::format("malformed Join message: {}", e.what()));
  }
  if (n.process_count < 1 || n.node_count < 1) {
    return InvalidArgumentError("malformed Join message: counts must be positive");
  }
  return n;
}

std::string NodeJoin::Describe() const {
  return fmt::format("node {} ({}{}{})", node_rank, host, address.empty() ? "" : ", ", address);
}

json JobAssignment::ToJson(std::optional<int> for_node) const {
  json nodes_json = json::array();
  for (const NodeSlot& n : nodes) {
    if (for_node && n.node_rank != 0 && n.node_rank != *for_node) continue;
    nodes_json.push_back({{"nodeRank", n.node_rank},
                          {"host", n.host},
                          {"address", n.address},
                          {"interface", n.interface},
                          {"addresses", n.addresses},
                          {"processCount", n.process_count},
                          {"firstRank", n.first_rank},
                          {"pid", n.pid},
                          {"tfPorts", n.tf_ports}});
  }
  return {{"runId", run_id},           {"nodeCount", nodes.size()}, {"worldSize", world_size},
          {"masterAddr", master_addr}, {"masterPort", master_port}, {"nodes", nodes_json}};
}

Result<JobAssignment> JobAssignment::FromJson(const json& j) {
  JobAssignment a;
  try {
    a.run_id = j.at("runId").get<std::string>();
    a.world_size = j.at("worldSize").get<int>();
    a.master_addr = j.at("masterAddr").get<std::string>();
    a.master_port = j.at("masterPort").get<int>();
    const size_t count = j.value("nodeCount", j.at("nodes").size());
    if (count > 1000000) return InvalidArgumentError("malformed Assign message: too many nodes");
    a.nodes.resize(count);
    for (size_t i = 0; i < count; ++i) a.nodes[i].node_rank = static_cast<int>(i);
    for (const json& n : j.at("nodes")) {
      NodeSlot slot;
      slot.node_rank = n.at("nodeRank").get<int>();
      slot.host = n.value("host", "");
      slot.address = n.value("address", "");
      slot.interface = n.value("interface", "");
      slot.addresses = n.value("addresses", std::vector<std::string>{});
      slot.process_count = n.at("processCount").get<int>();
      slot.first_rank = n.at("firstRank").get<int>();
      slot.pid = n.value("pid", 0);
      slot.tf_ports = n.value("tfPorts", std::vector<int>{});
      if (slot.node_rank < 0 || slot.node_rank >= static_cast<int>(count)) {
        return InvalidArgumentError("malformed Assign message: a node rank out of range");
      }
      a.nodes[slot.node_rank] = std::move(slot);
    }
  } catch (const json::exception& e) {
    return InvalidArgumentError(fmt::format("malformed Assign message: {}", e.what()));
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
