// The head's part in MPI's remote launch: `trainrun rsh` agents connect to the
// head, which starts their command on the node they name and relays the
// session's stdio and end between the agent and that node. With in-place
// restarts each attempt has its own mpirun and agents: an agent that names an
// attempt other than the job's current one is refused before anything starts.
#include <fmt/format.h>

#include "base/text.h"
#include "runtime/cluster/control_messages.h"
#include "runtime/cluster/head_session.h"

namespace trainrun {

using nlohmann::json;

Status HeadSession::OnRshMessage(int conn, const Frame& frame) {
  auto fail = [&](uint32_t session, const std::string& error) {
    server_->Send(conn,
                  EncodeJsonFrame(MessageType::kRshExit,
                                  {{"session", session}, {"exitCode", 255}, {"error", error}}));
    server_->Close(conn);
    return Status::Ok();
  };
  if (frame.type == MessageType::kRshData) {
    TR_ASSIGN_OR_RETURN(RshChunk chunk, DecodeRshData(frame));
    auto session = agent_session_.find(conn);
    if (session == agent_session_.end()) return Status::Ok();
    auto route = sessions_.find(session->second);
    if (route == sessions_.end()) return Status::Ok();
    if (route->second.node_rank == 0) {
      if (rsh_handler_) rsh_handler_->Stdin(session->second, chunk.data);
      return Status::Ok();
    }
    chunk.session = session->second;
    server_->Send(nodes_[route->second.node_rank].conn, EncodeRshData(chunk));
    return Status::Ok();
  }
  if (frame.type != MessageType::kRshOpen) {
    return InvalidArgumentError(fmt::format("{} message: not one an rsh agent sends the head",
                                            MessageTypeName(frame.type)));
  }
  if (agent_session_.count(conn) != 0) {
    return InvalidArgumentError("RshOpen message: a second one on the same connection");
  }
  TR_ASSIGN_OR_RETURN(RshOpenMessage open, DecodeRshOpen(frame));
  if (!assignment_) return fail(0, "the job has no nodes yet (rendezvous not complete)");
  if (open.attempt && *open.attempt != next_attempt_) {
    // An agent of a stopped attempt (its mpirun went while it connected): nothing
    // of that attempt starts on a node once the next one is under way.
    options_.reporter->Info(fmt::format("rsh agent of attempt {} refused: the job is at attempt {}",
                                        *open.attempt, next_attempt_));
    return fail(0, fmt::format("this agent belongs to attempt {} of the ranks; the job is at "
                               "attempt {}",
                               *open.attempt, next_attempt_));
  }
  const NodeSlot* target = assignment_->FindHost(open.host);
  if (target == nullptr) {
    std::vector<std::string> known;
    for (const NodeSlot& n : assignment_->nodes)
      known.push_back(fmt::format("{} ({})", n.address, n.host));
    return fail(0, fmt::format("no node \"{}\" in this job; its nodes are {}", open.host,
                               fmt::join(known, ", ")));
  }
  if (nodes_[target->node_rank].lost)
    return fail(0, fmt::format("{} was lost", Who(target->node_rank)));
  const uint32_t session = next_session_++;
  sessions_[session] = {conn, target->node_rank};
  agent_session_[conn] = session;
  std::vector<std::string> shown;
  for (const std::string& arg : open.argv) shown.push_back(EscapeControl(arg));
  options_.reporter->Info(fmt::format("rsh session {}: starting on {}: {}", session,
                                      Who(target->node_rank), fmt::join(shown, " ")));
  if (target->node_rank == 0) {
    if (rsh_handler_ == nullptr) return fail(session, "the head runs no MPI launch");
    rsh_handler_->Exec(session, open.argv);
    return Status::Ok();
  }
  server_->Send(
      nodes_[target->node_rank].conn,
      EncodeJsonFrame(MessageType::kRshExec, {{"session", session}, {"argv", open.argv}}));
  return Status::Ok();
}

std::optional<JobAssignment> HeadSession::CurrentAssignment() {
  std::lock_guard lock(mu_);
  return assignment_;
}

void HeadSession::Sink::Output(uint32_t session, int stream, std::string data) {
  std::lock_guard lock(head_->mu_);
  auto route = head_->sessions_.find(session);
  if (route == head_->sessions_.end()) return;
  head_->server_->Send(route->second.agent_conn,
                       EncodeRshData({session, static_cast<uint8_t>(stream), std::move(data)}));
}

void HeadSession::Sink::Exited(uint32_t session, int exit_code, std::string error) {
  std::lock_guard lock(head_->mu_);
  auto route = head_->sessions_.find(session);
  if (route == head_->sessions_.end()) return;
  head_->EndRshSessionLocked(route,
                             {{"session", session}, {"exitCode", exit_code}, {"error", error}});
}

HeadSession::RshRoutes::iterator HeadSession::EndRshSessionLocked(RshRoutes::iterator route,
                                                                  const json& exit_body) {
  server_->Send(route->second.agent_conn, EncodeJsonFrame(MessageType::kRshExit, exit_body));
  server_->Close(route->second.agent_conn);
  agent_session_.erase(route->second.agent_conn);
  return sessions_.erase(route);
}

}  // namespace trainrun
