// The head's side of a multi-node job (node 0): runs the control server, holds
// the rendezvous, relays stops and rsh sessions, merges the nodes' uploads and
// decides the job's final status and exit code.
//
// Root cause: every failure the head hears of (a rank on any node, a lost node,
// a cancel or time limit on any node) is kept with the time it was seen; the
// earliest one names the job's exit code and failure, so ranks that died
// because another one did never take the blame.
#pragma once

#include <array>
#include <map>
#include <memory>
#include <set>

#include "base/free_port.h"
#include "runtime/cluster/cluster_session.h"
#include "runtime/cluster/control_auth.h"
#include "runtime/cluster/control_server.h"
#include "runtime/cluster/job_outcome.h"
#include "runtime/cluster/refusal_tally.h"

namespace trainrun {

class HeadSession : public SessionBase, private ControlServer::Handler {
 public:
  // Listens on `port` (all interfaces). kUnavailable when the port is taken.
  static Result<std::unique_ptr<HeadSession>> Start(SessionOptions options, const JobToken& token,
                                                    int port);
  ~HeadSession() override;

  int port() const { return server_->port(); }

  bool is_head() const override { return true; }
  int node_rank() const override { return 0; }
  Result<JobAssignment> Rendezvous(const NodeJoin& self) override;
  std::optional<StopNotice> WaitForStart(const Status& prepared, int exit_code) override;
  std::optional<StopNotice> GatherPreflight(const PreflightResult& mine,
                                            std::vector<nlohmann::json>* reports) override;
  void ReleaseMasterPort() override;
  void RankFailed(const RankFailure& failure) override;
  void Stopping(int exit_code, const std::string& reason) override;
  void WorkersDone() override;
  AttemptVerdict EndAttempt(int attempt, const RestartPolicy& policy) override;
  std::optional<StopNotice> WaitForAttemptStart(int attempt, const Status& prepared, int exit_code,
                                                std::optional<AttemptVerdict>* ended) override;
  void ReportResult(const NodeResult& result) override;
  std::vector<TransferItem> MergeUploads(std::vector<TransferItem> items,
                                         const std::string& run_prefix) override;
  JobOutcome Finish(const NodeDone& done, const JobOutcome& local) override;
  void LimitFinalize(TimePoint deadline) override;
  void SetRshHandler(RshHandler* handler) override;
  RshSink* rsh_sink() override { return &sink_; }
  std::optional<JobAssignment> CurrentAssignment() override;

  // The run id the head will assign (set before Rendezvous).
  void set_run_id(std::string run_id) { run_id_ = std::move(run_id); }

 private:
  struct Node : NodeReport {
    int conn = -1;
    bool ready = false;
    std::optional<PreflightResult> preflight;
    int attempt_ended = 0;  // the last attempt whose ranks all ended there (kAttemptEnded)
    // A replacement (RejoinLocked) that has not had the Start of the attempt it
    // joined: it cannot follow that attempt being ended before it started.
    bool awaiting_first_start = false;
    bool manifest_in = false;
    bool digests_in = false;
    NodeManifest manifest;
  };
  struct RshRoute {
    int agent_conn = -1;
    int node_rank = 0;
  };
  class Sink : public RshSink {
   public:
    explicit Sink(HeadSession* head) : head_(head) {}
    void Output(uint32_t session, int stream, std::string data) override;
    void Exited(uint32_t session, int exit_code, std::string error) override;

   private:
    HeadSession* head_;
  };
  enum class Phase { kRendezvous, kPreparing, kRunning };

  explicit HeadSession(SessionOptions options);

  // ControlServer::Handler, on the server thread.
  void OnAuthenticated(int conn, const std::string& role, int node_rank) override;
  void OnMessage(int conn, const Frame& frame) override;
  void OnClosed(int conn, const std::string& reason) override;
  void OnRefused(const std::string& peer, const std::string& reason) override;
  void OnTick() override;

