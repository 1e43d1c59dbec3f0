// The control plane end to end on loopback, in one process: a head session and
// node sessions over real sockets, with real authentication, rendezvous, stops,
// lost nodes, heartbeats and merged uploads. The same scenarios run with real
// trainrun processes in network namespaces in tests/multinode/.
//
// Time is a fake clock that stands still unless a test advances it: no heartbeat
// goes missing on a loaded machine, and a timeout is reached by advancing the
// clock, which the control plane's loops see within a tick (kControlTick).
// Events are ordered by futures and by waiting for what the sessions report,
// never by sleeping.
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <future>
#include <mutex>
#include <thread>

#include <gtest/gtest.h>

#include "base/net_util.h"
#include "runtime/cluster/control_client.h"
#include "runtime/cluster/control_messages.h"
#include "runtime/cluster/control_protocol.h"
#include "runtime/cluster/control_server.h"
#include "runtime/cluster/head_session.h"
#include "runtime/cluster/worker_session.h"
#include "tests/fakes/fake_clock.h"
#include "tests/test_util.h"

namespace trainrun {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

class Recorder : public QuietReporter {
 public:
  void Warning(std::string_view m) override { Add(m); }
  void Error(std::string_view m) override { Add(m); }
  void Info(std::string_view m) override { Add(m); }
  void Notice(std::string_view m) override { Add(m); }
  bool Saw(const std::string& text) {
    std::lock_guard lock(mu_);
    return CountLocked(text) > 0;
  }
  // Waits until `count` lines contain `text`; false when `limit` passed first.
  bool WaitFor(const std::string& text, size_t count = 1,
               Duration limit = std::chrono::seconds(30)) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, limit, [&] { return CountLocked(text) >= count; });
  }
  std::string All() {
    std::lock_guard lock(mu_);
    std::string all;
    for (const std::string& l : lines_) all += l + "\n";
    return all;
  }

 private:
  void Add(std::string_view m) {
    std::lock_guard lock(mu_);
    lines_.emplace_back(m);
    cv_.notify_all();
  }
  size_t CountLocked(const std::string& text) {
    size_t n = 0;
    for (const std::string& line : lines_) n += line.find(text) != std::string::npos ? 1 : 0;
    return n;
  }
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::string> lines_;
};

// Collects the stop a session hands its handler.
struct StopCatcher {
  std::promise<StopNotice> promise;
  std::future<StopNotice> future = promise.get_future();
  std::function<void(const StopNotice&)> Handler() {
    return [this](const StopNotice& n) { promise.set_value(n); };
  }
  std::optional<StopNotice> Wait(Duration limit = seconds(30)) {
    if (future.wait_for(limit) != std::future_status::ready) return std::nullopt;
    return future.get();
  }
};

NodeResult ResultOf(int node_rank, int exit_code = 0) {
  NodeResult r;
  r.node_rank = node_rank;
  r.exit_code = exit_code;
  return r;
}

class ControlPlaneTest : public ::testing::Test {
 protected:
  SessionOptions Options() {
    SessionOptions o;
    o.rendezvous_timeout = seconds(30);
    o.finalize_timeout = seconds(30);
    o.heartbeat = {milliseconds(100), seconds(2)};
    o.reporter = &reporter_;
    o.clock = &clock_;
    o.rejoin_timeout = rejoin_timeout_;
    return o;
  }
  NodeJoin Join(int rank, int count) {
    NodeJoin n;
    n.node_rank = rank;
    n.node_count = count;
    n.host = "host" + std::to_string(rank);
    n.process_count = 2;
    n.job_digest = "digest";
    n.trainrun_version = "test";
    return n;
  }
  // An rsh agent (what `trainrun rsh` runs for mpirun) connected to `head`.
  Result<std::unique_ptr<ControlClient>> ConnectRshAgent(const HeadSession& head) {
    ControlClientOptions o;
    o.host = "127.0.0.1";
    o.port = head.port();
    o.role = kRoleRsh;
    o.node_rank = -1;
    o.key = RoleKey({"the-job-token-0123456789", false}, kRoleRsh);
    o.clock = &clock_;
    return ControlClient::Connect(o);
  }
  std::unique_ptr<HeadSession> StartHead(const std::string& token = "the-job-token-0123456789") {
    Result<std::unique_ptr<HeadSession>> head = HeadSession::Start(Options(), {token, false}, 0);
    EXPECT_TRUE(head.ok()) << head.status().message();
    head->get()->set_run_id("run-1");
    return std::move(head).value();
  }
  std::unique_ptr<WorkerSession> Worker(int rank, int port,
                                        const std::string& token = "the-job-token-0123456789") {
    return std::make_unique<WorkerSession>(Options(), JobToken{token, false}, "127.0.0.1", port,
                                           rank);
  }
  // Rendezvous of a head and `count - 1` workers, each in its own thread.
  void Assemble(HeadSession* head, std::vector<std::unique_ptr<WorkerSession>>* workers,
                int count) {
    std::vector<std::future<Result<JobAssignment>>> joined;
    for (int r = 1; r < count; ++r) {
      workers->push_back(Worker(r, head->port()));
      WorkerSession* w = workers->back().get();
      joined.push_back(std::async(std::launch::async,
                                  [this, w, r, count] { return w->Rendezvous(Join(r, count)); }));
    }
    Result<JobAssignment> assignment = head->Rendezvous(Join(0, count));
    ASSERT_TRUE(assignment.ok()) << assignment.status().message();
    EXPECT_EQ(assignment->run_id, "run-1");
    EXPECT_EQ(assignment->world_size, 2 * count);
    for (auto& j : joined) {
      Result<JobAssignment> a = j.get();
      ASSERT_TRUE(a.ok()) << a.status().message();
      EXPECT_EQ(a->master_addr, "127.0.0.1");
      EXPECT_EQ(a->master_port, assignment->master_port);
    }
  }

  // Every node reports ready; returns once all of them started.
  void StartAll(HeadSession* head, const std::vector<std::unique_ptr<WorkerSession>>& workers) {
    std::vector<std::future<std::optional<StopNotice>>> started;
    for (const auto& w : workers) {
      started.push_back(
          std::async(std::launch::async, [&w] { return w->WaitForStart(Status::Ok(), 0); }));
    }
    EXPECT_FALSE(head->WaitForStart(Status::Ok(), 0).has_value());
    for (auto& s : started) EXPECT_FALSE(s.get().has_value());
  }

  // Moves the clock by `d` in steps of a tick, a tick of real time apart, as
  // time passes for loops that keep turning. One jump is what a stall of the
  // whole process (SIGSTOP) looks like to them, and they give every peer a
  // fresh interval for it (heartbeat.h).
  void AdvanceSteadily(Duration d) {
    for (Duration done{}; done < d; done += kControlTick) {
      clock_.Advance(kControlTick);
      std::this_thread::sleep_for(kControlTick);
    }
  }

