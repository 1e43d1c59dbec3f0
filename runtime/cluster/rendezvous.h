// Rendezvous: what each node tells the head when it joins, the checks the head
// makes, and the assignment it sends back (global ranks, master address and
// port, every node's address and interface).
//
// Ranks are numbered node-major: node 0's local ranks first, then node 1's, and
// so on, so RANK = first_rank(node) + LOCAL_RANK, as torchrun and mpirun's
// by-node mapping number them.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/status.h"

namespace trainrun {

// What a node tells the head (kJoin).
struct NodeJoin {
  int node_rank = 0;
  int node_count = 1;
  std::string host;                    // host name
  std::string address;                 // the address it reaches the head from
  std::string interface;               // the interface holding `address`
  std::vector<std::string> addresses;  // every IPv4 address of the node
  int process_count = 1;               // local ranks
  std::string process_count_source;    // "job file", "one per GPU", ...
  int gpu_count = 0;
  int pid = 0;             // its trainrun's pid
  std::string job_digest;  // SHA-256 of the job file as parsed
  std::string trainrun_version;
  std::string run_id;         // the run id it was given; empty: none
  std::vector<int> tf_ports;  // TensorFlow: a free port per local rank
  // Its --heartbeat-timeout: the head beats it a quarter of that apart (a node
  // that does not say, 0, every heartbeat interval of the head's own).
  int64_t heartbeat_timeout_ms = 0;

  nlohmann::json ToJson() const;
  static Result<NodeJoin> FromJson(const nlohmann::json& json);
  // "node 2 (gpu-003, 10.0.0.3)"
  std::string Describe() const;
};

// One node in the assignment.
struct NodeSlot {
  int node_rank = 0;
  std::string host;
  std::string address;
  std::string interface;
  std::vector<std::string> addresses;
  int process_count = 1;
  int first_rank = 0;  // its local rank 0's global rank
  int pid = 0;
  std::vector<int> tf_ports;
};

// What the head sends every node (kAssign).
struct JobAssignment {
  std::string run_id;
  int world_size = 0;
  std::string master_addr;      // the head's address, as the nodes reach it
  int master_port = 0;          // free on the head when picked
  std::vector<NodeSlot> nodes;  // by node rank
  // The attempt of the ranks the node joins: 1, or a later one for a node that
  // replaces a lost one (README "A replaced node rejoins").
  int attempt = 1;
  // The head's --heartbeat-timeout, so that each node beats it often enough for it
  // (README "Watching each other"); 0 from a head that does not say.
  int64_t head_heartbeat_timeout_ms = 0;

  // Every node's slot; or, with `for_node` set, only the head's and that node's
  // (what a node needs unless it builds TF_CONFIG), so a 512-node rendezvous
  // sends 512 small messages rather than 512 copies of the whole table.
  nlohmann::json ToJson(std::optional<int> for_node = std::nullopt) const;
  // Slots that were left out come back with just their node rank.
  static Result<JobAssignment> FromJson(const nlohmann::json& json);
  // The node that `host` names: a node's host name, one of its addresses, or
  // "node<N>". Null when none does.
  const NodeSlot* FindHost(const std::string& host) const;
};

// The head's book while nodes join.
class RendezvousBook {
 public:
  // The head's own entry; its node_count is the job's.
  explicit RendezvousBook(NodeJoin head);

  // Checks a joining node against the head and the nodes already in: its node
  // rank is in range and not taken, and it agrees on the node count, the job
  // file and the run id. kInvalidArgument naming both sides when not; a node
  // that rejoins from the same host replaces its old entry.
  Status Add(const NodeJoin& node);
  // Forgets a node that left before the rendezvous completed.
  void Remove(int node_rank);

  bool complete() const { return static_cast<int>(joined_.size()) == head_.node_count; }
  int joined() const { return static_cast<int>(joined_.size()); }
  std::vector<int> missing() const;
  const std::map<int, NodeJoin>& nodes() const { return joined_; }
  // Notes worth a warning: nodes running different trainrun versions or
  // different rank counts.
  std::vector<std::string> Warnings() const;

  // Numbers the ranks node-major. Call when complete().
  JobAssignment Assign(const std::string& run_id, const std::string& master_addr,
                       int master_port) const;

 private:
  NodeJoin head_;
  std::map<int, NodeJoin> joined_;
};

// TF_CONFIG for `rank`: every rank a "worker" at its node's address and port,
// in rank order; worker 0 acts as chief.
std::string TfConfigFor(const JobAssignment& job, int rank);

}  // namespace trainrun
