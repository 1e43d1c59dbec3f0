// The supervision state machine, driven by a scripted process set and a fake clock.
// The same scenarios run with real processes in tests/launcher/run_test.cc.
#include "runtime/process/supervisor.h"

#include <signal.h>

#include <gtest/gtest.h>

#include "tests/fakes/scripted_process_set.h"

namespace trainrun {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using testing::FakeClock;
using testing::ProcessScript;
using testing::ScriptedProcessSet;

std::vector<RankLaunch> Launches(int n) {
  std::vector<RankLaunch> launches;
  for (int rank = 0; rank < n; ++rank) {
    RankLaunch launch;
    launch.rank = rank;
    launch.spec.argv = {"train"};
    launch.spec.env = {"RANK=" + std::to_string(rank)};
    launches.push_back(launch);
  }
  return launches;
}

ProcessScript ExitsAfter(Duration after, int code) {
  ProcessScript s;
  s.exit_after = after;
  s.exit_status.code = code;
  return s;
}

class SupervisorTest : public ::testing::Test {
 protected:
  SupervisionResult Run(int ranks, SupervisorOptions options = {}) {
    Supervisor supervisor(&processes_, &reporter_, options);
    SupervisionResult result = supervisor.Run(Launches(ranks));
    EXPECT_FALSE(processes_.stuck()) << "the supervisor waited with nothing to wait for";
    return result;
  }
  // The signals the supervisor sent to `rank`'s group, in order.
  std::vector<int> SignalsTo(int rank) {
    std::vector<int> out;
    for (const auto& s : processes_.signals_sent()) {
      if (s.pgid == processes_.PidOf(rank)) out.push_back(s.signal);
    }
    return out;
  }