  // A node that joins like any other and reports ready, then never says
  // another word.
  std::unique_ptr<ControlClient> SilentNode(HeadSession* head) {
    auto silent = std::async(std::launch::async, [&] {
      ControlClientOptions o;
      o.host = "127.0.0.1";
      o.port = head->port();
      o.role = kRoleNode;
      o.node_rank = 1;
      o.key = "the-job-token-0123456789";
      o.deadline = clock_.Now() + seconds(10);
      o.clock = &clock_;
      Result<std::unique_ptr<ControlClient>> client = ControlClient::Connect(o);
      EXPECT_TRUE(client.ok()) << client.status().message();
      NodeJoin j = Join(1, 2);
      (*client)->SendJson(MessageType::kJoin, j.ToJson()).IgnoreError();
      (*client)->SendJson(MessageType::kReady, nlohmann::json::object()).IgnoreError();
      return std::move(client).value();
    });
    EXPECT_TRUE(head->Rendezvous(Join(0, 2)).ok());
    return silent.get();
  }

  testing::FakeClock clock_;  // outlives the sessions (declared first)
  Recorder reporter_;
  std::optional<Duration> rejoin_timeout_;  // Options()' (a job with restarts sets it)
};

TEST_F(ControlPlaneTest, NodesJoinStartTogetherAndFinishWithOneExitCode) {
  std::unique_ptr<HeadSession> head = StartHead();
  std::vector<std::unique_ptr<WorkerSession>> workers;
  Assemble(head.get(), &workers, 3);
  // Nobody starts until everybody is ready.
  auto w1 =
      std::async(std::launch::async, [&] { return workers[0]->WaitForStart(Status::Ok(), 0); });
  auto w2 =
      std::async(std::launch::async, [&] { return workers[1]->WaitForStart(Status::Ok(), 0); });
  // Not an ordering of events: a start sent too early would arrive in this time.
  EXPECT_EQ(w1.wait_for(milliseconds(200)), std::future_status::timeout);
  EXPECT_FALSE(head->WaitForStart(Status::Ok(), 0).has_value());
  EXPECT_FALSE(w1.get().has_value());
  EXPECT_FALSE(w2.get().has_value());

  std::vector<std::future<JobOutcome>> finished;
  for (int r = 1; r <= 2; ++r) {
    WorkerSession* w = workers[r - 1].get();
    finished.push_back(std::async(std::launch::async, [w, r] {
      NodeResult result;
      result.node_rank = r;
      result.outcome = "succeeded";
      result.ranks = {RankRecord{.rank = 2 * r,
                                 .node_rank = r,
                                 .local_rank = 0,
                                 .pid = 100,
                                 .exit_code = 0,
                                 .signal = 0,
                                 .seconds = 1.0,
                                 .stopped_by_trainrun = false},
                      RankRecord{.rank = 2 * r + 1,
                                 .node_rank = r,
                                 .local_rank = 1,
                                 .pid = 101,
                                 .exit_code = 0,
                                 .signal = 0,
                                 .seconds = 1.0,
                                 .stopped_by_trainrun = false}};
      w->ReportResult(result);
      w->MergeUploads({}, "e/run-1/");
      return w->Finish(NodeDone{1, 10, {}}, JobOutcome{});
    }));
  }
  NodeResult mine;
  mine.outcome = "succeeded";
  mine.ranks = {RankRecord{.rank = 0,
                           .node_rank = 0,
                           .local_rank = 0,
                           .pid = 1,
                           .exit_code = 0,
                           .signal = 0,
                           .seconds = 1.0,
                           .stopped_by_trainrun = false},
                RankRecord{.rank = 1,
                           .node_rank = 0,
                           .local_rank = 1,
                           .pid = 2,
                           .exit_code = 0,
                           .signal = 0,
                           .seconds = 1.0,
                           .stopped_by_trainrun = false}};
  head->ReportResult(mine);
  head->MergeUploads({}, "e/run-1/");
  JobOutcome outcome = head->Finish(NodeDone{}, JobOutcome{});
  EXPECT_EQ(outcome.exit_code, 0);
  EXPECT_EQ(outcome.status, RunStatus::kCompleted);
  ASSERT_EQ(outcome.ranks.size(), 6u);
  for (int r = 0; r < 6; ++r) EXPECT_EQ(outcome.ranks[r].rank, r);
  for (auto& f : finished) EXPECT_EQ(f.get().exit_code, 0);
}

TEST_F(ControlPlaneTest, NodesThatJoinBeforeTheHeadIsReadyWaitForIt) {
  // The head listens from the start but joins its own rendezvous only once it
  // read the job file; nodes that are quicker wait instead of being turned
  // away.
  std::unique_ptr<HeadSession> head = StartHead();
  std::vector<std::unique_ptr<WorkerSession>> workers;
  std::vector<std::future<Result<JobAssignment>>> joined;
  for (int r = 1; r < 4; ++r) {
    workers.push_back(Worker(r, head->port()));
    WorkerSession* w = workers.back().get();
    joined.push_back(
        std::async(std::launch::async, [this, w, r] { return w->Rendezvous(Join(r, 4)); }));
  }
  // Every one of them connected and joined first.
  ASSERT_TRUE(reporter_.WaitFor("joined before the head began its rendezvous; it waits", 3))
      << reporter_.All();
  ASSERT_TRUE(head->Rendezvous(Join(0, 4)).ok());
  for (auto& j : joined) {
    Result<JobAssignment> a = j.get();
    EXPECT_TRUE(a.ok()) << a.status().message();
  }
}

TEST_F(ControlPlaneTest, ARendezvousThatNodesMissTimesOutNamingThem) {
  std::unique_ptr<HeadSession> head = StartHead();
  auto rendezvous = std::async(std::launch::async, [&] { return head->Rendezvous(Join(0, 3)); });
  std::unique_ptr<WorkerSession> worker = Worker(2, head->port());
  auto joined = std::async(std::launch::async, [&] { return worker->Rendezvous(Join(2, 3)); });
  // The head took the time its timeout counts from, and node 2 is in.
  ASSERT_TRUE(reporter_.WaitFor("head of a 3-node job: waiting for 2 node(s)")) << reporter_.All();
  ASSERT_TRUE(reporter_.WaitFor("node 2 (host2, 127.0.0.1) joined (2 of 3)")) << reporter_.All();
  clock_.Advance(seconds(29));
  EXPECT_EQ(rendezvous.wait_for(milliseconds(300)), std::future_status::timeout);
  clock_.Advance(seconds(1));
  Result<JobAssignment> a = rendezvous.get();
  ASSERT_FALSE(a.ok());
  EXPECT_NE(a.status().message().find("rendezvous timed out after 30 s: 2 of 3 "
                                      "node(s) joined; node(s) 1 never did"),
            std::string::npos)
      << a.status().message();
  Result<JobAssignment> b = joined.get();  // the head refuses it with the reason
  ASSERT_FALSE(b.ok());
  EXPECT_NE(b.status().message().find("node(s) 1 never did"), std::string::npos)
      << b.status().message();
}

