// A multi-node job as one node sees it: the head (head_session.h) and every other
// node (worker_session.h) do the same steps through this interface, so the run
// pipeline does not care which one it is.
//
// clang-format off
//   Rendezvous      nodes join, the head assigns ranks, port, addresses
//   WaitForStart    every node prepared (or one failed) -> start (or stop)
//   GatherPreflight (a job with preflight) every node's preflight passed -> start
//                   the ranks; one failed -> every node stops with its code
//   running         SetStopHandler hears the job's stop; RankFailed and Stopping
//                   tell the others about this node's; with parameter servers,
//                   WorkersDone and SetServersStopHandler end them together
//   EndAttempt      (a job with maxRestarts) this node's ranks of an attempt ended;
//                   the head's verdict: restart (WaitForAttemptStart, then running)
//                   or go on to ReportResult
//   ReportResult    this node's ranks ended
//   MergeUploads    outputs of all nodes merged without overwriting (output_merge.h)
//   Finish          uploads done; the head decides the job's status and exit code,
//                   every node exits with it
// clang-format on
//
// Every wait ends when a node is lost (exit 69), when the head is lost (exit 69),
// or when cancel_requested() turns true; the calls are made from the run
// pipeline's thread, the stop handler runs on a control-plane thread.
#pragma once

#include <condition_variable>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/clock.h"
#include "runtime/cluster/heartbeat.h"
#include "runtime/cluster/node_report.h"
#include "runtime/cluster/output_merge.h"
#include "runtime/cluster/rendezvous.h"
#include "runtime/process/supervisor.h"
#include "runtime/report/reporter.h"
#include "runtime/run/history.h"
#include "runtime/run/restart_policy.h"
#include "runtime/run/run_record.h"

namespace trainrun {

constexpr std::chrono::seconds kDefaultRendezvousTimeout{600};
// The head waits for the other nodes' uploads as long as each node may retry
// its own (--finalize-timeout), and this much more.
constexpr std::chrono::seconds kFinalizeWaitMargin{30};
constexpr std::chrono::seconds kDefaultNodesFinalizeTimeout{600 + 30};
constexpr int kExitNodeLost = 69;

struct SessionOptions {
  Duration rendezvous_timeout = kDefaultRendezvousTimeout;   // all nodes joined by then
  Duration finalize_timeout = kDefaultNodesFinalizeTimeout;  // the head's wait for uploads
  HeartbeatOptions heartbeat;
  // A job with restarts: how long the head waits, once an attempt ended with a
  // node lost, for a new trainrun with that node rank (and the job's token) to
  // join the next attempt (README "A replaced node rejoins"). None: a lost node
  // ends the job (69).
  std::optional<Duration> rejoin_timeout;
  // Polled while waiting; true ends the wait as a cancel (exit 143).
  std::function<bool()> cancel_requested;
  Reporter* reporter = nullptr;  // not owned; never null
  // Deadlines, heartbeats and the control plane's ticks read this clock (not
  // owned; it must outlive the session and be safe to read from any thread). A
  // fake clock that a test advances takes effect within a kControlTick (or a
  // wait's slice, 100 ms) of real time.
  Clock* clock = SystemClock();
};

// Why the job stops.
struct StopNotice {
  int exit_code = 0;
  std::string reason;
};

// A session's first stop notice, handed to the handler the run sets: when it comes,
// or when the handler is set if the notice came first. Not thread-safe: its
// session calls it under the session's lock.
class StopLatch {
 public:
  // Records `notice` unless one is recorded already; the first one stands.
  void Set(StopNotice notice);
  void SetHandler(std::function<void(const StopNotice&)> handler);
  // Forgets the notice and the handler: the next attempt of the ranks
  // (ClusterSession::EndAttempt) has had no stop yet.
  void Clear();
  const std::optional<StopNotice>& notice() const { return notice_; }

