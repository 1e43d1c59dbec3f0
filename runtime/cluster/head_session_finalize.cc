// The head at the end of a job: merging every node's outputs (output_merge.h),
// waiting for every node's uploads, and deciding the job's outcome
// (job_outcome.h), which every node then exits with.
#include <fmt/format.h>

#include "runtime/cluster/head_session.h"

namespace trainrun {

using nlohmann::json;

std::vector<TransferItem> HeadSession::MergeUploads(std::vector<TransferItem> items,
                                                    const std::string& run_prefix) {
  NodeManifest own;
  own.node_rank = 0;
  for (const TransferItem& item : items)
    own.files.push_back({item.key.substr(run_prefix.size()), item.size, ""});
  std::unique_lock lock(mu_);
  nodes_[0].manifest = own;
  SetFlagLocked(nodes_[0], &Node::manifest_in);
  WaitForResultsLocked(lock);
  if (!WaitLocked(lock, AllLive(&Node::manifest_in), finalize_deadline_)) {
    options_.reporter->Warning("some nodes did not list their outputs before the finalize timeout");
  }
  auto manifests = [&] {
    std::vector<NodeManifest> out;
    for (auto& [rank, node] : nodes_) {
      if (node.manifest_in && !node.lost) out.push_back(node.manifest);
    }
    return out;
  };
  std::map<int, std::set<std::string>> needed = DigestsNeeded(manifests());
  // Once, not in a wait: who owes digests now.
  SetOrLost(&Node::digests_in) = 0;
  for (auto& [rank, node] : nodes_) {
    node.digests_in = needed.count(rank) == 0 || rank == 0;
    if (node.digests_in || node.lost) ++SetOrLost(&Node::digests_in);
  }
  for (const auto& [rank, keys] : needed) {
    if (rank == 0) continue;
    server_->Send(
        nodes_[rank].conn,
        EncodeJsonFrame(MessageType::kUploadPlan,
                        {{"needDigests", std::vector<std::string>(keys.begin(), keys.end())}}));
  }
  if (needed.count(0) != 0) {
    std::set<std::string> keys = needed[0];
    lock.unlock();
    std::map<std::string, std::string> digests = DigestsOf(items, run_prefix, keys);
    lock.lock();
    for (ManifestEntry& e : nodes_[0].manifest.files) {
      if (digests.count(e.key)) e.sha256 = digests[e.key];
    }
  }
  WaitLocked(lock, AllLive(&Node::digests_in), finalize_deadline_);
  MergePlan plan = PlanMerge(manifests());
  conflicts_ = plan.conflicts;
  for (auto& [rank, node] : nodes_) {
    if (rank == 0 || !node.manifest_in || node.lost) continue;
    server_->Send(node.conn, EncodeJsonFrame(MessageType::kUploadPlan,
                                             {{"uploads", plan.uploads[rank]}, {"final", true}}));
  }
  for (const OutputConflict& c : plan.conflicts) {
    std::vector<std::string> versions;
    for (const auto& [node, as] : c.kept_as)
      versions.push_back(fmt::format("node {} -> {}", node, as));
    options_.reporter->Warning(
        fmt::format("{} was written differently by several nodes; every version "
                    "is kept: {}",
                    c.key, fmt::join(versions, ", ")));
  }
  std::vector<TransferItem> mine;
  const auto& own_plan = plan.uploads[0];
  for (TransferItem& item : items) {
    auto it = own_plan.find(item.key.substr(run_prefix.size()));
    if (it == own_plan.end()) continue;
    item.key = run_prefix + it->second;
    mine.push_back(std::move(item));
  }
  return mine;
}

JobOutcome HeadSession::Finish(const NodeDone& done, const JobOutcome& local) {
  std::unique_lock lock(mu_);
  last_attempt_decided_ = true;
  ReleaseHeldRejoinsLocked("the job is ending");
  nodes_[0].done = done;
  SetFlagLocked(nodes_[0], &Node::done_in);
  WaitForResultsLocked(lock);
  bool all = WaitLocked(lock, AllLive(&Node::done_in), finalize_deadline_);
  if (!all && hard_deadline_ && options_.clock->Now() >= *hard_deadline_) {
    options_.reporter->Warning(
        "the stop budget ran short before every node finished uploading: the final status is "
        "written now, before the scheduler's SIGKILL");
  } else if (!all) {
    options_.reporter->Warning(
        fmt::format("the finalize timeout ({:.0f} s) passed before every node "
                    "finished uploading",
                    ToSeconds(options_.finalize_timeout)));
  }
  JobOutcome outcome = DecideLocked(local);
  finished_ = true;
  // Once, so the run record has the count of what was refused past the first few.
  if (refusals_.counted() > 0) options_.reporter->Warning(refusals_.Summary());
  json body = {{"exitCode", outcome.exit_code},
               {"status", RunStatusName(outcome.status)},
               {"outcome", outcome.outcome},
               {"stopReason", outcome.stop_reason}};
  if (outcome.failure) body["failure"] = FailureToJson(*outcome.failure);
  BroadcastLocked(EncodeJsonFrame(MessageType::kFinished, body));
  return outcome;
}

JobOutcome HeadSession::DecideLocked(const JobOutcome& local) {
  std::map<int, NodeReport> reports;
  for (auto& [rank, node] : nodes_) reports[rank] = node;
  return DecideJobOutcome(events_, reports, local, conflicts_);
}

std::function<bool()> HeadSession::AllLive(bool Node::*flag) {
  // Counted, not scanned: every node's message wakes the wait that asks this.
  return [this, flag] { return SetOrLost(flag) >= nodes_.size(); };
}

size_t& HeadSession::SetOrLost(bool Node::*flag) {
  for (size_t i = 0; i < kFinalizeFlags.size(); ++i) {
    if (kFinalizeFlags[i] == flag) return set_or_lost_[i];
  }
  return set_or_lost_.back();  // unreachable: every flag asked about is one of them
}

void HeadSession::SetFlagLocked(Node& node, bool Node::*flag) {
  if (node.*flag) return;
  node.*flag = true;
  if (!node.lost) ++SetOrLost(flag);
}

void HeadSession::UncountFlagsLocked(const Node& node) {
  for (bool Node::*flag : kFinalizeFlags) {
    if (node.*flag || node.lost) --SetOrLost(flag);
  }
}

void HeadSession::LimitFinalize(TimePoint deadline) {
  std::lock_guard lock(mu_);
  if (!hard_deadline_ || deadline < *hard_deadline_) hard_deadline_ = deadline;
  if (finalize_deadline_ && *hard_deadline_ < *finalize_deadline_) {
    finalize_deadline_ = hard_deadline_;
  }
}

void HeadSession::WaitForResultsLocked(std::unique_lock<std::mutex>& lock) {
  // Nodes still running are alive (heartbeats): their results come, however long,
  // unless a scheduler's SIGKILL is coming (LimitFinalize).
  if (!WaitLocked(lock, AllLive(&Node::result_in), hard_deadline_)) {
    options_.reporter->Warning(
        "some nodes' ranks had not ended when the stop budget ran short; the run's final "
        "status is written without them");
  }
  if (!finalize_deadline_) {
    finalize_deadline_ = options_.clock->Now() + options_.finalize_timeout;
    if (hard_deadline_ && *hard_deadline_ < *finalize_deadline_)
      finalize_deadline_ = hard_deadline_;
  }
}

}  // namespace trainrun