TEST_F(ControlPlaneTest, TheFirstFailureAnywhereStopsEveryNodeAndIsTheRootCause) {
  std::unique_ptr<HeadSession> head = StartHead();
  std::vector<std::unique_ptr<WorkerSession>> workers;
  Assemble(head.get(), &workers, 3);
  StartAll(head.get(), workers);
  StopCatcher head_stop, w1_stop, w2_stop;
  head->SetStopHandler(head_stop.Handler());
  workers[0]->SetStopHandler(w1_stop.Handler());
  workers[1]->SetStopHandler(w2_stop.Handler());

  RankFailure failure;
  failure.rank = 5;
  failure.status.code = 7;
  failure.reason = "exited with exit code 7";
  workers[1]->RankFailed(failure);
  for (StopCatcher* c : {&head_stop, &w1_stop, &w2_stop}) {
    std::optional<StopNotice> stop = c->Wait();
    ASSERT_TRUE(stop.has_value());
    EXPECT_EQ(stop->exit_code, 7);
    EXPECT_NE(stop->reason.find("rank 5 on node 2 (host2, 127.0.0.1) exited with exit code 7"),
              std::string::npos)
        << stop->reason;
  }
  // A rank that died later because of it does not take the blame.
  RankFailure collateral;
  collateral.rank = 0;
  collateral.status.code = 1;
  collateral.reason = "exited with exit code 1";
  head->RankFailed(collateral);

  std::vector<std::future<JobOutcome>> finished;
  for (int r = 1; r <= 2; ++r) {
    WorkerSession* w = workers[r - 1].get();
    finished.push_back(std::async(std::launch::async, [w, r] {
      NodeResult result;
      result.node_rank = r;
      result.exit_code = r == 2 ? 7 : 143;
      if (r == 2) {
        FailureRecord f;
        f.rank = 5;
        f.node_rank = 2;
        f.host = "host2";
        f.exit_code = 7;
        f.reason = "rank 5 exited with exit code 7";
        f.stderr_tail = {"ValueError: boom"};
        result.failure = f;
        result.failure_time_ms = WallMillis() - 1000;
      }
      w->ReportResult(result);
      w->MergeUploads({}, "e/run-1/");
      return w->Finish(NodeDone{}, JobOutcome{});
    }));
  }
  head->ReportResult(NodeResult{});
  head->MergeUploads({}, "e/run-1/");
  JobOutcome outcome = head->Finish(NodeDone{}, JobOutcome{});
  EXPECT_EQ(outcome.exit_code, 7);
  EXPECT_EQ(outcome.status, RunStatus::kFailed);
  ASSERT_TRUE(outcome.failure.has_value());
  EXPECT_EQ(outcome.failure->rank, 5);
  EXPECT_EQ(outcome.failure->node_rank, 2);
  EXPECT_EQ(outcome.failure->stderr_tail, std::vector<std::string>{"ValueError: boom"});
  for (auto& f : finished) {
    JobOutcome o = f.get();
    EXPECT_EQ(o.exit_code, 7);
    ASSERT_TRUE(o.failure.has_value());
    EXPECT_EQ(o.failure->rank, 5);
  }
}

// Parameter servers: the head tells every node to stop its servers once every
// node said its workers are done, and not before; a node that set its handler
// late still hears it.
TEST_F(ControlPlaneTest, ServersStopOnEveryNodeOnceEveryNodesWorkersAreDone) {
  std::unique_ptr<HeadSession> head = StartHead();
  std::vector<std::unique_ptr<WorkerSession>> workers;
  Assemble(head.get(), &workers, 3);
  StartAll(head.get(), workers);
  std::vector<std::promise<void>> heard(3);
  std::atomic<int> calls{0};
  auto handler = [&](int node) {
    return [&, node] {
      ++calls;
      heard[node].set_value();
    };
  };
  head->SetServersStopHandler(handler(0));
  workers[0]->SetServersStopHandler(handler(1));
  workers[1]->WorkersDone();
  head->WorkersDone();
  // Node 1 has not said so: nobody hears of the servers yet.
  EXPECT_EQ(calls, 0);
  workers[0]->WorkersDone();
  for (int node : {0, 1}) {
    EXPECT_EQ(heard[node].get_future().wait_for(std::chrono::seconds(10)),
              std::future_status::ready)
        << "node " << node;
  }
  workers[1]->SetServersStopHandler(handler(2));
  EXPECT_EQ(heard[2].get_future().wait_for(std::chrono::seconds(10)), std::future_status::ready);
  EXPECT_EQ(calls, 3);
  EXPECT_FALSE(head->stop().has_value()) << "the servers' stop is no job stop";
}

TEST_F(ControlPlaneTest, ALostNodeStopsTheOthersWith69NamingIt) {
  std::unique_ptr<HeadSession> head = StartHead();
  std::vector<std::unique_ptr<WorkerSession>> workers;
  Assemble(head.get(), &workers, 3);
  StartAll(head.get(), workers);
  StopCatcher head_stop, w1_stop;
  head->SetStopHandler(head_stop.Handler());
  workers[0]->SetStopHandler(w1_stop.Handler());
  workers[1].reset();  // node 2's trainrun is gone: its connection closes
  for (StopCatcher* c : {&head_stop, &w1_stop}) {
    std::optional<StopNotice> stop = c->Wait();
    ASSERT_TRUE(stop.has_value());
    EXPECT_EQ(stop->exit_code, 69);
    EXPECT_NE(stop->reason.find("node 2 (host2"), std::string::npos) << stop->reason;
    EXPECT_NE(stop->reason.find("was lost"), std::string::npos) << stop->reason;
  }
  auto w = std::async(std::launch::async, [&] {
    workers[0]->ReportResult(ResultOf(1, 69));
    workers[0]->MergeUploads({}, "e/run-1/");
    return workers[0]->Finish(NodeDone{}, JobOutcome{});
  });
  head->ReportResult(NodeResult{});
  head->MergeUploads({}, "e/run-1/");
  JobOutcome outcome = head->Finish(NodeDone{}, JobOutcome{});
  EXPECT_EQ(outcome.exit_code, 69);
  EXPECT_EQ(outcome.outcome, "node lost");
  ASSERT_TRUE(outcome.failure.has_value());
  EXPECT_EQ(outcome.failure->node_rank, 2);
  EXPECT_EQ(outcome.failure->host, "host2");
  EXPECT_EQ(w.get().exit_code, 69);
}

// A replacement for node 1 that joins while the head still stops the attempt that
// lost it (no verdict yet) is held, not refused; `rank_code`: the code of a rank of
// node 0 that failed first (0: none). Returns the replacement's rendezvous, once
// the head's verdict on attempt 1 came.
class HeldRejoinTest : public ControlPlaneTest {
 protected:
  Result<JobAssignment> ReplaceNode1(int rank_code, AttemptVerdict* verdict) {
    rejoin_timeout_ = seconds(60);
    std::unique_ptr<HeadSession> head = StartHead();
    std::vector<std::unique_ptr<WorkerSession>> workers;
    Assemble(head.get(), &workers, 2);
    StartAll(head.get(), workers);
    if (rank_code != 0) {
      RankFailure failure;
      failure.rank = 0;
      failure.status.code = rank_code;
      failure.reason = "exited with exit code " + std::to_string(rank_code);
      head->RankFailed(failure);
    }
    workers[0].reset();  // node 1's trainrun is gone: its connection closes
    EXPECT_TRUE(reporter_.WaitFor("was lost")) << reporter_.All();
    std::unique_ptr<WorkerSession> replacement = Worker(1, head->port());
    auto joined =
        std::async(std::launch::async, [&] { return replacement->Rendezvous(Join(1, 2)); });
    EXPECT_TRUE(
        reporter_.WaitFor("came to take the lost node's place; it waits for the end of "
                          "attempt 1"))
        << reporter_.All();
    EXPECT_FALSE(reporter_.Saw("tried to join after the rendezvous")) << reporter_.All();
    RestartPolicy policy;
    policy.max_restarts = 1;
    policy.backoff_seconds = 0;
    *verdict = head->EndAttempt(1, policy);
    return joined.get();
  }
};