 private:
  std::optional<StopNotice> notice_;
  std::function<void(const StopNotice&)> handler_;
};

// MPI's remote launch on a node: `trainrun rsh` sessions, relayed by the head.
class RshHandler {
 public:
  virtual ~RshHandler() = default;
  // Start `argv` (a command line for /bin/sh, as ssh would run it) for
  // `session`.
  virtual void Exec(uint32_t session, std::vector<std::string> argv) = 0;
  // Input for the session's stdin; empty = end of input.
  virtual void Stdin(uint32_t session, std::string data) = 0;
  // The agent went away: stop the session's process.
  virtual void Kill(uint32_t session) = 0;
};

// Where a node's rsh sessions send their output and end. Thread-safe.
class RshSink {
 public:
  virtual ~RshSink() = default;
  virtual void Output(uint32_t session, int stream, std::string data) = 0;
  virtual void Exited(uint32_t session, int exit_code, std::string error) = 0;
};

class ClusterSession {
 public:
  virtual ~ClusterSession() = default;
  virtual bool is_head() const = 0;
  virtual int node_rank() const = 0;

  // Joins the job; kUnavailable (69) when the rendezvous fails or times out,
  // naming the nodes that never came or the reason a node was refused.
  virtual Result<JobAssignment> Rendezvous(const NodeJoin& self) = 0;

  // Says whether this node prepared (`prepared` ok) or not (then `exit_code` is
  // what it would exit with), and waits for every node. None: start the ranks.
  virtual std::optional<StopNotice> WaitForStart(const Status& prepared, int exit_code) = 0;

  // A job with preflight, after WaitForStart: says how this node's preflight went
  // and waits for every node's. None: every node passed, start the ranks. Else the
  // job's stop: the first failed preflight the head hears of stops every node at
  // once, with its code (75) and its reason prefixed with the node ("node 1
  // (host): ..."); or a lost node (69), a cancel (143). `reports`
  // gets the nodes' reports as they arrived, by node rank: every node's on the
  // head, this node's own elsewhere.
  virtual std::optional<StopNotice> GatherPreflight(const PreflightResult& mine,
                                                    std::vector<nlohmann::json>* reports) = 0;

  // The head holds MASTER_PORT (bound, see HeldPort) from the rendezvous that
  // chose it until this call, which the run makes just before it starts the
  // ranks, one of which binds the port. Other nodes hold nothing. Any thread;
  // a second call does nothing.
  virtual void ReleaseMasterPort() {}

  // `handler` hears the job's stop once, from any thread; a stop that came
  // before is delivered at once.
  virtual void SetStopHandler(std::function<void(const StopNotice&)> handler) = 0;
  // This node's first failed rank (call from
  // SupervisorOptions::on_rank_failed).
  virtual void RankFailed(const RankFailure& failure) = 0;
  // This node stops for its own reason: canceled (143), timed out (124).
  virtual void Stopping(int exit_code, const std::string& reason) = 0;
  // The job's stop, if there was one so far.
  virtual std::optional<StopNotice> stop() = 0;

  // A job with parameter servers (RankLaunch::server, supervisor.h): every rank
  // of this node that is not a server ended with 0 (call from
  // SupervisorOptions::on_workers_done, on every node, servers or not). Once every
  // node said so and no stop came, the head tells every node to stop its servers.
  virtual void WorkersDone() = 0;
  // `handler` hears that once, from any thread (under the session's lock: keep it
  // short); if it came before, the handler hears it at once.
  virtual void SetServersStopHandler(std::function<void()> handler) = 0;

  // In-place restarts (a job with maxRestarts; README "In-place restarts"): this
  // node's ranks of attempt `attempt` have all ended. Tells the head and waits for
  // the job's verdict. The head waits for every live node's end of the attempt (a
  // node's RankFailed reaches it first), decides with `policy` from the attempt's
  // earliest failure (DecideRestart: only a rank's failure is retried) and tells
  // every node. A lost node is restarted only when its replacement may join
  // (restarts.rejoinTimeoutSeconds); no restart for a node that lost the head (then
  // the verdict has its 69). On a restart the job's stop is cleared (the stop
  // handler too) and every node, after the verdict's wait, calls
  // WaitForAttemptStart: the attempt starts on every node together, or a node that
  // fails to prepare it (or is canceled) stops the job. Does not fail.
  virtual AttemptVerdict EndAttempt(int attempt, const RestartPolicy& policy) = 0;
  // In-place restarts: WaitForStart for attempt `attempt`, after this node's first
  // (its EndAttempt's verdict said restart). Returns as WaitForStart does, or none
  // with `*ended` set when the head ended the attempt before its ranks started: a
  // node was lost between attempts (README "A replaced node rejoins"), one attempt
  // is used for it as for a node lost while the ranks run, and `*ended` is that
  // attempt's verdict (a restart, whose wait comes before the next attempt).
  virtual std::optional<StopNotice> WaitForAttemptStart(int attempt, const Status& prepared,
                                                        int exit_code,
                                                        std::optional<AttemptVerdict>* ended) = 0;

