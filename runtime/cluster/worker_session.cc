#include "runtime/cluster/worker_session.h"

#include <fmt/format.h>

#include "base/net_util.h"
#include "base/text.h"
#include "runtime/cluster/control_messages.h"
#include "runtime/cluster/heartbeat.h"

namespace trainrun {
namespace {

using nlohmann::json;
constexpr auto kAssignmentMargin = std::chrono::seconds(60);

}  // namespace

WorkerSession::WorkerSession(SessionOptions options, const JobToken& token, std::string head,
                             int port, int node_rank)
    : SessionBase(std::move(options)),
      key_(RoleKey(token, kRoleNode)),
      head_(std::move(head)),
      port_(port),
      node_rank_(node_rank),
      heartbeat_(options_.clock, options_.heartbeat) {
  head_name_ = fmt::format("the head {}:{}", head_, port_);
}

WorkerSession::~WorkerSession() {
  if (client_) client_->Close();
  client_.reset();
}

void WorkerSession::Send(MessageType type, const json& body) {
  if (!client_) return;
  Status sent = client_->SendJson(type, body);
  if (!sent.ok()) {
    options_.reporter->Info(fmt::format("could not send {} to {}: {}", MessageTypeName(type),
                                        head_name_, sent.message()));
  }
}

void WorkerSession::CanceledLocked() {
  std::string reason = "canceled (trainrun received a signal)";
  Send(MessageType::kNodeStopping,
       {{"exitCode", kExitCodeCanceled}, {"reason", reason}, {"timeMs", WallMillis()}});
  StopLocked({kExitCodeCanceled, fmt::format("{} on node {}", reason, node_rank_)});
}

Result<JobAssignment> WorkerSession::Rendezvous(const NodeJoin& self) {
  const TimePoint deadline = options_.clock->Now() + options_.rendezvous_timeout;
  ControlClientOptions client_options;
  client_options.host = head_;
  client_options.port = port_;
  client_options.role = kRoleNode;
  client_options.node_rank = node_rank_;
  client_options.key = key_;
  client_options.deadline = deadline;
  client_options.clock = options_.clock;
  client_options.canceled = [this] { return Canceled(); };
  options_.reporter->Info(fmt::format("node {}: joining {} (rendezvous timeout {:.0f} s)",
                                      node_rank_, head_name_,
                                      ToSeconds(options_.rendezvous_timeout)));
  int failures = 0;
  Result<std::unique_ptr<ControlClient>> client =
      ControlClient::Connect(client_options, [&](const std::string& error) {
        // The first failure and then every 20th, so a long wait is visible but
        // quiet.
        if (failures++ % 20 == 0) {
          options_.reporter->Info(
              fmt::format("{} is not reachable yet ({}); retrying", head_name_, error));
        }
      });
  if (!client.ok()) return UnavailableError(client.status().message());
  client_ = std::move(client).value();
  NodeJoin join = self;
  join.address = client_->local_ip();
  join.interface = InterfaceOf(join.address);
  join.heartbeat_timeout_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(options_.heartbeat.timeout).count();
  Status sent = client_->SendJson(MessageType::kJoin, join.ToJson());
  if (!sent.ok()) return UnavailableError(sent.message());

  // Connected, the head's verdict counts: it refuses every node with the reason
  // when its own rendezvous timeout passes. A margin covers a head started
  // later.
  const TimePoint verdict_deadline = deadline + kAssignmentMargin;
  std::optional<JobAssignment> assignment;
  while (!assignment) {
    if (Canceled()) return UnavailableError("canceled while waiting for the other nodes");
    // A slice of the clock between looks for a cancel (with a fake clock, until
    // the test moves it).
    TimePoint slice =
        std::min(verdict_deadline, options_.clock->Now() + std::chrono::milliseconds(200));
    Result<std::optional<Frame>> received = client_->Receive(slice);
    if (!received.ok() || !*received) {
      const bool late = options_.clock->Now() >= verdict_deadline;
      if (received.ok() && !late) continue;  // this slice passed quietly
      if (late) {
        return UnavailableError(
            fmt::format("rendezvous timed out after {:.0f} s: {} did not "
                        "assign this node (other nodes missing?)",
                        ToSeconds(options_.rendezvous_timeout), head_name_));
      }
      return UnavailableError(received.status().message());
    }
    const Frame& frame = **received;
    if (frame.type == MessageType::kRefused) {
      Result<std::string> reason = DecodeRefused(frame);
      return UnavailableError(fmt::format("{} refused this node: {}", head_name_,
                                          reason.ok() ? *reason : reason.status().message()));
    }
    // Before its assignment, a node has no part in the job's stop: the head
    // refuses it with the reason.
    if (frame.type != MessageType::kAssign) continue;
    Result<json> body = DecodeJsonPayload(frame);
    if (!body.ok()) {
      return UnavailableError(
          fmt::format("{} sent a malformed message: {}", head_name_, body.status().message()));
    }
    Result<JobAssignment> parsed = JobAssignment::FromJson(*body);
    if (!parsed.ok()) {
      return UnavailableError(
          fmt::format("{} sent a malformed message: {}", head_name_, parsed.status().message()));
    }
    assignment = std::move(parsed).value();
  }
  if (assignment->nodes.size() <= static_cast<size_t>(node_rank_)) {
    return UnavailableError("the head's assignment does not include this node");
  }
  head_name_ = fmt::format("the head (node 0: {}, {})", assignment->nodes[0].host,
                           assignment->nodes[0].address);
  {
    std::lock_guard lock(mu_);
    // Beats a quarter of the shorter of the two timeouts apart, ours or the head's:
    // a head with a 3 s timeout hears from a node with a 60 s one every 0.75 s. A
    // head that does not say its timeout gets a beat every second, as it used to.
    const Duration head_needs =
        assignment->head_heartbeat_timeout_ms > 0
            ? Duration(std::chrono::milliseconds(assignment->head_heartbeat_timeout_ms)) / 4
            : Duration(kUntoldTimeoutBeatInterval);
    heartbeat_.set_send_interval(std::min(heartbeat_.send_interval(), head_needs));
    heartbeat_.Add(0);
  }
  client_->StartReader([this](const Frame& f) { OnFrame(f); }, [this] { OnTick(); },
                       [this](const std::string& reason) { OnClosed(reason); });
  return *assignment;
}

void WorkerSession::StopLocked(const StopNotice& notice) {
  stop_.Set(notice);
  cv_.notify_all();
}

void WorkerSession::HeadLostLocked(const std::string& why) {
  if (head_lost_ || finished_) return;
  head_lost_ = true;
  std::string reason = fmt::format("lost {}: {}", head_name_, why);
  options_.reporter->Error(reason);
  StopLocked({kExitNodeLost, reason});
}

void WorkerSession::OnClosed(const std::string& reason) {
  std::lock_guard lock(mu_);
  HeadLostLocked(reason);
}

void WorkerSession::OnTick() {
  bool send = false;
  {
    std::lock_guard lock(mu_);
    if (head_lost_ || finished_) return;
    if (std::optional<Duration> stalled = heartbeat_.Turn()) {
      options_.reporter->Warning(fmt::format(
          "node {} stalled for {:.1f} s itself (trainrun was stopped or starved of CPU); the "
          "head is not blamed for it: it gets a fresh {:.0f} s heartbeat timeout",
          node_rank_, ToSeconds(*stalled), ToSeconds(options_.heartbeat.timeout)));
    }
    send = heartbeat_.SendDue();
    if (!heartbeat_.Expired().empty()) {
      HeadLostLocked(fmt::format("it sent nothing for {:.0f} s (heartbeat timeout)",
                                 ToSeconds(options_.heartbeat.timeout)));
      client_->Close();
      return;
    }
  }
  if (send) Send(MessageType::kHeartbeat, json::object());
}

void WorkerSession::OnFrame(const Frame& frame) {
  std::lock_guard lock(mu_);
  heartbeat_.Heard(0);
  // The handlers read only decoded, checked values (control_messages.h); should
  // something still throw, the head's message is refused, not this node aborted.
  Status handled;
  try {
    handled = HandleFrameLocked(frame);
  } catch (const std::exception& e) {
    handled = InternalError(
        fmt::format("{} message: {}", MessageTypeName(frame.type), EscapeControl(e.what())));
  }
  if (!handled.ok()) {
    // The head is not followed past a message this node cannot read.
    HeadLostLocked(fmt::format("it sent a malformed message: {}", handled.message()));
    client_->Close();
  }
  cv_.notify_all();
}

Status WorkerSession::HandleFrameLocked(const Frame& frame) {
  switch (frame.type) {
    case MessageType::kRshData: {
      TR_ASSIGN_OR_RETURN(RshChunk chunk, DecodeRshData(frame));
      if (rsh_handler_) {
        rsh_handler_->Stdin(chunk.session, chunk.data);
        return Status::Ok();
      }
      for (PendingRsh& pending : pending_rsh_) {
        if (pending.session == chunk.session) pending.input.push_back(std::move(chunk.data));
      }
      return Status::Ok();
    }
    case MessageType::kHeartbeat: return DecodeEmpty(frame);
    case MessageType::kStart:
      TR_RETURN_IF_ERROR(DecodeEmpty(frame));
      started_ = true;
      rsh_ended_ = false;
      return Status::Ok();
    case MessageType::kPreflightPassed:
      TR_RETURN_IF_ERROR(DecodeEmpty(frame));
      preflight_passed_ = true;
      return Status::Ok();
    case MessageType::kStop: {
      TR_ASSIGN_OR_RETURN(StopMessage m, DecodeStop(frame));
      StopLocked({m.exit_code, m.reason});
      return Status::Ok();
    }
    case MessageType::kStopServers:
      TR_RETURN_IF_ERROR(DecodeEmpty(frame));
      ServersStopLocked();
      return Status::Ok();
    case MessageType::kAttemptVerdict: {
      TR_ASSIGN_OR_RETURN(AttemptVerdict verdict, DecodeAttemptVerdict(frame));
      if (verdict.restart) {
        // Cleared here, not when EndAttempt wakes: the next attempt's Start, and a
        // stop of it, may follow at once.
        stop_.Clear();
        started_ = false;
        servers_stop_ = false;
      }
      verdicts_[verdict.attempt] = verdict;
      verdict_ = std::move(verdict);
      return Status::Ok();
    }
    case MessageType::kUploadPlan: {
      TR_ASSIGN_OR_RETURN(UploadPlanMessage m, DecodeUploadPlan(frame));
      if (m.need_digests) {
        digest_request_ = std::move(*m.need_digests);
      } else {
        plan_ = std::move(m.uploads);
      }
      return Status::Ok();
    }
    case MessageType::kFinished: {
      TR_ASSIGN_OR_RETURN(JobOutcome outcome, DecodeFinished(frame));
      finished_ = std::move(outcome);
      return Status::Ok();
    }
    case MessageType::kRshExec: {
      TR_ASSIGN_OR_RETURN(RshExecMessage m, DecodeRshExec(frame));
      if (rsh_handler_) {
        rsh_handler_->Exec(m.session, std::move(m.argv));
      } else if (started_ && !rsh_ended_) {
        // The head's mpirun was quicker than this node's launch: it runs once ready.
        pending_rsh_.push_back({m.session, std::move(m.argv), {}});
      } else {
        sink_.Exited(m.session, 255, fmt::format("node {} runs no MPI launch", node_rank_));
      }
      return Status::Ok();
    }
    case MessageType::kRshClose: {
      TR_ASSIGN_OR_RETURN(uint32_t session, DecodeRshClose(frame));
      if (rsh_handler_) rsh_handler_->Kill(session);
      std::erase_if(pending_rsh_,
                    [session](const PendingRsh& pending) { return pending.session == session; });
      return Status::Ok();
    }
    case MessageType::kRefused: {
      TR_ASSIGN_OR_RETURN(std::string reason, DecodeRefused(frame));
      HeadLostLocked(fmt::format("it refused this node: {}", reason));
      client_->Close();
      return Status::Ok();
    }
    default:
      return InvalidArgumentError(
          fmt::format("{} message: not one the head sends a node", MessageTypeName(frame.type)));
  }
}

std::optional<StopNotice> WorkerSession::WaitForStart(const Status& prepared, int exit_code) {
  if (prepared.ok()) {
    Send(MessageType::kReady, json::object());
  } else {
    Send(MessageType::kNodeStopping,
         {{"exitCode", exit_code},
          {"reason", "could not prepare the run: " + prepared.message()},
          {"timeMs", WallMillis()}});
  }
  std::unique_lock lock(mu_);
  if (!prepared.ok()) {
    // The head answers with the job's stop; if it is gone, this is the stop.
    WaitLocked(lock, [&] { return stop_.notice().has_value(); });
    return stop_.notice();
  }
  WaitLocked(lock, [&] { return started_ || stop_.notice().has_value(); });
  return stop_.notice();
}

std::optional<StopNotice> WorkerSession::WaitForAttemptStart(int attempt, const Status& prepared,
                                                             int exit_code,
                                                             std::optional<AttemptVerdict>* ended) {
  auto ended_before_start = [&] { return verdicts_.count(attempt) != 0; };
  {
    std::lock_guard lock(mu_);
    if (ended_before_start()) {
      *ended = verdicts_[attempt];
      return std::nullopt;
    }
  }
  if (!prepared.ok()) return WaitForStart(prepared, exit_code);
  // The head ignores this Ready if it has ended the attempt meanwhile.
  Send(MessageType::kReady, {{"attempt", attempt}});
  std::unique_lock lock(mu_);
  WaitLocked(lock, [&] { return started_ || stop_.notice().has_value() || ended_before_start(); });
  if (ended_before_start()) {
    *ended = verdicts_[attempt];
    return std::nullopt;
  }
  return stop_.notice();
}

std::optional<StopNotice> WorkerSession::GatherPreflight(const PreflightResult& mine,
                                                         std::vector<nlohmann::json>* reports) {
  reports->push_back(mine.report);
  Send(MessageType::kPreflight, {{"passed", mine.passed},
                                 {"exitCode", mine.exit_code},
                                 {"reason", mine.reason},
                                 {"report", mine.report}});
  std::unique_lock lock(mu_);
  // A failed one waits for the head's stop (it is the stop, if the head is gone).
  WaitLocked(lock, [&] { return preflight_passed_ || stop_.notice().has_value(); });
  return stop_.notice();
}

void WorkerSession::RankFailed(const RankFailure& failure) {
  Send(MessageType::kRankFailed, {{"rank", failure.rank},
                                  {"exitCode", failure.status.ToExitCode()},
                                  {"signal", failure.status.signal},
                                  {"reason", failure.reason},
                                  {"pid", failure.pid},
                                  {"timeMs", WallMillis()}});
}

void WorkerSession::Stopping(int exit_code, const std::string& reason) {
  Send(MessageType::kNodeStopping,
       {{"exitCode", exit_code}, {"reason", reason}, {"timeMs", WallMillis()}});
}

void WorkerSession::WorkersDone() { Send(MessageType::kWorkersDone, json::object()); }

AttemptVerdict WorkerSession::EndAttempt(int attempt, const RestartPolicy& policy) {
  (void)policy;  // the head decides
  Send(MessageType::kAttemptEnded, {{"attempt", attempt}});
  std::unique_lock lock(mu_);
  WaitLocked(lock, [&] { return (verdict_ && verdict_->attempt >= attempt) || head_lost_; });
  if (verdict_ && verdict_->attempt >= attempt) return *verdict_;
  AttemptVerdict lost;
  lost.attempt = attempt;
  lost.outcome = std::string(RunOutcomeName(RunOutcome::kStopped));
  lost.exit_code = kExitNodeLost;
  lost.reason = stop_.notice() ? stop_.notice()->reason : "lost the head";
  lost.why = "not restarted: this node lost the head";
  return lost;
}

void WorkerSession::ReportResult(const NodeResult& result) {
  Send(MessageType::kNodeResult, result.ToJson());
}

std::vector<TransferItem> WorkerSession::MergeUploads(std::vector<TransferItem> items,
                                                      const std::string& run_prefix) {
  json files = json::array();
  for (const TransferItem& item : items) {
    files.push_back({{"key", item.key.substr(run_prefix.size())}, {"size", item.size}});
  }
  Send(MessageType::kManifest, {{"files", files}});
  std::unique_lock lock(mu_);
  auto answered = [&] { return plan_ || digest_request_ || head_lost_ || finished_; };
  WaitLocked(lock, answered);
  if (digest_request_ && !plan_) {
    std::set<std::string> keys(digest_request_->begin(), digest_request_->end());
    lock.unlock();
    json digests = DigestsOf(items, run_prefix, keys);
    Send(MessageType::kManifest, {{"digests", digests}});
    lock.lock();
    WaitLocked(lock, [&] { return plan_ || head_lost_ || finished_; });
  }
  std::vector<TransferItem> mine;
  if (!plan_) {
    // No plan from the head: keep every file under a name no other node uses.
    options_.reporter->Warning(
        fmt::format("no upload plan from {}; this node's outputs go up as "
                    "<name>.node{}.<ext>",
                    head_name_, node_rank_));
    for (TransferItem& item : items) {
      item.key = run_prefix + ConflictKey(item.key.substr(run_prefix.size()), node_rank_);
      mine.push_back(std::move(item));
    }
    return mine;
  }
  for (TransferItem& item : items) {
    auto as = plan_->find(item.key.substr(run_prefix.size()));
    if (as == plan_->end()) continue;
    item.key = run_prefix + as->second;
    mine.push_back(std::move(item));
  }
  return mine;
}

JobOutcome WorkerSession::Finish(const NodeDone& done, const JobOutcome& local) {
  Send(MessageType::kNodeDone,
       {{"files", done.files}, {"bytes", done.bytes}, {"uploadErrors", done.upload_errors}});
  std::unique_lock lock(mu_);
  WaitLocked(lock, [&] { return finished_ || head_lost_; });
  JobOutcome outcome = local;
  if (!finished_) {
    outcome.head_lost = true;
    if (outcome.exit_code == 0) {
      outcome.exit_code = kExitNodeLost;
      outcome.status = RunStatus::kFailed;
      outcome.outcome = "node lost";
      outcome.stop_reason = stop_.notice() ? stop_.notice()->reason : "lost the head";
    }
    return outcome;
  }
  outcome.exit_code = finished_->exit_code;
  outcome.status = finished_->status;
  outcome.outcome = finished_->outcome;
  outcome.stop_reason = finished_->stop_reason;
  outcome.failure = finished_->failure;
  return outcome;
}

void WorkerSession::SetRshHandler(RshHandler* handler) {
  std::lock_guard lock(mu_);
  rsh_handler_ = handler;
  if (handler == nullptr) rsh_ended_ = true;
  std::vector<PendingRsh> pending = std::move(pending_rsh_);
  pending_rsh_.clear();
  for (PendingRsh& rsh : pending) {
    if (handler == nullptr) {
      sink_.Exited(rsh.session, 255, fmt::format("node {}'s MPI launch ended", node_rank_));
      continue;
    }
    handler->Exec(rsh.session, std::move(rsh.argv));
    for (std::string& data : rsh.input) handler->Stdin(rsh.session, std::move(data));
  }
}

void WorkerSession::Sink::Output(uint32_t session, int stream, std::string data) {
  if (!worker_->client_) return;
  worker_->client_->Send(EncodeRshData({session, static_cast<uint8_t>(stream), std::move(data)}))
      .IgnoreError();
}

void WorkerSession::Sink::Exited(uint32_t session, int exit_code, std::string error) {
  worker_->Send(MessageType::kRshExit,
                {{"session", session}, {"exitCode", exit_code}, {"error", error}});
}

}  // namespace trainrun