TEST_F(HeldRejoinTest, AJoinBeforeTheVerdictJoinsTheNextAttemptOnceItIsARestart) {
  AttemptVerdict verdict;
  Result<JobAssignment> assignment = ReplaceNode1(0, &verdict);
  EXPECT_TRUE(verdict.restart) << verdict.why;
  ASSERT_TRUE(assignment.ok()) << assignment.status().message();
  EXPECT_EQ(assignment->attempt, 2);
  EXPECT_TRUE(reporter_.Saw("joined in place of the lost node 1, for attempt 2"))
      << reporter_.All();
}

TEST_F(HeldRejoinTest, AJoinBeforeTheVerdictIsRefusedWithTheReasonWhenTheJobEnds) {
  AttemptVerdict verdict;
  // Rank 0 failed first with 65 (a bad job): no restart, whatever the lost node.
  Result<JobAssignment> assignment = ReplaceNode1(65, &verdict);
  EXPECT_FALSE(verdict.restart);
  ASSERT_FALSE(assignment.ok());
  EXPECT_NE(assignment.status().message().find(
                "cannot replace the lost node: the job ends with attempt 1 (not restarted: exit "
                "code 65"),
            std::string::npos)
      << assignment.status().message();
}

TEST_F(ControlPlaneTest, AStopBudgetEndsTheHeadsWaitForANodeThatIsStillStopping) {
  // Under scancel the head writes the final status before Slurm's SIGKILL, even while
  // a node's ranks are still in their grace period (LimitFinalize).
  std::unique_ptr<HeadSession> head = StartHead();
  std::vector<std::unique_ptr<WorkerSession>> workers;
  Assemble(head.get(), &workers, 2);
  StartAll(head.get(), workers);
  // Before the heartbeat timeout (2 s): node 1 is alive throughout, never lost.
  head->LimitFinalize(clock_.Now() + seconds(1));
  auto finished = std::async(std::launch::async, [&] {
    head->ReportResult(ResultOf(0, 143));
    head->MergeUploads({}, "e/run-1/");
    return head->Finish(NodeDone{}, JobOutcome{});
  });
  // Node 1 keeps sending heartbeats and never reports its ranks' end.
  AdvanceSteadily(milliseconds(1500));
  ASSERT_EQ(finished.wait_for(seconds(30)), std::future_status::ready) << reporter_.All();
  finished.get();
  EXPECT_TRUE(reporter_.Saw("had not ended when the stop budget ran short")) << reporter_.All();
  EXPECT_TRUE(reporter_.Saw("the stop budget ran short before every node finished uploading"))
      << reporter_.All();
  EXPECT_FALSE(reporter_.Saw("was lost")) << reporter_.All();
}

TEST_F(ControlPlaneTest, ANodeThatFallsSilentIsLostAfterTheHeartbeatTimeout) {
  std::unique_ptr<HeadSession> head = StartHead();
  std::unique_ptr<ControlClient> client = SilentNode(head.get());
  StopCatcher stop;
  head->SetStopHandler(stop.Handler());
  // Started: the node's Ready was its last word, heard before this returns.
  EXPECT_FALSE(head->WaitForStart(Status::Ok(), 0).has_value());
  EXPECT_FALSE(head->stop().has_value());
  AdvanceSteadily(seconds(2) + kControlTick);
  // The server's next tick (within kControlTick of real time) finds the node
  // silent for longer than the timeout; the rest is slack for a loaded machine.
  std::optional<StopNotice> notice = stop.Wait(seconds(5));
  ASSERT_TRUE(notice.has_value());
  EXPECT_EQ(notice->exit_code, 69);
  EXPECT_NE(notice->reason.find("sent nothing for 2 s (heartbeat timeout)"), std::string::npos)
      << notice->reason;
}

TEST_F(ControlPlaneTest, AStalledHeadBlamesNoNodeButStillLosesOneThatIsGone) {
  std::unique_ptr<HeadSession> head = StartHead();
  std::unique_ptr<ControlClient> client = SilentNode(head.get());
  StopCatcher stop;
  head->SetStopHandler(stop.Handler());
  EXPECT_FALSE(head->WaitForStart(Status::Ok(), 0).has_value());
  // The head's loop is away for five timeouts (SIGSTOP): it says so and gives
  // the node a fresh interval instead of counting the stall as its silence.
  clock_.Advance(seconds(10));
  ASSERT_TRUE(reporter_.WaitFor("the head stalled for 10.0 s itself")) << reporter_.All();
  AdvanceSteadily(seconds(1));
  EXPECT_FALSE(head->stop().has_value()) << head->stop()->reason;
  // The node really says nothing: lost one timeout after the stall.
  AdvanceSteadily(seconds(1) + kControlTick);
  std::optional<StopNotice> notice = stop.Wait(seconds(5));
  ASSERT_TRUE(notice.has_value());
  EXPECT_EQ(notice->exit_code, 69);
  EXPECT_NE(notice->reason.find("sent nothing for 2 s (heartbeat timeout)"), std::string::npos)
      << notice->reason;
}

TEST_F(ControlPlaneTest, AStalledNodeDoesNotBlameTheHead) {
  std::unique_ptr<HeadSession> head = StartHead();
  std::vector<std::unique_ptr<WorkerSession>> workers;
  Assemble(head.get(), &workers, 2);
  StartAll(head.get(), workers);
  // Both loops of this process see one jump: both were stalled, both say so,
  // and neither blames the other.
  clock_.Advance(seconds(10));
  ASSERT_TRUE(reporter_.WaitFor("node 1 stalled for 10.0 s itself")) << reporter_.All();
  ASSERT_TRUE(reporter_.WaitFor("the head stalled for 10.0 s itself")) << reporter_.All();
  // Well past a timeout after the stall, the heartbeats keep both alive.
  AdvanceSteadily(seconds(3));
  EXPECT_FALSE(workers[0]->stop().has_value()) << workers[0]->stop()->reason;
  EXPECT_FALSE(head->stop().has_value()) << head->stop()->reason;
}