  FakeClock clock_;
  ScriptedProcessSet processes_{&clock_};
  QuietReporter reporter_;
};

TEST_F(SupervisorTest, AllRanksSucceed) {
  for (int r = 0; r < 4; ++r) processes_.Script(r, ExitsAfter(milliseconds(100 * (r + 1)), 0));
  SupervisionResult result = Run(4);
  EXPECT_EQ(result.outcome, RunOutcome::kSucceeded);
  EXPECT_EQ(result.exit_code, 0);
  EXPECT_FALSE(result.failure);
  ASSERT_EQ(result.ranks.size(), 4u);
  for (const RankResult& r : result.ranks) {
    EXPECT_TRUE(r.started);
    EXPECT_FALSE(r.stopped_by_trainrun);
  }
  // Nothing was signalled while running; only the final sweep of the groups.
  for (int r = 0; r < 4; ++r) EXPECT_EQ(SignalsTo(r), std::vector<int>{SIGKILL});
  EXPECT_EQ(clock_.Elapsed(), milliseconds(400));
}

TEST_F(SupervisorTest, AHelpersExitGoesToItsOwnerAndIsNoRankFailure) {
  // A helper started through the same set (no RANK, so the script for -1), which
  // dies while the rank still runs.
  processes_.Script(-1, ExitsAfter(milliseconds(200), 1));
  SpawnSpec helper;
  helper.argv = {"rclone"};
  int helper_pid = *processes_.Spawn(helper);
  processes_.Script(0, ExitsAfter(milliseconds(500), 0));
  std::vector<std::pair<int, ExitStatus>> helper_exits;
  SupervisorOptions options;
  options.on_helper_exit = [&](int pid, const ExitStatus& status) {
    helper_exits.emplace_back(pid, status);
    EXPECT_EQ(clock_.Elapsed(), milliseconds(200)) << "reported while the rank ran";
  };
  SupervisionResult result = Run(1, options);
  ASSERT_EQ(helper_exits.size(), 1u);
  EXPECT_EQ(helper_exits[0].first, helper_pid);
  EXPECT_EQ(helper_exits[0].second.code, 1);
  EXPECT_EQ(result.outcome, RunOutcome::kSucceeded);
  EXPECT_FALSE(result.failure);
}

TEST_F(SupervisorTest, FirstFailureStopsEveryOtherRankAndNamesTheRank) {
  processes_.Script(2, ExitsAfter(milliseconds(500), 3));
  // Rank 3 fails too, but only after trainrun began stopping: not the root cause.
  ProcessScript late;
  late.honours_term = true;
  late.term_delay = milliseconds(5);
  processes_.Script(3, late);
  SupervisionResult result = Run(4);
  EXPECT_EQ(result.outcome, RunOutcome::kRankFailed);
  EXPECT_EQ(result.exit_code, 3);
  ASSERT_TRUE(result.failure);
  EXPECT_EQ(result.failure->rank, 2);
  EXPECT_EQ(result.failure->status.code, 3);
  EXPECT_NE(result.failure->reason.find("exit code 3"), std::string::npos);
  for (int r : {0, 1, 3}) {
    std::vector<int> signals = SignalsTo(r);
    ASSERT_FALSE(signals.empty());
    EXPECT_EQ(signals.front(), SIGTERM) << "rank " << r;
    EXPECT_TRUE(result.ranks[r].stopped_by_trainrun);
  }
  EXPECT_FALSE(result.ranks[2].stopped_by_trainrun);
  EXPECT_FALSE(result.killed_after_grace);
  // Stopped promptly, not after the grace period.
  EXPECT_LT(clock_.Elapsed(), milliseconds(600));
}

TEST_F(SupervisorTest, RankIgnoringSigtermIsKilledAfterTheGracePeriod) {
  processes_.Script(0, ExitsAfter(seconds(1), 1));
  ProcessScript stubborn;
  stubborn.honours_term = false;
  processes_.Script(1, stubborn);
  SupervisorOptions options;
  options.grace_period = seconds(30);
  SupervisionResult result = Run(2, options);
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_TRUE(result.killed_after_grace);
  EXPECT_EQ(SignalsTo(1), (std::vector<int>{SIGTERM, SIGKILL, SIGKILL}));
  EXPECT_EQ(result.ranks[1].status.signal, SIGKILL);
  // Failure at 1 s, SIGKILL exactly one grace period later.
  EXPECT_EQ(clock_.Elapsed(), seconds(31));
}

TEST_F(SupervisorTest, RankThatOutlivesSigkillIsRecordedAsUnkillableAfterTheBound) {
  processes_.Script(0, ExitsAfter(seconds(1), 3));
  ProcessScript stuck;
  stuck.unkillable = true;
  processes_.Script(1, stuck);
  SupervisorOptions options;
  options.grace_period = seconds(5);
  options.unkillable_timeout = seconds(20);
  SupervisionResult r = Run(2, options);
  EXPECT_EQ(r.exit_code, 3) << "the failed rank's code, not 70";
  EXPECT_EQ(r.unkillable, 1);
  ASSERT_TRUE(r.ranks[1].unkillable);
  EXPECT_EQ(r.ranks[1].state.state, 'D');
  EXPECT_EQ(r.ranks[1].state.wchan, "request_wait_answer");
  EXPECT_EQ(r.ranks[1].status.signal, SIGKILL);
  EXPECT_FALSE(r.ranks[0].unkillable);
  EXPECT_EQ(SignalsTo(1), (std::vector<int>{SIGTERM, SIGKILL, SIGKILL}));
  // Stopped at 1 s, SIGKILL at 6 s, given up at 26 s.
  EXPECT_EQ(clock_.Now(), TimePoint{} + seconds(26));
}

TEST_F(SupervisorTest, UnkillableRanksOfACancelWithNoCodeExit70) {
  ProcessScript stuck;
  stuck.unkillable = true;
  processes_.Script(0, stuck);
  SupervisorOptions options;
  options.grace_period = seconds(1);
  options.unkillable_timeout = seconds(2);
  Supervisor supervisor(&processes_, &reporter_, options);
  supervisor.Start(Launches(1));
  supervisor.RequestStop(0, "the head asked");
  SupervisionResult r = supervisor.Wait();
  EXPECT_EQ(r.exit_code, kExitCodeUnkillable);
  EXPECT_TRUE(r.ranks[0].unkillable);
}

TEST_F(SupervisorTest, SignalDeathGivesShellStyleExitCodeAndSigkillGetsOomHint) {
  ProcessScript segv;
  segv.exit_after = milliseconds(50);
  segv.exit_status.signal = SIGSEGV;
  processes_.Script(0, segv);
  SupervisionResult result = Run(2);
  EXPECT_EQ(result.exit_code, 128 + SIGSEGV);
  ASSERT_TRUE(result.failure);
  EXPECT_TRUE(result.failure->hint.empty());

  FakeClock clock;
  ScriptedProcessSet processes(&clock);
  ProcessScript oom;
  oom.exit_after = milliseconds(50);
  oom.exit_status.signal = SIGKILL;
  processes.Script(1, oom);
  Supervisor supervisor(&processes, &reporter_, {});
  SupervisionResult killed = supervisor.Run(Launches(2));
  EXPECT_EQ(killed.exit_code, 137);
  ASSERT_TRUE(killed.failure);
  EXPECT_NE(killed.failure->hint.find("out-of-memory"), std::string::npos);
}

TEST_F(SupervisorTest, MaxRunDurationStopsWithExit124) {
  SupervisorOptions options;
  options.max_run_duration = seconds(60);
  SupervisionResult result = Run(3, options);
  EXPECT_EQ(result.outcome, RunOutcome::kTimedOut);
  EXPECT_EQ(result.exit_code, kExitCodeTimeout);
  EXPECT_FALSE(result.failure);
  EXPECT_NE(result.stop_reason.find("maxRunDurationSeconds"), std::string::npos);
  for (int r = 0; r < 3; ++r) EXPECT_EQ(SignalsTo(r).front(), SIGTERM);
  EXPECT_GE(clock_.Elapsed(), seconds(60));
  EXPECT_LT(clock_.Elapsed(), seconds(61));
}

TEST_F(SupervisorTest, SigtermToTrainrunIsForwardedAndCancels) {
  processes_.SendSignalAt(seconds(2), SIGTERM);
  SupervisionResult result = Run(2);
  EXPECT_EQ(result.outcome, RunOutcome::kCanceled);
  EXPECT_EQ(result.exit_code, kExitCodeCanceled);
  EXPECT_EQ(result.cancel_signal, SIGTERM);
  for (int r = 0; r < 2; ++r) EXPECT_EQ(SignalsTo(r).front(), SIGTERM);
}

TEST_F(SupervisorTest, SigintIsForwardedAsSigintAndASecondOneKillsAtOnce) {
  ProcessScript stubborn;
  stubborn.honours_term = false;
  processes_.Script(0, stubborn);
  processes_.SendSignalAt(seconds(1), SIGINT);
  processes_.SendSignalAt(seconds(3), SIGINT);
  SupervisionResult result = Run(1);
  EXPECT_EQ(result.exit_code, kExitCodeCanceled);
  EXPECT_EQ(SignalsTo(0), (std::vector<int>{SIGINT, SIGKILL, SIGKILL}));
  // Killed at the second SIGINT, long before the 30 s grace period.
  EXPECT_EQ(clock_.Elapsed(), seconds(3));
}

// scancel signals trainrun 16 ms after the head's stop (or its own first SIGTERM):
// the ranks still get their whole grace period.
TEST_F(SupervisorTest, ASecondSigtermWithinASecondKeepsTheGracePeriod) {
  ProcessScript slow;
  slow.honours_term = true;
  slow.term_delay = seconds(20);  // needs 20 s of its 30 s grace to write a checkpoint
  processes_.Script(0, slow);
  processes_.SendSignalAt(seconds(1), SIGTERM);
  processes_.SendSignalAt(seconds(1) + milliseconds(16), SIGTERM);
  SupervisionResult result = Run(1);
  EXPECT_EQ(result.exit_code, kExitCodeCanceled);
  EXPECT_FALSE(result.killed_after_grace);
  EXPECT_EQ(SignalsTo(0), (std::vector<int>{SIGTERM, SIGKILL}));  // the final sweep only
  EXPECT_EQ(result.ranks[0].status.signal, SIGTERM);
  EXPECT_EQ(clock_.Elapsed(), seconds(21));
}

TEST_F(SupervisorTest, RankThatCannotStartFailsWith127AndStopsTheOthers) {
  ProcessScript missing;
  missing.spawn_error = NotFoundError("python4: not found on PATH");
  processes_.Script(1, missing);
  SupervisionResult result = Run(3);
  EXPECT_EQ(result.outcome, RunOutcome::kRankFailed);
  EXPECT_EQ(result.exit_code, kExitCodeCommandNotFound);
  ASSERT_TRUE(result.failure);
  EXPECT_EQ(result.failure->rank, 1);
  EXPECT_NE(result.failure->reason.find("python4"), std::string::npos);
  // Rank 2 is never started; rank 0 is stopped.
  EXPECT_EQ(processes_.spawned_ranks(), std::vector<int>{0});
  EXPECT_FALSE(result.ranks[2].started);
  EXPECT_EQ(SignalsTo(0).front(), SIGTERM);
}

TEST_F(SupervisorTest, RequestStopFromElsewhereEndsWithTheGivenCode) {
  Supervisor supervisor(&processes_, &reporter_, {});
  supervisor.Start(Launches(2));
  supervisor.RequestStop(69, "node 1 (gpu-002) was lost");
  SupervisionResult result = supervisor.Wait();
  EXPECT_EQ(result.outcome, RunOutcome::kStopped);
  EXPECT_EQ(result.exit_code, 69);
  EXPECT_EQ(result.stop_reason, "node 1 (gpu-002) was lost");
  EXPECT_EQ(SignalsTo(0).front(), SIGTERM);
}

TEST_F(SupervisorTest, OnRankFailedIsCalledOnceWithTheRootCause) {
  processes_.Script(0, ExitsAfter(milliseconds(10), 7));
  processes_.Script(1, ExitsAfter(milliseconds(10), 8));
  std::vector<int> reported;
  SupervisorOptions options;
  options.on_rank_failed = [&](const RankFailure& f) { reported.push_back(f.rank); };
  SupervisionResult result = Run(2, options);
  EXPECT_EQ(reported.size(), 1u);
  EXPECT_EQ(result.failure->rank, reported.at(0));
}

TEST_F(SupervisorTest, RankExitingZeroEarlyDoesNotStopTheOthers) {
  processes_.Script(0, ExitsAfter(milliseconds(10), 0));
  processes_.Script(1, ExitsAfter(seconds(5), 0));
  SupervisionResult result = Run(2);
  EXPECT_EQ(result.outcome, RunOutcome::kSucceeded);
  EXPECT_EQ(SignalsTo(1), std::vector<int>{SIGKILL});  // only the final sweep
  EXPECT_EQ(clock_.Elapsed(), seconds(5));
}

// Parameter servers: ranks 0 and 1 are servers (run until signalled), 2 and 3 workers.
std::vector<RankLaunch> WithServers(int servers, int workers) {
  std::vector<RankLaunch> launches = Launches(servers + workers);
  for (int r = 0; r < servers; ++r) launches[r].server = true;
  return launches;
}

TEST_F(SupervisorTest, ServersAreStoppedOnceEveryWorkerExitedZeroAndTheRunSucceeds) {
  processes_.Script(2, ExitsAfter(milliseconds(300), 0));
  processes_.Script(3, ExitsAfter(milliseconds(500), 0));
  SupervisorOptions options;
  options.grace_period = seconds(30);
  Supervisor supervisor(&processes_, &reporter_, options);
  SupervisionResult result = supervisor.Run(WithServers(2, 2));
  EXPECT_EQ(result.outcome, RunOutcome::kSucceeded);
  EXPECT_EQ(result.exit_code, 0);
  EXPECT_FALSE(result.failure);
  EXPECT_NE(result.stop_reason.find("parameter servers"), std::string::npos) << result.stop_reason;
  for (int r : {0, 1}) {
    EXPECT_EQ(SignalsTo(r).front(), SIGTERM) << "server " << r;
    EXPECT_TRUE(result.ranks[r].stopped_by_trainrun);
    EXPECT_EQ(result.ranks[r].status.signal, SIGTERM);
  }
  for (int r : {2, 3}) EXPECT_EQ(SignalsTo(r), std::vector<int>{SIGKILL}) << "worker " << r;
  // Stopped when the last worker ended, not a grace period later.
  EXPECT_EQ(clock_.Elapsed(), milliseconds(510));
}

TEST_F(SupervisorTest, AServerIgnoringSigtermIsKilledAfterTheGraceAndTheRunStillSucceeds) {
  ProcessScript stubborn;
  stubborn.honours_term = false;
  processes_.Script(0, stubborn);
  processes_.Script(1, ExitsAfter(seconds(1), 0));
  SupervisorOptions options;
  options.grace_period = seconds(5);
  Supervisor supervisor(&processes_, &reporter_, options);
  SupervisionResult result = supervisor.Run(WithServers(1, 1));
  EXPECT_EQ(result.outcome, RunOutcome::kSucceeded);
  EXPECT_EQ(result.exit_code, 0);
  EXPECT_TRUE(result.killed_after_grace);
  EXPECT_EQ(SignalsTo(0), (std::vector<int>{SIGTERM, SIGKILL, SIGKILL}));
  EXPECT_EQ(clock_.Elapsed(), seconds(6));
}

TEST_F(SupervisorTest, AFailedWorkerIsTheNormalFailFastWithServersStoppedToo) {
  processes_.Script(1, ExitsAfter(milliseconds(200), 0));
  processes_.Script(2, ExitsAfter(milliseconds(400), 5));
  SupervisionResult result = [&] {
    Supervisor supervisor(&processes_, &reporter_, {});
    return supervisor.Run(WithServers(1, 2));
  }();
  EXPECT_EQ(result.outcome, RunOutcome::kRankFailed);
  EXPECT_EQ(result.exit_code, 5);
  ASSERT_TRUE(result.failure);
  EXPECT_EQ(result.failure->rank, 2);
  EXPECT_TRUE(result.ranks[0].stopped_by_trainrun);
}

TEST_F(SupervisorTest, AServerCrashIsAFailureWhileWorkersRun) {
  processes_.Script(0, ExitsAfter(milliseconds(100), 1));
  Supervisor supervisor(&processes_, &reporter_, {});
  SupervisionResult result = supervisor.Run(WithServers(1, 2));
  EXPECT_EQ(result.outcome, RunOutcome::kRankFailed);
  EXPECT_EQ(result.exit_code, 1);
  ASSERT_TRUE(result.failure);
  EXPECT_EQ(result.failure->rank, 0);
  for (int r : {1, 2}) EXPECT_TRUE(result.ranks[r].stopped_by_trainrun);
}

TEST_F(SupervisorTest, OnSeveralNodesTheServersWaitForStopServers) {
  processes_.Script(1, ExitsAfter(milliseconds(100), 0));
  int reported = 0;
  Supervisor* self = nullptr;
  SupervisorOptions options;
  // The head's answer comes later: another node's workers still run.
  options.on_workers_done = [&] {
    ++reported;
    EXPECT_EQ(clock_.Elapsed(), milliseconds(100));
    EXPECT_TRUE(SignalsTo(0).empty()) << "the server is not stopped before the head says so";
    clock_.Advance(seconds(2));
    self->StopServers("every worker of the job exited 0");
  };
  Supervisor supervisor(&processes_, &reporter_, options);
  self = &supervisor;
  SupervisionResult result = supervisor.Run(WithServers(1, 1));
  EXPECT_EQ(reported, 1);
  EXPECT_EQ(result.outcome, RunOutcome::kSucceeded);
  EXPECT_EQ(result.exit_code, 0);
  EXPECT_EQ(SignalsTo(0).front(), SIGTERM);
  EXPECT_TRUE(result.ranks[0].stopped_by_trainrun);
}

TEST_F(SupervisorTest, ANodeWithOnlyServersOrOnlyWorkersReportsItsWorkersDone) {
  int reported = 0;
  SupervisorOptions options;
  Supervisor* self = nullptr;
  options.on_workers_done = [&] {
    ++reported;
    self->StopServers("done");
  };
  Supervisor servers_only(&processes_, &reporter_, options);
  self = &servers_only;
  SupervisionResult result = servers_only.Run(WithServers(1, 0));
  EXPECT_EQ(reported, 1) << "at once: this node has no worker";
  EXPECT_EQ(result.exit_code, 0);

  FakeClock clock;
  ScriptedProcessSet processes(&clock);
  processes.Script(0, ExitsAfter(milliseconds(50), 0));
  options.on_workers_done = [&] { ++reported; };
  Supervisor workers_only(&processes, &reporter_, options);
  EXPECT_EQ(workers_only.Run(Launches(1)).exit_code, 0);
  EXPECT_EQ(reported, 2) << "after its last worker: the head waits to hear every node";
}

TEST_F(SupervisorTest, WorkersDoneIsNotReportedAfterAFailure) {
  processes_.Script(1, ExitsAfter(milliseconds(100), 2));
  int reported = 0;
  SupervisorOptions options;
  options.on_workers_done = [&] { ++reported; };
  Supervisor supervisor(&processes_, &reporter_, options);
  EXPECT_EQ(supervisor.Run(WithServers(1, 1)).exit_code, 2);
  EXPECT_EQ(reported, 0);
}

}  // namespace
}  // namespace trainrun
