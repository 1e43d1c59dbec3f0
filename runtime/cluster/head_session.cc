#include "runtime/cluster/head_session.h"

#include <algorithm>

#include <fmt/format.h>

#include "base/digest.h"
#include "base/free_port.h"
#include "base/net_util.h"
#include "base/text.h"
#include "runtime/cluster/control_messages.h"
#include "runtime/cluster/heartbeat.h"

namespace trainrun {
namespace {

using nlohmann::json;

}  // namespace

Result<std::unique_ptr<HeadSession>> HeadSession::Start(SessionOptions options,
                                                        const JobToken& token, int port) {
  std::unique_ptr<HeadSession> head(new HeadSession(std::move(options)));
  ControlServerOptions server_options;
  server_options.port = port;
  server_options.clock = head->options_.clock;
  auto keys = [token](const std::string& role) -> std::optional<std::string> {
    if (role == kRoleNode || role == kRoleRsh) return RoleKey(token, role);
    return std::nullopt;
  };
  TR_ASSIGN_OR_RETURN(head->server_, ControlServer::Start(server_options, keys, head.get()));
  return head;
}

HeadSession::HeadSession(SessionOptions options)
    : SessionBase(std::move(options)), heartbeat_(options_.clock, options_.heartbeat) {}

HeadSession::~HeadSession() {
  if (server_) server_->Shutdown(std::chrono::seconds(2));
}

std::string HeadSession::Who(int node_rank) {
  auto it = nodes_.find(node_rank);
  if (it == nodes_.end()) return fmt::format("node {}", node_rank);
  return it->second.join.Describe();
}

void HeadSession::CanceledLocked() {
  std::string reason = fmt::format("canceled on {} (trainrun received a signal)", Who(0));
  AddEventLocked({WallMillis(), kExitCodeCanceled, reason, 0, std::nullopt, false});
  StopLocked(kExitCodeCanceled, reason);
}

void HeadSession::BroadcastLocked(const std::string& frame) {
  for (auto& [rank, node] : nodes_) {
    if (rank != 0 && node.conn >= 0 && !node.lost) server_->Send(node.conn, frame);
  }
}

void HeadSession::AddEventLocked(FailureEvent event) { events_.push_back(std::move(event)); }

void HeadSession::StopLocked(int exit_code, const std::string& reason) {
  if (stop_.notice()) return;
  options_.reporter->Info(
      fmt::format("stopping the job on every node (exit {}): {}", exit_code, reason));
  BroadcastLocked(
      EncodeJsonFrame(MessageType::kStop, {{"exitCode", exit_code}, {"reason", reason}}));
  stop_.Set(StopNotice{exit_code, reason});
  cv_.notify_all();
}

void HeadSession::WorkersDone() {
  std::lock_guard lock(mu_);
  WorkersDoneLocked(0);
}

void HeadSession::WorkersDoneLocked(int node_rank) {
  workers_done_.insert(node_rank);
  if (servers_stop_ || stop_.notice() || !assignment_ ||
      workers_done_.size() < assignment_->nodes.size()) {
    return;
  }
  options_.reporter->Info(
      "every worker of the job exited 0: stopping the parameter servers on every node");
  BroadcastLocked(EncodeJsonFrame(MessageType::kStopServers, json::object()));
  ServersStopLocked();
}

void HeadSession::FailRendezvousLocked(const std::string& reason) {
  if (!rendezvous_error_.empty()) return;
  rendezvous_error_ = reason;
  const std::string frame =
      EncodeJsonFrame(MessageType::kRefused, {{"reason", "rendezvous failed: " + reason}});
  for (auto& [rank, node] : nodes_) {
    if (rank != 0 && node.conn >= 0) {
      server_->Send(node.conn, frame);
      server_->Close(node.conn);
    }
  }
  cv_.notify_all();
}

Result<JobAssignment> HeadSession::Rendezvous(const NodeJoin& self) {
  std::unique_lock lock(mu_);
  book_.emplace(self);
  nodes_[0].join = self;
  std::vector<std::pair<int, nlohmann::json>> early;
  early.swap(early_joins_);
  for (const auto& [conn, body] : early) {
    if (hello_rank_.count(conn) != 0) OnJoin(conn, body);
  }
  const TimePoint deadline = options_.clock->Now() + options_.rendezvous_timeout;
  options_.reporter->Info(
      fmt::format("head of a {}-node job: waiting for {} node(s) on control port {} "
                  "(rendezvous timeout {:.0f} s)",
                  self.node_count, self.node_count - 1, server_->port(),
                  ToSeconds(options_.rendezvous_timeout)));
  bool complete = WaitLocked(
      lock,
      [&] { return book_->complete() || !rendezvous_error_.empty() || stop_.notice().has_value(); },
      deadline);
  if (!rendezvous_error_.empty()) return UnavailableError(rendezvous_error_);
  if (stop_.notice()) {
    FailRendezvousLocked("canceled on the head");
    return UnavailableError(stop_.notice()->reason);
  }
  if (!complete) {
    std::vector<int> missing = book_->missing();
    std::string message = fmt::format(
        "rendezvous timed out after {:.0f} s: {} of {} node(s) joined; node(s) "
        "{} never did",
        ToSeconds(options_.rendezvous_timeout), book_->joined(), self.node_count,
        fmt::join(missing, ", "));
    if (refusals_.total() > 0) {
      message += fmt::format("; refused: {}", fmt::join(refusals_.first(), "; "));
      if (refusals_.counted() > 0) message += fmt::format(" (and {} more)", refusals_.counted());
    }
    FailRendezvousLocked(message);
    return UnavailableError(message);
  }

  // MASTER_ADDR is the address most nodes reached the head at.
  std::map<std::string, int> seen;
  for (auto& [rank, node] : nodes_) {
    if (rank != 0) ++seen[server_->LocalIpOf(node.conn)];
  }
  std::string master_addr = "127.0.0.1";
  int best = 0;
  for (const auto& [ip, count] : seen) {
    if (!ip.empty() && count > best) {
      master_addr = ip;
      best = count;
    }
  }
  if (seen.size() > 1) {
    std::vector<std::string> addresses;
    for (const auto& [ip, count] : seen) addresses.push_back(ip);
    options_.reporter->Warning(
        fmt::format("the nodes reached the head at different addresses ({}); "
                    "MASTER_ADDR is {}",
                    fmt::join(addresses, ", "), master_addr));
  }
  // Every node learns MASTER_PORT here, but rank 0 binds it only when the ranks
  // start, after every node's Prepare (snapshots, downloads, mounts: minutes),
  // and another process could take it in between. Choosing it later would need
  // the port to travel with Start and each node to plan its ranks' environment
  // after Prepare; instead the socket that chose it stays bound until just
  // before the ranks start (ReleaseMasterPort), which closes the window and
  // keeps the protocol and the plan as they are.
  Result<HeldPort> port = HoldFreePort("0.0.0.0");
  // The head's TF_CONFIG ports were found free, not held: MASTER_PORT is none of
  // them (the ports skipped stay bound until a different one is found).
  const std::vector<int>& tf_ports = nodes_[0].join.tf_ports;
  std::vector<HeldPort> skipped;
  while (port.ok() && skipped.size() < tf_ports.size() &&
         std::find(tf_ports.begin(), tf_ports.end(), port->port()) != tf_ports.end()) {
    skipped.push_back(std::move(port).value());
    port = HoldFreePort("0.0.0.0");
  }
  if (!port.ok()) {
    FailRendezvousLocked(port.status().message());
    return UnavailableError(
        fmt::format("no free MASTER_PORT on the head: {}", port.status().message()));
  }
  master_port_ = std::move(port).value();
  JobAssignment assignment = book_->Assign(run_id_, master_addr, master_port_.port());
  assignment.nodes[0].address = master_addr;
  assignment.nodes[0].interface = InterfaceOf(master_addr);
  assignment.head_heartbeat_timeout_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(options_.heartbeat.timeout).count();
  nodes_[0].join.address = master_addr;
  nodes_[0].join.interface = assignment.nodes[0].interface;
  for (const std::string& w : book_->Warnings()) options_.reporter->Warning(w);
  assignment_ = assignment;
  phase_ = Phase::kPreparing;
  // TF_CONFIG lists every rank, so TensorFlow nodes get the whole table.
  bool full = false;
  for (const NodeSlot& n : assignment.nodes) full = full || !n.tf_ports.empty();
  const std::string frame = EncodeJsonFrame(MessageType::kAssign, assignment.ToJson());
  for (auto& [rank, node] : nodes_) {
    if (rank == 0) continue;
    server_->Send(node.conn,
                  full ? frame : EncodeJsonFrame(MessageType::kAssign, assignment.ToJson(rank)));
  }
  // Each node's silence counts from here, once every Assign is queued, not from
  // its own: until this lock is released the control loop can write none of the
  // Assigns queued after the first few, and building 16,384 of them on a busy
  // machine took long enough that nodes were lost before they had heard theirs.
  for (auto& [rank, node] : nodes_) {
    if (rank != 0) heartbeat_.Add(rank);
  }
  options_.reporter->Info(fmt::format(
      "rendezvous complete: {} node(s), {} rank(s), MASTER_ADDR {}, "
      "MASTER_PORT {}",
      assignment.nodes.size(), assignment.world_size, master_addr, master_port_.port()));
  return assignment;
}

void HeadSession::SetReadyLocked(Node& node) {
  if (node.ready) return;
  node.ready = true;
  ++ready_nodes_;
}

void HeadSession::SetPreflightLocked(Node& node, PreflightResult result) {
  if (!node.preflight && !node.lost) ++preflight_or_lost_;
  node.preflight = std::move(result);
}

void HeadSession::ForgetNodeLocked(std::map<int, Node>::iterator node) {
  if (node->second.ready) --ready_nodes_;
  if (node->second.preflight || node->second.lost) --preflight_or_lost_;
  UncountFlagsLocked(node->second);
  nodes_.erase(node);
}

void HeadSession::MaybeStartLocked() {
  // Counted, not scanned: every Ready of N nodes calls this.
  if (phase_ != Phase::kPreparing || stop_.notice()) return;
  if (ready_nodes_ < nodes_.size()) return;
  phase_ = Phase::kRunning;
  for (auto& [rank, node] : nodes_) node.awaiting_first_start = false;
  BroadcastLocked(EncodeJsonFrame(MessageType::kStart, json::object()));
  cv_.notify_all();
}

void HeadSession::PreparedLocked(const Status& prepared, int exit_code) {
  if (prepared.ok()) {
    SetReadyLocked(nodes_[0]);
    MaybeStartLocked();
  } else {
    std::string reason =
        fmt::format("{} could not prepare the run: {}", Who(0), prepared.message());
    AddEventLocked({WallMillis(), exit_code, reason, 0, std::nullopt, false});
    StopLocked(exit_code, reason);
  }
}

std::optional<StopNotice> HeadSession::WaitForStart(const Status& prepared, int exit_code) {
  std::unique_lock lock(mu_);
  PreparedLocked(prepared, exit_code);
  WaitLocked(
      lock, [&] { return phase_ == Phase::kRunning || stop_.notice().has_value(); }, std::nullopt);
  return stop_.notice();
}

std::optional<StopNotice> HeadSession::GatherPreflight(const PreflightResult& mine,
                                                       std::vector<nlohmann::json>* reports) {
  std::unique_lock lock(mu_);
  SetPreflightLocked(nodes_[0], mine);
  MaybeEndPreflightLocked(0);
  WaitLocked(lock, [&] { return preflight_passed_ || stop_.notice().has_value(); });
  for (const auto& [rank, node] : nodes_) {
    if (node.preflight) reports->push_back(node.preflight->report);
  }
  return stop_.notice();
}

void HeadSession::MaybeEndPreflightLocked(int rank) {
  if (preflight_passed_ || stop_.notice()) return;
  // The first failure stops the job at once: the other nodes' NCCL checks, which
  // would wait for the failed node's ranks until their timeout, are stopped too.
  // Only the node just in can hold a failure not acted on: an earlier one
  // stopped the job when it came.
  const Node& node = nodes_[rank];
  if (node.preflight && !node.preflight->passed) {
    const std::string reason = fmt::format("{}: {}", Who(rank), node.preflight->reason);
    AddEventLocked({WallMillis(), node.preflight->exit_code, reason, rank, std::nullopt, false});
    StopLocked(node.preflight->exit_code, reason);
    return;
  }
  // Counted, not scanned: every node's preflight calls this.
  if (preflight_or_lost_ < nodes_.size()) return;
  preflight_passed_ = true;
  BroadcastLocked(EncodeJsonFrame(MessageType::kPreflightPassed, json::object()));
  cv_.notify_all();
}

void HeadSession::ReleaseMasterPort() {
  std::lock_guard lock(mu_);
  master_port_.Release();
}

void HeadSession::RankFailed(const RankFailure& failure) {
  std::lock_guard lock(mu_);
  std::string reason = fmt::format("rank {} on {} {}", failure.rank, Who(0), failure.reason);
  AddEventLocked({WallMillis(), failure.status.ToExitCode(), reason, 0, failure.rank, false});
  StopLocked(failure.status.ToExitCode(), reason);
}

void HeadSession::Stopping(int exit_code, const std::string& reason) {
  std::lock_guard lock(mu_);
  std::string why = fmt::format("{} on {}", reason, Who(0));
  AddEventLocked({WallMillis(), exit_code, why, 0, std::nullopt, false});
  StopLocked(exit_code, why);
}

void HeadSession::ReportResult(const NodeResult& result) {
  std::lock_guard lock(mu_);
  nodes_[0].result = result;
  SetFlagLocked(nodes_[0], &Node::result_in);
  cv_.notify_all();
}

void HeadSession::OnAuthenticated(int conn, const std::string& role, int node_rank) {
  std::lock_guard lock(mu_);
  if (role == kRoleNode) hello_rank_[conn] = node_rank;
}

void HeadSession::OnRefused(const std::string& peer, const std::string& reason) {
  std::lock_guard lock(mu_);
  // Counted, not copied: a flood of refusals must not grow the head, its log or
  // the run record (refusal_tally.h).
  std::optional<std::string> warning = refusals_.Add(peer, reason, options_.clock->Now());
  if (warning) options_.reporter->Warning(*warning);
}

void HeadSession::OnJoin(int conn, const json& body) {
  Result<NodeJoin> parsed = NodeJoin::FromJson(body);
  if (!parsed.ok()) {
    options_.reporter->Error(fmt::format("node {} sent a malformed message: {}; refused",
                                         hello_rank_[conn], parsed.status().message()));
    return RefuseJoinLocked(conn, "malformed message: " + parsed.status().message());
  }
  NodeJoin join = std::move(parsed).value();
  if (join.node_rank != hello_rank_[conn]) {
    return RefuseJoinLocked(conn, fmt::format("joined as node {} after authenticating as node {}",
                                              join.node_rank, hello_rank_[conn]));
  }
  if (join.address.empty()) {
    std::string peer = server_->PeerOf(conn);
    join.address = peer.substr(0, peer.rfind(':'));
  }
  if (phase_ == Phase::kRendezvous && !book_) {
    // The head listens before it knows its own part; this join waits for it.
    options_.reporter->Info(fmt::format(
        "{} joined before the head began its rendezvous; it waits for it", join.Describe()));
    early_joins_.emplace_back(conn, body);
    return;
  }
  if (phase_ != Phase::kRendezvous && RejoinLocked(conn, join)) return;
  if (phase_ != Phase::kRendezvous && HoldRejoinLocked(conn, join, body)) return;
  if (phase_ != Phase::kRendezvous) {
    options_.reporter->Warning(
        fmt::format("{} tried to join after the rendezvous; refused", join.Describe()));
    return RefuseJoinLocked(conn, "the rendezvous of this job is over (is a node started twice?)");
  }
  if (!rendezvous_error_.empty())
    return RefuseJoinLocked(conn, "rendezvous failed: " + rendezvous_error_);
  Status added = book_->Add(join);
  if (!added.ok()) {
    options_.reporter->Error(added.message());
    RefuseJoinLocked(conn, added.message());
    FailRendezvousLocked(added.message());
    return;
  }
  Node& node = nodes_[join.node_rank];
  if (node.conn >= 0 && node.conn != conn) {
    conn_node_.erase(node.conn);
    server_->Close(node.conn);
  }
  if (node.ready) --ready_nodes_;
  if (node.preflight || node.lost) --preflight_or_lost_;
  UncountFlagsLocked(node);
  node = Node();
  node.conn = conn;
  node.join = join;
  conn_node_[conn] = join.node_rank;
  hello_rank_.erase(conn);
  // The head beats every node as often as the most demanding one needs, a
  // quarter of its heartbeat timeout (one that does not say, an older trainrun:
  // every second, as nodes used to beat), not once a second for each one it hears.
  const Duration need = join.heartbeat_timeout_ms > 0
                            ? Duration(std::chrono::milliseconds(join.heartbeat_timeout_ms)) / 4
                            : kUntoldTimeoutBeatInterval;
  beat_interval_ = std::min(beat_interval_, need);
  heartbeat_.set_send_interval(beat_interval_);
  options_.reporter->Info(fmt::format("{} joined ({} of {})", join.Describe(), book_->joined(),
                                      nodes_[0].join.node_count));
  cv_.notify_all();
}

void HeadSession::OnMessage(int conn, const Frame& frame) {
  std::lock_guard lock(mu_);
  // The handlers read only decoded, checked values (control_messages.h), so nothing
  // below throws on what a peer sent; should something still throw, it is that
  // peer's message that is refused, not the head that aborts.
  Status handled;
  try {
    handled = HandleMessageLocked(conn, frame);
  } catch (const std::exception& e) {
    handled = InternalError(
        fmt::format("{} message: {}", MessageTypeName(frame.type), EscapeControl(e.what())));
  }
  if (!handled.ok()) RefuseMessageLocked(conn, handled.message());
}

Status HeadSession::HandleMessageLocked(int conn, const Frame& frame) {
  auto node = conn_node_.find(conn);
  if (node == conn_node_.end()) {
    if (hello_rank_.count(conn) != 0) {
      if (frame.type != MessageType::kJoin) {
        return InvalidArgumentError(
            fmt::format("{} message before Join", MessageTypeName(frame.type)));
      }
      TR_ASSIGN_OR_RETURN(json body, DecodeJsonPayload(frame));
      OnJoin(conn, body);
      return Status::Ok();
    }
    return OnRshMessage(conn, frame);
  }
  const int rank = node->second;
  heartbeat_.Heard(rank);
  // A heartbeat changes nothing a wait is waiting for: no wake-up of the
  // pipeline's thread (4,096 nodes send 4,096 a second).
  if (frame.type == MessageType::kHeartbeat) return DecodeEmpty(frame);
  if (frame.type == MessageType::kRshData) {
    TR_ASSIGN_OR_RETURN(RshChunk chunk, DecodeRshData(frame));
    auto route = sessions_.find(chunk.session);
    if (route != sessions_.end() && route->second.node_rank == rank) {
      server_->Send(route->second.agent_conn, EncodeRshData(chunk));
    }
    return Status::Ok();
  }
  TR_RETURN_IF_ERROR(OnNodeMessage(rank, frame));
  cv_.notify_all();
  return Status::Ok();
}

void HeadSession::RefuseJoinLocked(int conn, const std::string& reason) {
  server_->Send(conn, EncodeJsonFrame(MessageType::kRefused, {{"reason", reason}}));
  server_->Close(conn);
  hello_rank_.erase(conn);
}

void HeadSession::RefuseMessageLocked(int conn, const std::string& why) {
  server_->Send(conn,
                EncodeJsonFrame(MessageType::kRefused, {{"reason", "malformed message: " + why}}));
  server_->Close(conn);
  auto node = conn_node_.find(conn);
  if (node != conn_node_.end()) {
    const int rank = node->second;
    const std::string reason = fmt::format("it sent a malformed message: {}", why);
    if (phase_ == Phase::kRendezvous) {
      options_.reporter->Error(fmt::format("{} {}; closing its connection", Who(rank), reason));
    } else {
      NodeLostLocked(rank, reason);
    }
    return;
  }
  if (hello_rank_.count(conn) != 0) {
    options_.reporter->Error(fmt::format(
        "node {} sent a malformed message: {}; closing its connection", hello_rank_[conn], why));
    hello_rank_.erase(conn);
    return;
  }
  options_.reporter->Warning(
      fmt::format("an rsh agent ({}) sent a malformed message: {}; closing its connection",
                  server_->PeerOf(conn), why));
}

Status HeadSession::OnNodeMessage(int rank, const Frame& frame) {
  Node& node = nodes_[rank];
  switch (frame.type) {
    case MessageType::kReady: {
      TR_ASSIGN_OR_RETURN(std::optional<int> attempt, DecodeReady(frame));
      // Ready for an attempt that was ended before it started: stale.
      if (attempt && *attempt != next_attempt_) return Status::Ok();
      SetReadyLocked(node);
      MaybeStartLocked();
      return Status::Ok();
    }
    case MessageType::kPreflight: {
      TR_ASSIGN_OR_RETURN(PreflightResult m, DecodePreflight(frame));
      SetPreflightLocked(node, std::move(m));
      MaybeEndPreflightLocked(rank);
      return Status::Ok();
    }
    case MessageType::kHeartbeat: return DecodeEmpty(frame);
    case MessageType::kRankFailed: {
      TR_ASSIGN_OR_RETURN(RankFailedMessage m, DecodeRankFailed(frame));
      std::string reason = fmt::format("rank {} on {} {}", m.rank, Who(rank), m.reason);
      AddEventLocked({m.time_ms.value_or(WallMillis()), m.exit_code, reason, rank, m.rank, false});
      StopLocked(m.exit_code, reason);
      return Status::Ok();
    }
    case MessageType::kNodeStopping: {
      TR_ASSIGN_OR_RETURN(StopMessage m, DecodeStop(frame));
      std::string reason = fmt::format("{} on {}", m.reason, Who(rank));
      AddEventLocked(
          {m.time_ms.value_or(WallMillis()), m.exit_code, reason, rank, std::nullopt, false});
      StopLocked(m.exit_code, reason);
      return Status::Ok();
    }
    case MessageType::kWorkersDone:
      TR_RETURN_IF_ERROR(DecodeEmpty(frame));
      WorkersDoneLocked(rank);
      return Status::Ok();
    case MessageType::kAttemptEnded: {
      TR_ASSIGN_OR_RETURN(int attempt, DecodeAttemptEnded(frame));
      node.attempt_ended = std::max(node.attempt_ended, attempt);
      return Status::Ok();
    }
    case MessageType::kNodeResult: {
      TR_ASSIGN_OR_RETURN(NodeResult result, DecodeNodeResult(frame));
      node.result = std::move(result);
      node.result.node_rank = rank;
      SetFlagLocked(node, &Node::result_in);
      return Status::Ok();
    }
    case MessageType::kManifest: {
      TR_ASSIGN_OR_RETURN(ManifestMessage m, DecodeManifest(frame));
      if (m.files) {
        node.manifest.node_rank = rank;
        node.manifest.files = std::move(*m.files);
        SetFlagLocked(node, &Node::manifest_in);
      }
      if (m.digests) {
        for (ManifestEntry& e : node.manifest.files) {
          auto digest = m.digests->find(e.key);
          if (digest != m.digests->end()) e.sha256 = digest->second;
        }
        SetFlagLocked(node, &Node::digests_in);
      }
      return Status::Ok();
    }
    case MessageType::kNodeDone: {
      TR_ASSIGN_OR_RETURN(NodeDone done, DecodeNodeDone(frame));
      node.done = std::move(done);
      SetFlagLocked(node, &Node::done_in);
      return Status::Ok();
    }
    case MessageType::kRshExit: {
      TR_ASSIGN_OR_RETURN(RshExitMessage m, DecodeRshExit(frame));
      auto route = sessions_.find(m.session);
      if (route != sessions_.end() && route->second.node_rank == rank) {
        EndRshSessionLocked(
            route, {{"session", m.session}, {"exitCode", m.exit_code}, {"error", m.error}});
      }
      return Status::Ok();
    }
    default:
      return InvalidArgumentError(
          fmt::format("{} message: not one a node sends the head", MessageTypeName(frame.type)));
  }
}

void HeadSession::NodeLostLocked(int rank, const std::string& why) {
  Node& node = nodes_[rank];
  if (node.lost || finished_) return;
  if (!node.preflight) ++preflight_or_lost_;
  for (bool Node::*flag : kFinalizeFlags) {
    if (!(node.*flag)) ++SetOrLost(flag);
  }
  node.lost = true;
  heartbeat_.Remove(rank);
  for (auto it = sessions_.begin(); it != sessions_.end();) {
    if (it->second.node_rank == rank) {
      it = EndRshSessionLocked(it, {{"session", it->first},
                                    {"exitCode", 255},
                                    {"error", fmt::format("{} was lost", Who(rank))}});
    } else {
      ++it;
    }
  }
  std::string reason = fmt::format("{} was lost: {}", Who(rank), why);
  if (!node.result_in) {
    options_.reporter->Error(reason);
    AddEventLocked({WallMillis(), kExitNodeLost, reason, rank, std::nullopt, true});
    if (!EndAttemptBeforeStartLocked(rank)) StopLocked(kExitNodeLost, reason);
  } else if (!node.done_in) {
    options_.reporter->Warning(reason + " while finalizing; its uploads may be incomplete");
  }
  cv_.notify_all();
}

void HeadSession::OnClosed(int conn, const std::string& reason) {
  std::lock_guard lock(mu_);
  hello_rank_.erase(conn);
  std::erase_if(held_rejoins_, [&](const auto& held) { return held.first == conn; });
  auto it = conn_node_.find(conn);
  if (it == conn_node_.end()) {
    auto agent = agent_session_.find(conn);
    if (agent == agent_session_.end()) return;
    uint32_t session = agent->second;
    agent_session_.erase(agent);
    auto route = sessions_.find(session);
    if (route == sessions_.end()) return;
    int rank = route->second.node_rank;
    sessions_.erase(route);
    if (rank == 0) {
      if (rsh_handler_) rsh_handler_->Kill(session);
    } else if (nodes_[rank].conn >= 0 && !nodes_[rank].lost) {
      server_->Send(nodes_[rank].conn,
                    EncodeJsonFrame(MessageType::kRshClose, {{"session", session}}));
    }
    return;
  }
  const int rank = it->second;
  conn_node_.erase(it);
  if (nodes_[rank].conn != conn) return;
  if (phase_ == Phase::kRendezvous) {
    if (book_) book_->Remove(rank);
    options_.reporter->Info(
        fmt::format("{} left before the rendezvous completed ({}); waiting for it "
                    "to come back",
                    Who(rank), reason));
    ForgetNodeLocked(nodes_.find(rank));
    cv_.notify_all();
    return;
  }
  nodes_[rank].conn = -1;
  NodeLostLocked(rank, reason);
}

void HeadSession::OnTick() {
  std::lock_guard lock(mu_);
  if (std::optional<std::string> summary = refusals_.DueSummary(options_.clock->Now())) {
    options_.reporter->Info(*summary);
  }
  if (phase_ == Phase::kRendezvous || finished_) return;
  RejoinTickLocked();
  if (std::optional<Duration> stalled = heartbeat_.Turn()) {
    options_.reporter->Warning(
        fmt::format("the head stalled for {:.1f} s itself (trainrun was stopped or starved of "
                    "CPU); no node is blamed for it: each gets a fresh {:.0f} s heartbeat timeout",
                    ToSeconds(*stalled), ToSeconds(options_.heartbeat.timeout)));
  }
  if (heartbeat_.SendDue())
    BroadcastLocked(EncodeJsonFrame(MessageType::kHeartbeat, json::object()));
  for (int rank : heartbeat_.Expired()) {
    const int conn = nodes_[rank].conn;
    if (conn >= 0 && server_->HasUnreadInput(conn)) {
      // The node spoke and the head has not read it yet: the head is behind (its
      // loop starved of CPU, thousands of nodes to read), the node is not silent.
      // Its timeout starts again; a node really gone still loses it.
      heartbeat_.Add(rank);
      if (behind_++ == 0) {
        options_.reporter->Warning(fmt::format(
            "the head is behind reading the nodes: {} had sent something the head had not "
            "read when its {:.0f} s heartbeat timeout passed; it is not blamed for it (nor any "
            "other node in the same case)",
            Who(rank), ToSeconds(options_.heartbeat.timeout)));
      }
      continue;
    }
    if (conn >= 0) server_->Close(conn);
    NodeLostLocked(rank, fmt::format("it sent nothing for {:.0f} s (heartbeat timeout)",
                                     ToSeconds(options_.heartbeat.timeout)));
  }
}

void HeadSession::SetRshHandler(RshHandler* handler) {
  std::lock_guard lock(mu_);
  rsh_handler_ = handler;
}

}  // namespace trainrun
