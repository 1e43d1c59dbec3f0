// The head between two attempts of the ranks (in-place restarts, README "In-place
// restarts"): every node's ranks of the attempt ended, the verdict from the
// attempt's earliest failure, and the state cleared for the next attempt, which
// starts as the first did (every node's Ready, then Start).
#include <fmt/format.h>

#include "runtime/cluster/control_messages.h"
#include "runtime/cluster/head_session.h"

namespace trainrun {

AttemptVerdict HeadSession::EndAttempt(int attempt, const RestartPolicy& policy) {
  std::unique_lock lock(mu_);
  policy_ = policy;
  nodes_[0].attempt_ended = attempt;
  // A node's RankFailed comes before its AttemptEnded, so once every live node's is
  // in, the attempt's failures are all known. A node lost meanwhile is not waited for.
  WaitLocked(lock, [&] {
    for (const auto& [rank, node] : nodes_) {
      if (!node.lost && node.attempt_ended < attempt) return false;
    }
    return true;
  });
  AttemptVerdict verdict = DecideAttemptLocked(attempt, policy);
  BroadcastLocked(EncodeJsonFrame(MessageType::kAttemptVerdict, verdict.ToJson()));
  if (verdict.restart) {
    NextAttemptLocked(attempt);
  } else {
    last_attempt_decided_ = true;
    ReleaseHeldRejoinsLocked(fmt::format("the job ends with attempt {} ({})", attempt,
                                         verdict.why.empty() ? verdict.outcome : verdict.why));
  }
  return verdict;
}

AttemptVerdict HeadSession::DecideAttemptLocked(int attempt, const RestartPolicy& policy) {
  AttemptVerdict verdict;
  verdict.attempt = attempt;
  // The root cause, as the job's outcome takes it (job_outcome.h): the earliest.
  const FailureEvent* first = nullptr;
  for (const FailureEvent& e : events_) {
    if (first == nullptr || e.time_ms < first->time_ms) first = &e;
  }
  RunOutcome outcome = RunOutcome::kSucceeded;
  bool lost = false;  // the root cause is a lost node
  if (first != nullptr) {
    verdict.exit_code = first->exit_code;
    verdict.reason = first->reason;
    if (first->rank) {
      outcome = RunOutcome::kRankFailed;
      verdict.failed_rank = *first->rank;
      verdict.failed_node_rank = first->node_rank;
    } else if (first->lost) {
      outcome = RunOutcome::kStopped;
      lost = true;
      verdict.failed_node_rank = first->node_rank;  // the lost node, as the job's failure names it
    } else if (first->exit_code == kExitCodeCanceled) {
      outcome = RunOutcome::kCanceled;
    } else if (first->exit_code == kExitCodeTimeout) {
      outcome = RunOutcome::kTimedOut;
    } else {
      outcome = RunOutcome::kStopped;
    }
  }
  verdict.outcome = lost ? "node lost" : std::string(RunOutcomeName(outcome));
  RestartDecision decision;
  if (lost && options_.rejoin_timeout) {
    // A lost node is retried as a rank's failure would be, whatever its code (69):
    // its replacement may join the next attempt.
    RestartPolicy any_code = policy;
    any_code.retry_exit_codes.reset();
    decision = DecideRestart(any_code, attempt, RunOutcome::kRankFailed, kExitNodeLost);
  } else {
    decision = DecideRestart(policy, attempt, outcome, verdict.exit_code);
  }
  if (decision.restart && !options_.rejoin_timeout) {
    // The next attempt needs every node.
    for (const auto& [rank, node] : nodes_) {
      if (node.lost) {
        decision.restart = false;
        decision.why = fmt::format("not restarted: {} was lost", Who(rank));
        break;
      }
    }
  }
  verdict.restart = decision.restart;
  verdict.wait_ms = std::chrono::duration_cast<std::chrono::milliseconds>(decision.wait).count();
  verdict.why = decision.why;
  if (!verdict.why.empty()) {
    options_.reporter->Info(fmt::format("attempt {} of the job ended ({}): {}", attempt,
                                        verdict.reason.empty() ? verdict.outcome : verdict.reason,
                                        verdict.why));
  }
  return verdict;
}

bool HeadSession::EndAttemptBeforeStartLocked(int lost_rank) {
  if (phase_ != Phase::kPreparing || next_attempt_ <= 1 || !policy_ || !options_.rejoin_timeout ||
      stop_.notice() || finished_) {
    return false;
  }
  for (const auto& [rank, node] : nodes_) {
    if (rank != lost_rank && !node.lost && node.awaiting_first_start) return false;
  }
  // The loss is the attempt's only event (NextAttemptLocked cleared the last one's).
  const int attempt = next_attempt_;
  AttemptVerdict verdict = DecideAttemptLocked(attempt, *policy_);
  if (!verdict.restart) return false;
  verdict.reason += " (before the attempt's ranks started)";
  BroadcastLocked(EncodeJsonFrame(MessageType::kAttemptVerdict, verdict.ToJson()));
  ended_before_start_[attempt] = verdict;
  NextAttemptLocked(attempt);
  return true;
}

std::optional<StopNotice> HeadSession::WaitForAttemptStart(int attempt, const Status& prepared,
                                                           int exit_code,
                                                           std::optional<AttemptVerdict>* ended) {
  std::unique_lock lock(mu_);
  auto ended_before_start = [&] { return ended_before_start_.count(attempt) != 0; };
  if (!ended_before_start()) PreparedLocked(prepared, exit_code);
  WaitLocked(
      lock,
      [&] {
        return ended_before_start() || phase_ == Phase::kRunning || stop_.notice().has_value();
      },
      std::nullopt);
  if (ended_before_start()) {
    *ended = ended_before_start_[attempt];
    return std::nullopt;
  }
  return stop_.notice();
}

void HeadSession::NextAttemptLocked(int attempt) {
  next_attempt_ = attempt + 1;
  std::vector<std::string> lost;
  for (const auto& [rank, node] : nodes_) {
    if (node.lost) lost.push_back(Who(rank));
  }
  if (!lost.empty()) {
    rejoin_deadline_ = options_.clock->Now() + *options_.rejoin_timeout;
    options_.reporter->Notice(fmt::format(
        "waiting up to {:.0f} s (restarts.rejoinTimeoutSeconds) for a new trainrun of {} to "
        "join attempt {}",
        ToSeconds(*options_.rejoin_timeout), fmt::join(lost, ", "), next_attempt_));
  }
  events_.clear();
  stop_.Clear();
  workers_done_.clear();
  servers_stop_ = false;
  for (auto& [rank, node] : nodes_) node.ready = false;
  ready_nodes_ = 0;
  phase_ = Phase::kPreparing;
  ReleaseHeldRejoinsLocked("");
  cv_.notify_all();
}

bool HeadSession::RejoinLocked(int conn, const NodeJoin& join) {
  if (!rejoin_deadline_ || !assignment_ || join.node_rank <= 0) return false;
  auto it = nodes_.find(join.node_rank);
  if (it == nodes_.end() || !it->second.lost) return false;
  const int rank = join.node_rank;
  Node& node = it->second;
  NodeSlot& slot = assignment_->nodes[static_cast<size_t>(rank)];
  std::string mismatch;
  if (join.job_digest != nodes_[0].join.job_digest) {
    mismatch = "its job file differs from the head's";
  } else if (join.node_count != nodes_[0].join.node_count) {
    mismatch =
        fmt::format("it counts {} node(s), the job {}", join.node_count, nodes_[0].join.node_count);
  } else if (join.process_count != slot.process_count) {
    mismatch = fmt::format("it has {} rank(s), the lost node had {}", join.process_count,
                           slot.process_count);
  }
  if (!mismatch.empty()) {
    options_.reporter->Warning(fmt::format("{} tried to take the lost node's place; refused: {}",
                                           join.Describe(), mismatch));
    RefuseJoinLocked(conn, "cannot replace the lost node: " + mismatch);
    return true;
  }
  // Counted as lost until now (NodeLostLocked): the new trainrun starts with none of
  // the lost one's finalize flags.
  if (!node.preflight) --preflight_or_lost_;
  UncountFlagsLocked(node);
  for (bool Node::*flag : kFinalizeFlags) node.*flag = false;
  node.lost = false;
  node.conn = conn;
  node.join = join;
  node.ready = false;
  node.attempt_ended = next_attempt_ - 1;
  node.awaiting_first_start = true;
  conn_node_[conn] = rank;
  hello_rank_.erase(conn);
  heartbeat_.Add(rank);
  slot.host = join.host;
  slot.address = join.address;
  slot.interface = join.interface;
  slot.addresses = join.addresses;
  slot.pid = join.pid;
  JobAssignment assignment = *assignment_;
  assignment.attempt = next_attempt_;
  bool full = false;
  for (const NodeSlot& n : assignment.nodes) full = full || !n.tf_ports.empty();
  server_->Send(conn, EncodeJsonFrame(MessageType::kAssign,
                                      full ? assignment.ToJson() : assignment.ToJson(rank)));
  options_.reporter->Notice(fmt::format("{} joined in place of the lost node {}, for attempt {}",
                                        join.Describe(), rank, next_attempt_));
  bool still_lost = false;
  for (const auto& [r, n] : nodes_) still_lost = still_lost || n.lost;
  if (!still_lost) rejoin_deadline_.reset();
  cv_.notify_all();
  return true;
}

bool HeadSession::HoldRejoinLocked(int conn, const NodeJoin& join, const nlohmann::json& body) {
  // Between attempts (kPreparing) the verdict is in: RejoinLocked's rejoin_deadline_
  // takes replacements, and once it passed the job ends.
  if (phase_ != Phase::kRunning || rejoin_deadline_ || !options_.rejoin_timeout ||
      last_attempt_decided_ || finished_ || join.node_rank <= 0) {
    return false;
  }
  // Before the first verdict the policy is not known here; the job has restarts
  // (rejoin_timeout is set only then), so attempt 1 has one left.
  if (policy_ && next_attempt_ > policy_->max_restarts) return false;
  auto it = nodes_.find(join.node_rank);
  if (it == nodes_.end() || !it->second.lost) return false;
  options_.reporter->Notice(
      fmt::format("{} came to take the lost node's place; it waits for the end of attempt {}",
                  join.Describe(), next_attempt_));
  held_rejoins_.emplace_back(conn, body);
  return true;
}

void HeadSession::ReleaseHeldRejoinsLocked(const std::string& refusal) {
  std::vector<std::pair<int, nlohmann::json>> held;
  held.swap(held_rejoins_);
  for (const auto& [conn, body] : held) {
    if (hello_rank_.count(conn) == 0) continue;  // closed meanwhile
    if (refusal.empty()) {
      OnJoin(conn, body);  // RejoinLocked now, or refused as any late join
      continue;
    }
    options_.reporter->Warning(fmt::format(
        "node {} came to take the lost node's place; refused: {}", hello_rank_[conn], refusal));
    RefuseJoinLocked(conn, "cannot replace the lost node: " + refusal);
  }
}

void HeadSession::RejoinTickLocked() {
  if (!rejoin_deadline_ || options_.clock->Now() < *rejoin_deadline_) return;
  rejoin_deadline_.reset();
  for (const auto& [rank, node] : nodes_) {
    if (!node.lost) continue;
    const std::string reason = fmt::format(
        "{} was lost and no new trainrun for node {} joined within {:.0f} s "
        "(restarts.rejoinTimeoutSeconds)",
        Who(rank), rank, ToSeconds(*options_.rejoin_timeout));
    options_.reporter->Error(reason);
    AddEventLocked({WallMillis(), kExitNodeLost, reason, rank, std::nullopt, true});
    StopLocked(kExitNodeLost, reason);
  }
  cv_.notify_all();
}

}  // namespace trainrun