  virtual void ReportResult(const NodeResult& result) = 0;

  // Takes this node's uploads of merged folders (keys under `run_prefix`) and
  // returns what it should upload after merging with the other nodes.
  virtual std::vector<TransferItem> MergeUploads(std::vector<TransferItem> items,
                                                 const std::string& run_prefix) = 0;

  // Uploads are done. The head waits for every node (or the finalize timeout)
  // and returns the job's outcome; another node returns what the head decided,
  // or `local` when the head is gone.
  virtual JobOutcome Finish(const NodeDone& done, const JobOutcome& local) = 0;

  // The head stops waiting for the other nodes (their results, output lists and
  // uploads) at `deadline` at the latest, as at the finalize timeout: a scheduler's
  // SIGKILL is coming. Call before MergeUploads(). Other nodes: nothing.
  virtual void LimitFinalize(TimePoint deadline) { (void)deadline; }

  // MPI: the handler that runs rsh sessions on this node (not owned; may be
  // null), and the sink it reports to. On a node other than the head, a session
  // the head starts after its Start of an attempt, before this node set the
  // handler, goes to the handler once set; one after the handler was cleared
  // (the node's launch of the attempt ended) is refused until the next Start.
  virtual void SetRshHandler(RshHandler* handler) = 0;
  virtual RshSink* rsh_sink() = 0;
  // The head: the job's nodes as they are now, a node that took a lost one's place
  // at its own host and address (the next attempt's mpirun runs over these). Other
  // nodes: none.
  virtual std::optional<JobAssignment> CurrentAssignment() { return std::nullopt; }
};

// What the head and every other node share (head_session.h, worker_session.h):
// the lock over a session's state, the condition its waits sleep on, the job's
// stop, and the wait that watches for a cancel and a deadline.
class SessionBase : public ClusterSession {
 public:
  void SetStopHandler(std::function<void(const StopNotice&)> handler) final;
  std::optional<StopNotice> stop() final;
  void SetServersStopHandler(std::function<void()> handler) final;

 protected:
  explicit SessionBase(SessionOptions options);

  // True when options_.cancel_requested says so.
  bool Canceled();
  // Waits on cv_ until `done` (checked under `lock`, which holds mu_). A cancel
  // seen while no stop is latched calls CanceledLocked(), which latches one, and
  // the wait goes on. False when `deadline` (options_.clock) passed first. Wakes
  // when cv_ is notified and at least every 100 ms of real time, to poll for a
  // cancel and read the clock: a fake clock moved past the deadline is seen then.
  bool WaitLocked(std::unique_lock<std::mutex>& lock, const std::function<bool()>& done,
                  std::optional<TimePoint> deadline = std::nullopt);
  // This node was canceled (trainrun received a signal): latch the stop and tell
  // the others. Called with mu_ held.
  virtual void CanceledLocked() = 0;

  SessionOptions options_;
  std::mutex mu_;               // guards stop_ and the session's own state
  std::condition_variable cv_;  // notified whenever that state changes
  StopLatch stop_;

  // The head's word that every worker is done: latched, then the handler hears it.
  void ServersStopLocked();
  bool servers_stop_ = false;
  std::function<void()> servers_stop_handler_;
};

// Unix milliseconds, for comparing when things happened on different nodes.
int64_t WallMillis();

}  // namespace trainrun