  // The message handlers: a non-ok Status is a malformed (or unexpected) message,
  // named with its field, that RefuseMessageLocked turns away.
  Status HandleMessageLocked(int conn, const Frame& frame);
  Status OnNodeMessage(int node_rank, const Frame& frame);
  void OnJoin(int conn, const nlohmann::json& body);
  Status OnRshMessage(int conn, const Frame& frame);
  // Tells the peer why, closes its connection and reports it: a node that joined is
  // lost (after the rendezvous, that stops the job with 69).
  void RefuseMessageLocked(int conn, const std::string& why);
  // Tells a connection that has not joined (in hello_rank_) why its Join is refused,
  // and closes it.
  void RefuseJoinLocked(int conn, const std::string& reason);
  using RshRoutes = std::map<uint32_t, RshRoute>;
  // Tells the session's agent how it ended (`exit_body`, a kRshExit payload),
  // hangs up on it and forgets the session; the next route.
  RshRoutes::iterator EndRshSessionLocked(RshRoutes::iterator route,
                                          const nlohmann::json& exit_body);
  void NodeLostLocked(int node_rank, const std::string& why);
  void AddEventLocked(FailureEvent event);
  void StopLocked(int exit_code, const std::string& reason);
  // Node `node_rank`'s workers are done; the last one stops every node's servers.
  void WorkersDoneLocked(int node_rank);
  void MaybeStartLocked();
  // In-place restarts (head_session_restart.cc): the verdict on attempt `attempt`
  // from its earliest failure, and the state cleared for the next attempt (its
  // failures, its stop, every node's Ready) when there is one.
  AttemptVerdict DecideAttemptLocked(int attempt, const RestartPolicy& policy);
  void NextAttemptLocked(int attempt);
  // Node `lost_rank` was lost between attempts (the verdict on the last one was a
  // restart, the next one's ranks have not started): the next attempt ends before
  // its ranks start, as one that lost the node while they ran (its verdict to every
  // node, NextAttemptLocked). False, changing nothing, when that cannot be: no
  // restart left, rejoins off, a stop already under way, or another replacement
  // waiting for its first start; the caller then stops the job as before (69).
  bool EndAttemptBeforeStartLocked(int lost_rank);
  // This node prepared the attempt (Ready) or could not (the job stops).
  void PreparedLocked(const Status& prepared, int exit_code);
  // A Join after the rendezvous: a new trainrun for a lost node, while the head
  // waits for it (rejoin_deadline_), takes the lost node's place for the next
  // attempt. False when it is no such join (OnJoin holds or refuses it).
  bool RejoinLocked(int conn, const NodeJoin& join);
  // A Join for a lost node that came before the head decided on the attempt that
  // lost it (a replacement started at once, while the head still stops the
  // attempt): held in held_rejoins_ when a restart may still follow (rejoins on,
  // restarts left, no final verdict yet). False, holding nothing, otherwise.
  bool HoldRejoinLocked(int conn, const NodeJoin& join, const nlohmann::json& body);
  // The held joins: taken as joins now (the head waits for replacements: they
  // rejoin), or refused with `refusal` when it is not empty (the job ends).
  void ReleaseHeldRejoinsLocked(const std::string& refusal);
  // On the server's tick: the rejoin timeout passed with a node still lost ->
  // the job stops with 69.
  void RejoinTickLocked();
  // After node `rank`'s preflight came in: it failed -> stop with its code and
  // reason; every live node's is in -> pass (kPreflightPassed).
  void MaybeEndPreflightLocked(int rank);
  // Set node.ready / node.preflight, and forget a node, keeping the counts below.
  void SetReadyLocked(Node& node);
  void SetPreflightLocked(Node& node, PreflightResult result);
  void ForgetNodeLocked(std::map<int, Node>::iterator node);
  void BroadcastLocked(const std::string& frame);
  void FailRendezvousLocked(const std::string& reason);
  void NotifyStop();
  void CanceledLocked() override;
  std::string Who(int node_rank);
  JobOutcome DecideLocked(const JobOutcome& local);
  // A WaitLocked condition: every node not lost has `flag` (one of
  // kFinalizeFlags) set.
  std::function<bool()> AllLive(bool Node::*flag);
  // The finalize flags, each counted over nodes_ (set, or the node lost) so that
  // AllLive compares a count instead of scanning every node at every wake-up.
  static constexpr std::array<bool Node::*, 4> kFinalizeFlags = {
      &Node::result_in, &Node::manifest_in, &Node::digests_in, &Node::done_in};
  size_t& SetOrLost(bool Node::*flag);
  // Sets `flag` on `node`, keeping its count.
  void SetFlagLocked(Node& node, bool Node::*flag);
  // Takes `node` out of the counts before it is forgotten or replaced.
  void UncountFlagsLocked(const Node& node);
  // Waits for every live node's result (however long: they are alive), then starts
  // the finalize clock if it has not started.
  void WaitForResultsLocked(std::unique_lock<std::mutex>& lock);

  std::unique_ptr<ControlServer> server_;
  Sink sink_{this};
  std::string run_id_;

  // Guarded by mu_ (SessionBase):
  Phase phase_ = Phase::kRendezvous;
  std::map<int, Node> nodes_;                                // by node rank; 0 is this node
  std::map<int, int> conn_node_;                             // node connections -> node rank
  std::map<int, int> hello_rank_;                            // node connections before their Join
  std::vector<std::pair<int, nlohmann::json>> early_joins_;  // before Rendezvous()
  std::optional<RendezvousBook> book_;
  std::optional<JobAssignment> assignment_;
  HeldPort master_port_;  // bound from the rendezvous until ReleaseMasterPort()
  std::string rendezvous_error_;
  RefusalTally refusals_;  // refused peers: the first few, then counts
  std::vector<FailureEvent> events_;
  HeartbeatMonitor heartbeat_;
  Duration beat_interval_ = Duration::max();  // the head's beats: the joined nodes' least need
  uint64_t behind_ = 0;  // nodes whose timeout passed with their input unread (OnTick)
  std::optional<TimePoint> finalize_deadline_;
  std::optional<TimePoint> hard_deadline_;  // LimitFinalize()
  bool finished_ = false;
  bool preflight_passed_ = false;
  // Of nodes_: how many are ready, and how many have a preflight or are lost, so
  // the N-th Ready or Preflight does not scan N nodes.
  size_t ready_nodes_ = 0;
  size_t preflight_or_lost_ = 0;
  std::array<size_t, kFinalizeFlags.size()> set_or_lost_{};  // by kFinalizeFlags
  int next_attempt_ = 1;                                     // the attempt the nodes start next
  std::optional<RestartPolicy> policy_;                      // the job's, from the first EndAttempt
  std::map<int, AttemptVerdict> ended_before_start_;  // EndAttemptBeforeStartLocked's, by attempt
  std::optional<TimePoint> rejoin_deadline_;          // waiting for a lost node's replacement
  // Replacements' Joins (conn, body) before the verdict on the attempt (HoldRejoinLocked).
  std::vector<std::pair<int, nlohmann::json>> held_rejoins_;
  bool last_attempt_decided_ = false;  // a verdict without a restart was given
  std::set<int> workers_done_;         // nodes whose workers all exited 0 (WorkersDone)
  std::vector<OutputConflict> conflicts_;
  // rsh
  RshHandler* rsh_handler_ = nullptr;
  uint32_t next_session_ = 1;
  RshRoutes sessions_;
  std::map<int, uint32_t> agent_session_;  // agent conn -> session
};

}  // namespace trainrun