TEST_F(ControlPlaneTest, TheMasterPortIsHeldFromItsChoiceUntilTheRanksStart) {
  std::unique_ptr<HeadSession> head = StartHead();
  std::vector<std::unique_ptr<WorkerSession>> workers;
  workers.push_back(Worker(1, head->port()));
  auto node = std::async(std::launch::async, [&] { return workers[0]->Rendezvous(Join(1, 2)); });
  Result<JobAssignment> assignment = head->Rendezvous(Join(0, 2));
  ASSERT_TRUE(assignment.ok()) << assignment.status().message();
  ASSERT_TRUE(node.get().ok());
  const int port = assignment->master_port;
  // Another process binding MASTER_PORT while the nodes prepare: refused,
  // with SO_REUSEADDR (as PyTorch's TCPStore sets it) or without.
  auto try_bind = [port](bool reuse) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    if (reuse) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    int rc = bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
    if (rc == 0) rc = listen(fd, 1);
    const int err = rc == 0 ? 0 : errno;
    close(fd);
    return err;
  };
  EXPECT_EQ(try_bind(false), EADDRINUSE);
  EXPECT_EQ(try_bind(true), EADDRINUSE);
  StartAll(head.get(), workers);
  EXPECT_EQ(try_bind(true), EADDRINUSE);  // started, but the ranks are not yet
  head->ReleaseMasterPort();
  EXPECT_EQ(try_bind(true), 0);  // rank 0's turn
  EXPECT_EQ(try_bind(false), 0);
}

TEST_F(ControlPlaneTest, LosingTheHeadStopsANodeWith69) {
  std::unique_ptr<HeadSession> head = StartHead();
  std::vector<std::unique_ptr<WorkerSession>> workers;
  Assemble(head.get(), &workers, 2);
  StopCatcher stop;
  workers[0]->SetStopHandler(stop.Handler());
  head.reset();
  std::optional<StopNotice> notice = stop.Wait();
  ASSERT_TRUE(notice.has_value());
  EXPECT_EQ(notice->exit_code, 69);
  EXPECT_NE(notice->reason.find("lost the head (node 0: host0"), std::string::npos)
      << notice->reason;
}

// An on-path attacker without the token between a worker and the head: relays
// every connection's frames (cut as control_protocol.h lays them out) and, right
// after the head's first Start, sends the worker `injected`.
class Relay {
 public:
  Relay(int head_port, std::string injected)
      : head_port_(head_port), injected_(std::move(injected)) {
    listen_fd_ = ListenTcp("127.0.0.1", 0).value();
    Blocking(listen_fd_);
    port_ = SocketPort(listen_fd_);
    accepter_ = std::thread([this] { Run(); });
  }
  ~Relay() {
    shutdown(listen_fd_, SHUT_RDWR);
    accepter_.join();
    {
      std::lock_guard lock(mu_);
      for (int fd : fds_) shutdown(fd, SHUT_RDWR);
    }
    for (std::thread& t : pumps_) t.join();
    for (int fd : fds_) close(fd);
    close(listen_fd_);
  }
  int port() const { return port_; }
  bool injected() const { return done_; }

 private:
  // The relay's threads block on their sockets.
  static void Blocking(int fd) { fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK); }
  static bool ReadExact(int fd, char* out, size_t n) {
    for (size_t got = 0; got < n;) {
      ssize_t r = recv(fd, out + got, n - got, 0);
      if (r <= 0) return false;
      got += static_cast<size_t>(r);
    }
    return true;
  }
  void Run() {
    while (true) {
      int node = accept(listen_fd_, nullptr, nullptr);
      if (node < 0) return;
      Result<int> head = ConnectTcp("127.0.0.1", head_port_, seconds(10));
      std::lock_guard lock(mu_);
      fds_.push_back(node);
      if (!head.ok()) {
        shutdown(node, SHUT_RDWR);
        continue;
      }
      fds_.push_back(*head);
      Blocking(*head);
      pumps_.emplace_back([this, node, h = *head] { Pump(node, h, false); });
      pumps_.emplace_back([this, node, h = *head] { Pump(h, node, true); });
    }
  }
  void Pump(int from, int to, bool to_node) {
    for (int count = 0;; ++count) {
      std::string frame(kFrameHeaderSize, '\0');
      if (!ReadExact(from, frame.data(), kFrameHeaderSize)) break;
      uint32_t length = 0;
      for (int i = 8; i < 12; ++i) length = (length << 8) | static_cast<unsigned char>(frame[i]);
      // Hello and Auth one way, Challenge and Welcome the other, have no tag.
      const size_t rest = length + (count >= 2 ? kFrameTagSize : 0);
      frame.resize(kFrameHeaderSize + rest);
      if (!ReadExact(from, frame.data() + kFrameHeaderSize, rest)) break;
      if (!SendAll(to, frame, seconds(10)).ok()) break;
      if (to_node && static_cast<MessageType>(frame[5]) == MessageType::kStart &&
          !done_.exchange(true)) {
        (void)SendAll(to, injected_, seconds(10));  // a refused injection ends the pump anyway
      }
    }
    shutdown(from, SHUT_RDWR);
    shutdown(to, SHUT_RDWR);
  }

  int head_port_;
  std::string injected_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> done_{false};
  std::thread accepter_;
  std::mutex mu_;  // guards fds_ and pumps_ while the accepter runs
  std::vector<int> fds_;
  std::vector<std::thread> pumps_;
};

// What a node would start for MPI's launch agent.
struct RecordingRsh : RshHandler {
  void Exec(uint32_t session, std::vector<std::string>) override { execs.push_back(session); }
  void Stdin(uint32_t, std::string) override {}
  void Kill(uint32_t) override {}
  std::vector<uint32_t> execs;
};

TEST_F(ControlPlaneTest, AnRshExecInjectedOnThePathIsNeverRunAndStopsTheNodeNamingIt) {
  std::unique_ptr<HeadSession> head = StartHead();
  // Exactly the frame the head sends to start an rsh session, with a tag made up
  // without the token (an all-zero one; any other fails the same way).
  const std::string exec =
      EncodeJsonFrame(MessageType::kRshExec, {{"session", 7}, {"argv", {"touch", "/tmp/pwned"}}}) +
      std::string(kFrameTagSize, '\0');
  Relay relay(head->port(), exec);
  RecordingRsh rsh;  // outlives the worker
  std::vector<std::unique_ptr<WorkerSession>> workers;
  workers.push_back(Worker(1, relay.port()));
  WorkerSession* worker = workers[0].get();
  worker->SetRshHandler(&rsh);  // an MPI launch: the node takes RshExec from the head
  StopCatcher stop;
  worker->SetStopHandler(stop.Handler());
  auto joined = std::async(std::launch::async, [&] { return worker->Rendezvous(Join(1, 2)); });
  ASSERT_TRUE(head->Rendezvous(Join(0, 2)).ok());
  ASSERT_TRUE(joined.get().ok());  // the relay passes good frames through
  auto started =
      std::async(std::launch::async, [&] { return worker->WaitForStart(Status::Ok(), 0); });
  EXPECT_FALSE(head->WaitForStart(Status::Ok(), 0).has_value());
  started.get();
  std::optional<StopNotice> notice = stop.Wait();
  ASSERT_TRUE(notice.has_value());
  EXPECT_TRUE(relay.injected());
  EXPECT_TRUE(rsh.execs.empty());
  EXPECT_EQ(notice->exit_code, 69);
  EXPECT_NE(notice->reason.find("(RshExec) failed authentication"), std::string::npos)
      << notice->reason;
  EXPECT_EQ(reporter_.All().find("/tmp/pwned"), std::string::npos);
}

