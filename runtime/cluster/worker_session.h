// A non-head node's side of a multi-node job: connects to the head (with
// backoff until the rendezvous timeout), follows its assignment, start and
// stop, reports this node's failures and results, and exits with the job's exit
// code.
//
// Losing the head (its connection closes, or it sends nothing for the heartbeat
// timeout) stops this node's ranks with exit 69. A stall of this node itself is
// no loss of the head: it gets a fresh interval (heartbeat.h).
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "runtime/cluster/cluster_session.h"
#include "runtime/cluster/control_auth.h"
#include "runtime/cluster/control_client.h"

namespace trainrun {

class WorkerSession : public SessionBase {
 public:
  WorkerSession(SessionOptions options, const JobToken& token, std::string head, int port,
                int node_rank);
  ~WorkerSession() override;

  bool is_head() const override { return false; }
  int node_rank() const override { return node_rank_; }
  Result<JobAssignment> Rendezvous(const NodeJoin& self) override;
  std::optional<StopNotice> WaitForStart(const Status& prepared, int exit_code) override;
  std::optional<StopNotice> GatherPreflight(const PreflightResult& mine,
                                            std::vector<nlohmann::json>* reports) override;
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
  void SetRshHandler(RshHandler* handler) override;
  RshSink* rsh_sink() override { return &sink_; }

 private:
  class Sink : public RshSink {
   public:
    explicit Sink(WorkerSession* worker) : worker_(worker) {}
    void Output(uint32_t session, int stream, std::string data) override;
    void Exited(uint32_t session, int exit_code, std::string error) override;

   private:
    WorkerSession* worker_;
  };

  void OnFrame(const Frame& frame);
  // Non-ok: a malformed or unexpected message from the head, named with its field.
  Status HandleFrameLocked(const Frame& frame);
  void OnTick();
  void OnClosed(const std::string& reason);
  void HeadLostLocked(const std::string& why);
  void StopLocked(const StopNotice& notice);
  void Send(MessageType type, const nlohmann::json& body);
  void CanceledLocked() override;

  std::string key_;
  std::string head_;
  int port_;
  int node_rank_;
  std::string head_name_;  // "node 0 (host, address)" once known
  std::unique_ptr<ControlClient> client_;
  Sink sink_{this};

  // Guarded by mu_ (SessionBase):
  HeartbeatMonitor heartbeat_;
  bool started_ = false;
  bool preflight_passed_ = false;
  bool head_lost_ = false;
  std::optional<std::map<std::string, std::string>> plan_;  // key -> key to upload as
  std::optional<std::vector<std::string>> digest_request_;  // keys
  std::optional<JobOutcome> finished_;                      // the head's final word
  std::optional<AttemptVerdict> verdict_;                   // on the last attempt that ended
  // Every verdict by attempt: one for an attempt not started here ended it before
  // its ranks started (WaitForAttemptStart).
  std::map<int, AttemptVerdict> verdicts_;
  RshHandler* rsh_handler_ = nullptr;
  // MPI: an RshExec that comes after the head's Start but before this node's MPI
  // launch of the attempt is ready (SetRshHandler) waits for it, with the input that
  // follows; one after the launch ended here (until the next Start) is refused.
  struct PendingRsh {
    uint32_t session = 0;
    std::vector<std::string> argv;
    std::vector<std::string> input;
  };
  std::vector<PendingRsh> pending_rsh_;
  bool rsh_ended_ = false;
};

}  // namespace trainrun
