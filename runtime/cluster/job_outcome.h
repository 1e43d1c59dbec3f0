// The outcome of a multi-node job, as the head decides it from what it heard: the
// failures (each with the time the node that saw it saw it) and every node's
// result and uploads.
//
// clang-format off
//   exit code   the earliest failure's (a rank's own code, 69 for a lost node, 143
//               for a cancel, 124 for the time limit); 0 when there was none; 74
//               when that would be 0 but a node's uploads failed or never finished
//   failure     the earliest failed rank with its node, host and stderr tail (from
//               that node's result), or the lost node (rank -1)
//   ranks       every node's ranks, by rank
// clang-format on
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "runtime/cluster/node_report.h"
#include "runtime/cluster/output_merge.h"
#include "runtime/cluster/rendezvous.h"

namespace trainrun {

// A failure the head heard of.
struct FailureEvent {
  int64_t time_ms = 0;  // when it was seen, Unix ms
  int exit_code = 0;
  std::string reason;
  int node_rank = 0;
  std::optional<int> rank;  // a rank failed
  bool lost = false;        // a node was lost
};

// What the head knows of one node.
struct NodeReport {
  NodeJoin join;
  bool lost = false;
  bool result_in = false;
  NodeResult result;
  bool done_in = false;
  NodeDone done;
};

// `local` is the head's own view (its exit code and upload errors).
JobOutcome DecideJobOutcome(const std::vector<FailureEvent>& events,
                            const std::map<int, NodeReport>& nodes, const JobOutcome& local,
                            const std::vector<OutputConflict>& conflicts);

}  // namespace trainrun
