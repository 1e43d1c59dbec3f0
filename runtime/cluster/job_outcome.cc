#include "runtime/cluster/job_outcome.h"

#include <algorithm>

#include <fmt/format.h>

#include "runtime/process/supervisor.h"

namespace trainrun {
namespace {

using nlohmann::json;

RunStatus FinalStatus(int exit_code) {
  if (exit_code == 0) return RunStatus::kCompleted;
  if (exit_code == kExitCodeCanceled) return RunStatus::kCanceled;
  return RunStatus::kFailed;
}

}  // namespace

JobOutcome DecideJobOutcome(const std::vector<FailureEvent>& events_in,
                            const std::map<int, NodeReport>& nodes, const JobOutcome& local,
                            const std::vector<OutputConflict>& conflicts) {
  static const NodeReport kUnknown;

  JobOutcome out = local;
  out.warnings.clear();
  out.upload_errors.clear();
  out.ranks.clear();
  out.conflicts = conflicts;
  out.nodes = json::array();
  for (const auto& [rank, node] : nodes) {
    for (const RankRecord& r : node.result.ranks) out.ranks.push_back(r);
    if (rank != 0) {
      for (const std::string& w : node.result.warnings)
        out.warnings.push_back(fmt::format("node {}: {}", rank, w));
      for (const std::string& e : node.done.upload_errors) {
        out.upload_errors.push_back(fmt::format("node {}: {}", rank, e));
      }
    }
    out.nodes.push_back({{"nodeRank", rank},
                         {"host", node.join.host},
                         {"address", node.join.address},
                         {"workdir", node.result.workdir},
                         {"lost", node.lost},
                         {"uploaded", node.done_in},
                         {"files", node.done.files},
                         {"bytes", node.done.bytes}});
  }
  std::sort(out.ranks.begin(), out.ranks.end(),
            [](const RankRecord& a, const RankRecord& b) { return a.rank < b.rank; });

  // The root cause: the earliest failure seen anywhere.
  std::vector<FailureEvent> events = events_in;
  for (const auto& [rank, node] : nodes) {
    // A node whose failure report was lost on the way still has it in its
    // result.
    if (node.result_in && node.result.failure && node.result.failure_time_ms > 0) {
      // Copies: clang before 16 cannot capture structured bindings.
      const int node_rank = rank;
      const int failed_rank = node.result.failure->rank;
      bool known = std::any_of(events.begin(), events.end(), [&](const FailureEvent& e) {
        return e.node_rank == node_rank && e.rank == failed_rank;
      });
      if (!known) {
        events.push_back({node.result.failure_time_ms, node.result.failure->exit_code,
                          node.result.failure->reason, rank, node.result.failure->rank, false});
      }
    }
  }
  std::stable_sort(events.begin(), events.end(), [](const FailureEvent& a, const FailureEvent& b) {
    return a.time_ms < b.time_ms;
  });
  out.failure.reset();
  if (!events.empty()) {
    const FailureEvent& first = events.front();
    out.exit_code = first.exit_code;
    out.stop_reason = first.reason;
    if (first.rank) {
      out.outcome = "rank failed";
      const NodeReport& node = nodes.count(first.node_rank) ? nodes.at(first.node_rank) : kUnknown;
      if (node.result.failure && node.result.failure->rank == *first.rank) {
        out.failure = node.result.failure;
      } else {
        FailureRecord f;
        f.rank = *first.rank;
        f.node_rank = first.node_rank;
        f.host = node.join.host;
        f.exit_code = first.exit_code;
        f.reason = first.reason;
        f.log_file = fmt::format("user_logs/std_log_process_{}.txt", *first.rank);
        out.failure = f;
      }
    } else if (first.lost) {
      out.outcome = "node lost";
      FailureRecord f;
      f.rank = -1;
      f.node_rank = first.node_rank;
      const NodeReport& node = nodes.count(first.node_rank) ? nodes.at(first.node_rank) : kUnknown;
      f.host = node.join.host;
      f.pid = node.join.pid;
      f.exit_code = first.exit_code;
      f.reason = first.reason;
      out.failure = f;
    } else {
      out.outcome = first.exit_code == kExitCodeCanceled  ? "canceled"
                    : first.exit_code == kExitCodeTimeout ? "timed out"
                                                          : "stopped";
      // A node that failed before any rank started (its preflight) sends its own
      // account with no rank in it: that is the job's failure.
      const NodeReport& node = nodes.count(first.node_rank) ? nodes.at(first.node_rank) : kUnknown;
      if (node.result_in && node.result.failure && node.result.failure->rank < 0 &&
          node.result.failure->exit_code == first.exit_code) {
        out.failure = node.result.failure;
        out.failure->node_rank = first.node_rank;
        if (!node.result.outcome.empty()) out.outcome = node.result.outcome;
      }
    }
  } else {
    for (const auto& [rank, node] : nodes) {
      if (node.result_in && node.result.exit_code != 0 && out.exit_code == 0) {
        out.exit_code = node.result.exit_code;
        out.outcome = node.result.outcome;
        out.stop_reason = node.result.stop_reason;
      }
    }
  }
  bool incomplete = false;
  for (const auto& [rank, node] : nodes) {
    if (!node.done_in && rank != 0) {
      incomplete = true;
      out.upload_errors.push_back(fmt::format("node {}: {} did not finish its uploads{}", rank,
                                              node.join.Describe(),
                                              node.lost ? " (the node was lost)" : " in time"));
    }
  }
  if (out.exit_code == 0 &&
      (!out.upload_errors.empty() || !local.upload_errors.empty() || incomplete)) {
    out.exit_code = 74;
    out.outcome = "upload failed";
  }
  out.status = FinalStatus(out.exit_code);
  return out;
}

}  // namespace trainrun