// MPI with in-place restarts: an rsh agent of an attempt other than the job's
// starts nothing; the current attempt's RshExec that reaches a node before its MPI
// launch is ready runs once it is (with the input sent meanwhile), and one that
// comes after the node's launch ended is refused.
struct LockedRsh : RshHandler {
  void Exec(uint32_t session, std::vector<std::string>) override {
    std::lock_guard lock(mu);
    calls.push_back("exec " + std::to_string(session));
  }
  void Stdin(uint32_t session, std::string data) override {
    std::lock_guard lock(mu);
    calls.push_back("stdin " + std::to_string(session) + " " + data);
  }
  void Kill(uint32_t) override {}
  std::vector<std::string> Calls() {
    std::lock_guard lock(mu);
    return calls;
  }
  std::mutex mu;
  std::vector<std::string> calls;
};

TEST_F(ControlPlaneTest, RshSessionsStartOnlyForTheAttemptThatRuns) {
  std::unique_ptr<HeadSession> head = StartHead();
  std::vector<std::unique_ptr<WorkerSession>> workers;
  Assemble(head.get(), &workers, 2);
  StartAll(head.get(), workers);
  // An agent that asks for `argv` on node 1 for `attempt`.
  auto open = [&](int attempt) {
    Result<std::unique_ptr<ControlClient>> agent = ConnectRshAgent(*head);
    EXPECT_TRUE(agent.ok()) << agent.status().message();
    if (!agent.ok()) return std::unique_ptr<ControlClient>();
    EXPECT_TRUE((*agent)
                    ->SendJson(MessageType::kRshOpen,
                               {{"host", "host1"}, {"argv", {"orted"}}, {"attempt", attempt}})
                    .ok());
    return std::move(agent).value();
  };
  // How the head says the agent's session ended.
  auto exited = [&](ControlClient* agent) {
    const TimePoint deadline = clock_.Now() + seconds(30);
    while (true) {
      Result<std::optional<Frame>> frame = agent->Receive(deadline);
      if (!frame.ok() || !*frame) return RshExitMessage{0, -1, "no RshExit"};
      if ((*frame)->type != MessageType::kRshExit) continue;
      Result<RshExitMessage> exit = DecodeRshExit(**frame);
      return exit.ok() ? *exit : RshExitMessage{0, -1, exit.status().message()};
    }
  };
  std::unique_ptr<ControlClient> stale = open(2);
  ASSERT_TRUE(stale);
  RshExitMessage refused = exited(stale.get());
  EXPECT_EQ(refused.exit_code, 255);
  EXPECT_EQ(refused.error, "this agent belongs to attempt 2 of the ranks; the job is at attempt 1");

  std::unique_ptr<ControlClient> early = open(1);
  ASSERT_TRUE(early);
  ASSERT_TRUE(early->Send(EncodeRshData({0, 0, "input"})).ok());
  ASSERT_TRUE(reporter_.WaitFor("rsh session 1: starting on node 1")) << reporter_.All();
  // (Wherever the RshExec is by now, it runs once and before its input.)
  std::this_thread::sleep_for(milliseconds(100));
  LockedRsh rsh;  // outlives the worker
  workers[0]->SetRshHandler(&rsh);
  for (int i = 0; i < 1000 && rsh.Calls().size() < 2; ++i)
    std::this_thread::sleep_for(milliseconds(10));
  EXPECT_EQ(rsh.Calls(), (std::vector<std::string>{"exec 1", "stdin 1 input"}));

  workers[0]->SetRshHandler(nullptr);  // this attempt's MPI launch ended on node 1
  std::unique_ptr<ControlClient> late = open(1);
  ASSERT_TRUE(late);
  RshExitMessage ended = exited(late.get());
  EXPECT_EQ(ended.exit_code, 255);
  EXPECT_EQ(ended.error, "node 1 runs no MPI launch");
  EXPECT_EQ(rsh.Calls().size(), 2u);
  EXPECT_FALSE(head->stop().has_value());
}

TEST_F(ControlPlaneTest, AWrongTokenIsRefusedAndTheJobGoesOn) {
  std::unique_ptr<HeadSession> head = StartHead();
  std::unique_ptr<WorkerSession> intruder = Worker(1, head->port(), "not-the-token");
  Result<JobAssignment> refused = intruder->Rendezvous(Join(1, 2));
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("wrong job token"), std::string::npos)
      << refused.status().message();
  EXPECT_TRUE(reporter_.Saw("refused a control connection from 127.0.0.1:")) << reporter_.All();
  std::vector<std::unique_ptr<WorkerSession>> workers;
  Assemble(head.get(), &workers, 2);
}

