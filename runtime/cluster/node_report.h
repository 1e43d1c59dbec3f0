// What nodes tell the head at the end of a job and what the head answers: the
// values that the sessions (cluster_session.h) carry and that the head's decision
// (job_outcome.h) reads, without either needing the other.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "runtime/cluster/output_merge.h"
#include "runtime/run/run_record.h"

namespace trainrun {

// A node's account of its ranks once they ended (kNodeResult).
struct NodeResult {
  int node_rank = 0;
  std::string host;
  std::string outcome;  // RunOutcomeName, or "preparation failed"
  int exit_code = 0;
  std::string stop_reason;
  std::vector<RankRecord> ranks;
  std::optional<FailureRecord> failure;  // this node's root cause, stderr tail included
  int64_t failure_time_ms = 0;           // when it was seen (Unix ms)
  std::vector<std::string> warnings;
  std::string workdir;  // the node's run directory (its local files)

  // Read back by DecodeNodeResult (control_messages.h).
  nlohmann::json ToJson() const;
};

// The job's word on one attempt of its ranks (in-place restarts, README "In-place
// restarts"), which the head decides from the attempt's root cause once every node's
// ranks of it ended (kAttemptVerdict).
struct AttemptVerdict {
  int attempt = 1;
  bool restart = false;  // every node starts the ranks again, after `wait_ms`
  int64_t wait_ms = 0;
  std::string why;  // RestartDecision::why: "restart 1 of 3 in 1 s", "not restarted: ..."
  // The attempt's outcome for the job: its root cause's (the earliest failure).
  std::string outcome = "succeeded";  // RunOutcomeName
  int exit_code = 0;
  std::string reason;              // the root cause, naming the rank and node; "" for none
  std::optional<int> failed_rank;  // the rank whose failure ended it; -1: mpirun's
  std::optional<int> failed_node_rank;

  // Read back by DecodeAttemptVerdict (control_messages.h).
  nlohmann::json ToJson() const;
};

// A node's preflight (kPreflight): passed, or the exit code and the first failed
// check, naming the node, the GPU and the check; `report` is the node's entry of
// run.json's details.preflight.nodes (launcher/preflight.h writes it).
struct PreflightResult {
  bool passed = true;
  int exit_code = 0;
  std::string reason;
  nlohmann::json report = nlohmann::json::object();
};

// A node's uploads (kNodeDone).
struct NodeDone {
  uint64_t files = 0;
  uint64_t bytes = 0;
  std::vector<std::string> upload_errors;
};

// The head's final word on the job (kFinished), and on the head what goes into
// run.json.
struct JobOutcome {
  // The head never gave its final word (a node's view): nobody else will write
  // the job's final status.
  bool head_lost = false;
  int exit_code = 0;
  RunStatus status = RunStatus::kCompleted;
  std::string outcome;
  std::string stop_reason;
  std::optional<FailureRecord> failure;
  std::vector<RankRecord> ranks;                   // every node's, by rank (head only)
  std::vector<std::string> warnings;               // the other nodes', "node N: ..." (head only)
  std::vector<std::string> upload_errors;          // the other nodes', "node N: ..." (head only)
  std::vector<OutputConflict> conflicts;           // (head only)
  nlohmann::json nodes = nlohmann::json::array();  // per node: uploaded, lost (head only)
};

}  // namespace trainrun