TEST_F(ControlPlaneTest, GarbageAndOversizedFramesBeforeAuthenticationAreRefused) {
  std::unique_ptr<HeadSession> head = StartHead();
  for (const std::string& junk :
       {std::string("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), EncodeFrame(MessageType::kJoin, "{}"),
        EncodeFrame(MessageType::kHello, std::string(8192, ' '))}) {
    Result<int> fd = ConnectTcp("127.0.0.1", head->port(), seconds(5));
    ASSERT_TRUE(fd.ok());
    ASSERT_TRUE(SendAll(*fd, junk, seconds(5)).ok());
    char buffer[256];
    ssize_t n;
    std::string answer;
    while ((n = recv(*fd, buffer, sizeof(buffer), 0)) > 0)
      answer.append(buffer, static_cast<size_t>(n));
    close(*fd);  // recv returned 0: the head closed the connection
    EXPECT_EQ(answer.find("digest"), std::string::npos);
  }
  EXPECT_TRUE(reporter_.Saw("bad magic")) << reporter_.All();
  EXPECT_TRUE(reporter_.Saw("Join message before authenticating")) << reporter_.All();
  EXPECT_TRUE(reporter_.Saw("larger than the limit of 4096 bytes")) << reporter_.All();
  std::vector<std::unique_ptr<WorkerSession>> workers;
  Assemble(head.get(), &workers, 2);
}

TEST_F(ControlPlaneTest, ANodeWithADifferentJobFileFailsTheRendezvousForEveryone) {
  std::unique_ptr<HeadSession> head = StartHead();
  std::unique_ptr<WorkerSession> other = Worker(1, head->port());
  NodeJoin j = Join(1, 2);
  j.job_digest = "another";
  auto joined = std::async(std::launch::async, [&] { return other->Rendezvous(j); });
  Result<JobAssignment> a = head->Rendezvous(Join(0, 2));
  ASSERT_FALSE(a.ok());
  EXPECT_NE(a.status().message().find("runs a different job file"), std::string::npos);
  Result<JobAssignment> b = joined.get();
  ASSERT_FALSE(b.ok());
  EXPECT_NE(b.status().message().find("runs a different job file"), std::string::npos)
      << b.status().message();
}

TEST_F(ControlPlaneTest, OutputsWrittenDifferentlyByTwoNodesAreBothKept) {
  testing::TempDir dir;
  testing::WriteFile(dir / "n0/model.pt", "weights of node 0");
  testing::WriteFile(dir / "n1/model.pt",
                     "weights of node 1");  // same size, other bytes
  testing::WriteFile(dir / "n0/config", "same");
  testing::WriteFile(dir / "n1/config", "same");
  testing::WriteFile(dir / "n1/only1", "x");
  std::unique_ptr<HeadSession> head = StartHead();
  std::vector<std::unique_ptr<WorkerSession>> workers;
  Assemble(head.get(), &workers, 2);
  auto item = [&](const std::string& node, const std::string& name) {
    return TransferItem{dir / (node + "/" + name), "e/run-1/outputs/" + name, 17};
  };
  auto w = std::async(std::launch::async, [&] {
    workers[0]->ReportResult(ResultOf(1));
    return workers[0]->MergeUploads(
        {item("n1", "model.pt"), item("n1", "config"), item("n1", "only1")}, "e/run-1/");
  });
  head->ReportResult(NodeResult{});
  std::vector<TransferItem> mine =
      head->MergeUploads({item("n0", "model.pt"), item("n0", "config")}, "e/run-1/");
  std::vector<TransferItem> theirs = w.get();
  ASSERT_EQ(mine.size(), 2u);
  EXPECT_EQ(mine[0].key, "e/run-1/outputs/model.pt");
  EXPECT_EQ(mine[1].key, "e/run-1/outputs/config");
  ASSERT_EQ(theirs.size(), 2u);  // config is node 0's too
  EXPECT_EQ(theirs[0].key, "e/run-1/outputs/model.node1.pt");
  EXPECT_EQ(theirs[1].key, "e/run-1/outputs/only1");
  auto done =
      std::async(std::launch::async, [&] { return workers[0]->Finish(NodeDone{}, JobOutcome{}); });
  JobOutcome outcome = head->Finish(NodeDone{}, JobOutcome{});
  ASSERT_EQ(outcome.conflicts.size(), 1u);
  EXPECT_EQ(outcome.conflicts[0].key, "outputs/model.pt");
  EXPECT_TRUE(reporter_.Saw("outputs/model.pt was written differently by several nodes"))
      << reporter_.All();
  done.get();
}

// A node that authenticates and joins like any other, then sends what a test
// scripts; it hears what the head answers.
std::unique_ptr<ControlClient> ConnectAsNode(int port, Clock* clock, int node_rank) {
  ControlClientOptions o;
  o.host = "127.0.0.1";
  o.port = port;
  o.role = kRoleNode;
  o.node_rank = node_rank;
  o.key = "the-job-token-0123456789";
  o.deadline = clock->Now() + seconds(10);
  o.clock = clock;
  Result<std::unique_ptr<ControlClient>> client = ControlClient::Connect(o);
  EXPECT_TRUE(client.ok()) << client.status().message();
  return client.ok() ? std::move(client).value() : nullptr;
}

// Frames until the connection closes (or 30 s pass); the Refused reason among them.
std::string RefusalBeforeClose(ControlClient* client, Clock* clock) {
  std::string reason;
  const TimePoint deadline = clock->Now() + seconds(30);
  while (true) {
    Result<std::optional<Frame>> frame = client->Receive(deadline);
    if (!frame.ok() || !*frame) return reason;
    if ((*frame)->type == MessageType::kRefused) {
      Result<std::string> r = DecodeRefused(**frame);
      reason = r.ok() ? *r : r.status().message();
    }
  }
}

TEST_F(ControlPlaneTest, AMalformedMessageFromANodeStopsTheJobNamingTheFieldNotTheHead) {
  struct Malformed {
    MessageType type;
    nlohmann::json body;
    std::string error;
  };
  const std::vector<Malformed> messages = {
      {MessageType::kRankFailed,
       {{"rank", "abc"}},
       "RankFailed: field \"rank\": expected an integer from 0 to 268435455, got a string"},
      {MessageType::kManifest,
       {{"files", nlohmann::json::array()}, {"digests", 5}},
       "Manifest: field \"digests\": expected an object"},
      {MessageType::kNodeDone, {{"files", "x"}}, "NodeDone: field \"files\": expected an integer"},
      {MessageType::kNodeResult,
       {{"ranks", {{{"rank", 1}, {"exitCode", "1"}}}}},
       "NodeResult: field \"ranks[0].exitCode\": expected an integer from 0 to 255, got a string"},
      {MessageType::kStart, nlohmann::json::object(), "Start message: not one a node sends"},
  };
  for (const Malformed& m : messages) {
    SCOPED_TRACE(MessageTypeName(m.type));
    std::unique_ptr<HeadSession> head = StartHead();
    auto joined = std::async(std::launch::async, [&] {
      std::unique_ptr<ControlClient> node = ConnectAsNode(head->port(), &clock_, 1);
      if (node) node->SendJson(MessageType::kJoin, Join(1, 2).ToJson()).IgnoreError();
      return node;
    });
    ASSERT_TRUE(head->Rendezvous(Join(0, 2)).ok());
    std::unique_ptr<ControlClient> node = joined.get();
    ASSERT_TRUE(node);
    StopCatcher stop;
    head->SetStopHandler(stop.Handler());
    ASSERT_TRUE(node->SendJson(m.type, m.body).ok());
    // The node is told why, and hung up on.
    EXPECT_NE(RefusalBeforeClose(node.get(), &clock_).find(m.error), std::string::npos);
    // The job stops with 69, naming the node, the message and the field.
    std::optional<StopNotice> notice = stop.Wait();
    ASSERT_TRUE(notice.has_value());
    EXPECT_EQ(notice->exit_code, 69);
    EXPECT_NE(notice->reason.find("node 1 (host1, 127.0.0.1) was lost: it sent a malformed "
                                  "message: " +
                                  m.error),
              std::string::npos)
        << notice->reason;
    // The head is alive and decides the job's outcome.
    head->ReportResult(NodeResult{});
    head->MergeUploads({}, "e/run-1/");
    JobOutcome outcome = head->Finish(NodeDone{}, JobOutcome{});
    EXPECT_EQ(outcome.exit_code, 69);
    EXPECT_EQ(outcome.outcome, "node lost");
  }
}

TEST_F(ControlPlaneTest, AMalformedJoinOrAgentMessageIsRefusedAndTheJobGoesOn) {
  std::unique_ptr<HeadSession> head = StartHead();
  std::unique_ptr<ControlClient> node = ConnectAsNode(head->port(), &clock_, 1);
  ASSERT_TRUE(node);
  nlohmann::json join = Join(1, 2).ToJson();
  join["processCount"] = "two";
  ASSERT_TRUE(node->SendJson(MessageType::kJoin, join).ok());
  EXPECT_NE(RefusalBeforeClose(node.get(), &clock_)
                .find("Join: field \"processCount\": expected an integer from 1 to 4096, got a "
                      "string"),
            std::string::npos);
  EXPECT_TRUE(reporter_.WaitFor("node 1 sent a malformed message: Join: field \"processCount\""))
      << reporter_.All();
  // An rsh agent whose RshOpen names no host.
  Result<std::unique_ptr<ControlClient>> agent = ConnectRshAgent(*head);
  ASSERT_TRUE(agent.ok()) << agent.status().message();
  ASSERT_TRUE((*agent)->SendJson(MessageType::kRshOpen, {{"argv", {"true"}}}).ok());
  EXPECT_NE(RefusalBeforeClose(agent->get(), &clock_)
                .find("RshOpen: field \"host\": missing (expected a string of at most 1020 bytes)"),
            std::string::npos);
  // The real nodes still join and run.
  std::vector<std::unique_ptr<WorkerSession>> workers;
  Assemble(head.get(), &workers, 2);
  StartAll(head.get(), workers);
  EXPECT_FALSE(head->stop().has_value());
}

// A head that answers a node's Join with `answer`: by default a valid assignment.
class ScriptedHead : public ControlServer::Handler {
 public:
  explicit ScriptedHead(Clock* clock, std::string answer = "") : answer_(std::move(answer)) {
    if (answer_.empty()) {
      JobAssignment a;
      a.run_id = "run-1";
      a.world_size = 4;
      a.master_addr = "127.0.0.1";
      a.master_port = 29500;
      a.nodes = {NodeSlot{0, "host0", "127.0.0.1", "lo", {}, 2, 0, 1, {}},
                 NodeSlot{1, "host1", "127.0.0.1", "lo", {}, 2, 2, 1, {}}};
      answer_ = EncodeJsonFrame(MessageType::kAssign, a.ToJson());
    }
    ControlServerOptions options;
    options.address = "127.0.0.1";
    options.clock = clock;
    Result<std::unique_ptr<ControlServer>> server = ControlServer::Start(
        options, [](const std::string&) { return std::string("the-job-token-0123456789"); }, this);
    EXPECT_TRUE(server.ok()) << server.status().message();
    if (server.ok()) server_ = std::move(server).value();
  }
  ~ScriptedHead() override {
    if (server_) server_->Shutdown(Duration::zero());
  }
  int port() const { return server_->port(); }
  // Sends `frame` to the node that joined last.
  void Send(const std::string& frame) {
    std::lock_guard lock(mu_);
    server_->Send(conn_, frame);
  }

  void OnAuthenticated(int, const std::string&, int) override {}
  void OnMessage(int conn, const Frame& frame) override {
    if (frame.type != MessageType::kJoin) return;
    std::lock_guard lock(mu_);
    conn_ = conn;
    server_->Send(conn, answer_);
  }
  void OnClosed(int, const std::string&) override {}
  void OnRefused(const std::string&, const std::string&) override {}
  void OnTick() override {}

 private:
  std::string answer_;
  std::mutex mu_;
  int conn_ = -1;
  std::unique_ptr<ControlServer> server_;  // last: stopped before the rest goes
};

TEST_F(ControlPlaneTest, AMalformedMessageFromTheHeadStopsANodeWith69NamingTheField) {
  struct Malformed {
    std::string frame;
    std::string error;
  };
  const std::vector<Malformed> messages = {
      {EncodeJsonFrame(MessageType::kStop, {{"exitCode", "x"}}),
       "Stop: field \"exitCode\": expected an integer from 0 to 255, got a string"},
      {EncodeJsonFrame(MessageType::kFinished, {{"exitCode", 0}, {"status", 7}}),
       "Finished: field \"status\": expected a string of at most 255 bytes, got 7"},
      {EncodeJsonFrame(MessageType::kUploadPlan, {{"uploads", {{"outputs/a", "../../x"}}}}),
       "UploadPlan: field \"uploads\": expected relative paths"},
      {EncodeJsonFrame(MessageType::kRshExec, {{"session", 1}, {"argv", "id"}}),
       "RshExec: field \"argv\": expected an array"},
      {EncodeJsonFrame(MessageType::kRshClose, {{"session", "1"}}),
       "RshClose: field \"session\": expected an integer"},
      {EncodeFrame(MessageType::kRshData, "abc"),
       "RshData message: shorter than its 5-byte header"},
      {EncodeJsonFrame(MessageType::kJoin, Join(0, 2).ToJson()),
       "Join message: not one the head sends a node"},
  };
  for (const Malformed& m : messages) {
    SCOPED_TRACE(m.error);
    ScriptedHead head(&clock_);
    std::unique_ptr<WorkerSession> worker = Worker(1, head.port());
    StopCatcher stop;
    worker->SetStopHandler(stop.Handler());
    Result<JobAssignment> assigned = worker->Rendezvous(Join(1, 2));
    ASSERT_TRUE(assigned.ok()) << assigned.status().message();
    head.Send(m.frame);
    std::optional<StopNotice> notice = stop.Wait();
    ASSERT_TRUE(notice.has_value());
    EXPECT_EQ(notice->exit_code, 69);
    EXPECT_NE(notice->reason.find("it sent a malformed message: " + m.error), std::string::npos)
        << notice->reason;
    // The node does not wait for a head it stopped following.
    JobOutcome outcome = worker->Finish(NodeDone{}, JobOutcome{});
    EXPECT_TRUE(outcome.head_lost);
    EXPECT_EQ(outcome.exit_code, 69);
  }
}

TEST_F(ControlPlaneTest, AMalformedAssignmentFailsTheNodesRendezvousNamingTheField) {
  nlohmann::json bad = {{"runId", "run-1"},
                        {"worldSize", 4},
                        {"masterAddr", "127.0.0.1"},
                        {"masterPort", "29500"},
                        {"nodes", nlohmann::json::array()}};
  ScriptedHead head(&clock_, EncodeJsonFrame(MessageType::kAssign, bad));
  std::unique_ptr<WorkerSession> worker = Worker(1, head.port());
  Result<JobAssignment> assigned = worker->Rendezvous(Join(1, 2));
  ASSERT_FALSE(assigned.ok());
  EXPECT_NE(assigned.status().message().find(
                "sent a malformed message: Assign: field \"masterPort\": expected an integer "
                "from 0 to 65535, got a string"),
            std::string::npos)
      << assigned.status().message();
}

TEST_F(ControlPlaneTest, APeersHostAndReasonReachTheReportsEscaped) {
  std::unique_ptr<HeadSession> head = StartHead();
  auto joined = std::async(std::launch::async, [&] {
    std::unique_ptr<ControlClient> node = ConnectAsNode(head->port(), &clock_, 1);
    NodeJoin j = Join(1, 2);
    j.host = "evil\n\x1b[31mFORGED";
    if (node) node->SendJson(MessageType::kJoin, j.ToJson()).IgnoreError();
    return node;
  });
  ASSERT_TRUE(head->Rendezvous(Join(0, 2)).ok());
  std::unique_ptr<ControlClient> node = joined.get();
  ASSERT_TRUE(node);
  StopCatcher stop;
  head->SetStopHandler(stop.Handler());
  ASSERT_TRUE(node->SendJson(MessageType::kRankFailed,
                             {{"rank", 2}, {"exitCode", 3}, {"reason", "died\r\n\x1b]0;pwned\x07"}})
                  .ok());
  std::optional<StopNotice> notice = stop.Wait();
  ASSERT_TRUE(notice.has_value());
  EXPECT_EQ(notice->reason,
            "rank 2 on node 1 (evil\\n\\x1b[31mFORGED, 127.0.0.1) died\\r\\n\\x1b]0;pwned\\x07");
  const std::string all = reporter_.All();
  EXPECT_NE(all.find("evil\\n\\x1b[31mFORGED"), std::string::npos) << all;
  EXPECT_EQ(all.find('\x1b'), std::string::npos) << all;
  EXPECT_EQ(all.find('\r'), std::string::npos) << all;
  EXPECT_EQ(all.find("\nFORGED"), std::string::npos) << all;
}

}  // namespace
}  // namespace trainrun
