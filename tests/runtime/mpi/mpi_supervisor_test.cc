// The MPI supervisor on the head, driven by a scripted process set and a fake clock:
// mpirun is a process it spawns (scripted as rank -1), the ranks are processes mpirun
// started whose wrappers report their start and end. The same job runs with real
// mpirun in tests/launcher/cluster_test.cc (ClusterTest.MpiOnOneNode...).
#include "runtime/mpi/mpi_supervisor.h"

#include <signal.h>

#include <memory>

#include <gtest/gtest.h>

#include "tests/fakes/scripted_process_set.h"

namespace trainrun {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using testing::FakeClock;
using testing::ProcessScript;
using testing::ScriptedProcessSet;

ProcessScript ExitsAfter(Duration after, int code) {
  ProcessScript s;
  s.exit_after = after;
  s.exit_status.code = code;
  return s;
}

ProcessScript IgnoresSigterm() {
  ProcessScript s;
  s.honours_term = false;
  return s;
}

class MpiSupervisorTest : public ::testing::Test {
 protected:
  void Make(SupervisorOptions options = {}) {
    supervisor_ = std::make_unique<MpiSupervisor>(&processes_, &reporter_, options, nullptr);
  }
  // Rank `rank`, started by mpirun at `start_at`, reported as its wrapper would.
  void Rank(int rank, Duration start_at, ProcessScript script = {}) {
    MpiSupervisor* supervisor = supervisor_.get();
    processes_.ScriptReported(
        rank, start_at, script, [supervisor, rank](int pid) { supervisor->RankStarted(rank, pid); },
        [supervisor, rank](const ExitStatus& s) { supervisor->RankExited(rank, s); });
  }
  // The head's run: mpirun (RANK=-1 in its environment names its script) and `ranks`.
  SupervisionResult Run(std::vector<int> ranks) {
    SpawnSpec mpirun;
    mpirun.argv = {"mpirun", "-np", std::to_string(ranks.size()), "train"};
    mpirun.env = {"RANK=" + std::to_string(kMpirunRank)};
    SupervisionResult result = supervisor_->Run(mpirun, ranks);
    EXPECT_FALSE(processes_.stuck()) << "the supervisor waited with nothing to wait for";
    return result;
  }
  // The signals sent to `rank`'s group (kMpirunRank: mpirun's), in order.
  std::vector<int> SignalsTo(int rank) {
    std::vector<int> out;
    for (const auto& s : processes_.signals_sent()) {
      if (s.pgid == processes_.PidOf(rank)) out.push_back(s.signal);
    }
    return out;
  }
  // When `signal` first went to `rank`'s group, as time since the fake epoch.
  std::optional<Duration> WhenSent(int rank, int signal) {
    for (const auto& s : processes_.signals_sent()) {
      if (s.pgid == processes_.PidOf(rank) && s.signal == signal) return s.at - TimePoint{};
    }
    return std::nullopt;
  }

  FakeClock clock_;
  ScriptedProcessSet processes_{&clock_};
  QuietReporter reporter_;
  std::unique_ptr<MpiSupervisor> supervisor_;
};

TEST_F(MpiSupervisorTest, EveryRankAndMpirunSucceed) {
  Make();
  processes_.Script(kMpirunRank, ExitsAfter(milliseconds(2200), 0));
  Rank(0, milliseconds(100), ExitsAfter(seconds(1), 0));
  Rank(1, milliseconds(100), ExitsAfter(seconds(2), 0));
  SupervisionResult result = Run({0, 1});
  EXPECT_EQ(result.outcome, RunOutcome::kSucceeded);
  EXPECT_EQ(result.exit_code, 0);
  EXPECT_FALSE(result.failure);
  EXPECT_TRUE(result.stop_reason.empty());
  ASSERT_EQ(result.ranks.size(), 2u);
  for (int r = 0; r < 2; ++r) {
    EXPECT_TRUE(result.ranks[r].started);
    EXPECT_EQ(result.ranks[r].pid, processes_.PidOf(r));
    EXPECT_TRUE(result.ranks[r].status.success());
    EXPECT_FALSE(result.ranks[r].stopped_by_trainrun);
    EXPECT_DOUBLE_EQ(result.ranks[r].seconds, r + 1.0);
  }
  // Nothing was stopped: mpirun never signalled, the ranks only by the final sweep.
  EXPECT_TRUE(SignalsTo(kMpirunRank).empty());
  for (int r = 0; r < 2; ++r) EXPECT_EQ(SignalsTo(r), std::vector<int>{SIGKILL});
  EXPECT_EQ(clock_.Elapsed(), milliseconds(2200));
}

TEST_F(MpiSupervisorTest, RankFailureStopsMpirunAndTheOtherRanksPromptly) {
  std::vector<RankFailure> reported;
  SupervisorOptions options;
  options.on_rank_failed = [&](const RankFailure& f) { reported.push_back(f); };
  Make(options);
  Rank(0, milliseconds(100));
  Rank(1, milliseconds(100), ExitsAfter(seconds(1), 5));
  Rank(2, milliseconds(100));
  SupervisionResult result = Run({0, 1, 2});
  EXPECT_EQ(result.outcome, RunOutcome::kRankFailed);
  EXPECT_EQ(result.exit_code, 5);
  ASSERT_TRUE(result.failure);
  EXPECT_EQ(result.failure->rank, 1);
  EXPECT_EQ(result.failure->pid, processes_.PidOf(1));
  EXPECT_EQ(result.stop_reason, "rank 1 exited with exit code 5");
  ASSERT_EQ(reported.size(), 1u);
  EXPECT_EQ(reported[0].rank, 1);
  // mpirun and the other ranks get SIGTERM the moment the failure is reported.
  EXPECT_EQ(WhenSent(kMpirunRank, SIGTERM), milliseconds(1100));
  for (int r : {0, 2}) {
    EXPECT_EQ(WhenSent(r, SIGTERM), milliseconds(1100)) << "rank " << r;
    EXPECT_TRUE(result.ranks[r].stopped_by_trainrun) << "rank " << r;
  }
  EXPECT_FALSE(result.ranks[1].stopped_by_trainrun);
  EXPECT_TRUE(SignalsTo(1).empty() || SignalsTo(1).front() == SIGKILL);  // sweep only
  EXPECT_FALSE(result.killed_after_grace);
  EXPECT_FALSE(WhenSent(kMpirunRank, SIGKILL));
  EXPECT_LT(clock_.Elapsed(), milliseconds(1200));
}

TEST_F(MpiSupervisorTest, RankIgnoringSigtermIsKilledExactlyOneGracePeriodLater) {
  SupervisorOptions options;
  options.grace_period = seconds(30);
  Make(options);
  Rank(0, seconds(0), IgnoresSigterm());
  Rank(1, seconds(0), ExitsAfter(seconds(1), 1));
  SupervisionResult result = Run({0, 1});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_TRUE(result.killed_after_grace);
  EXPECT_EQ(SignalsTo(0), (std::vector<int>{SIGTERM, SIGKILL, SIGKILL}));
  EXPECT_EQ(WhenSent(0, SIGTERM), seconds(1));
  // Failure at 1 s, SIGKILL exactly one grace period later, not before.
  EXPECT_EQ(WhenSent(0, SIGKILL), seconds(31));
  EXPECT_EQ(result.ranks[0].status.signal, SIGKILL);
  EXPECT_TRUE(result.ranks[0].stopped_by_trainrun);
  EXPECT_EQ(clock_.Elapsed(), seconds(31));
}

TEST_F(MpiSupervisorTest, MaxRunDurationStopsWithExit124) {
  SupervisorOptions options;
  options.max_run_duration = seconds(60);
  Make(options);
  Rank(0, milliseconds(100));
  Rank(1, milliseconds(100));
  SupervisionResult result = Run({0, 1});
  EXPECT_EQ(result.outcome, RunOutcome::kTimedOut);
  EXPECT_EQ(result.exit_code, kExitCodeTimeout);
  EXPECT_FALSE(result.failure);
  EXPECT_EQ(result.stop_reason, "maxRunDurationSeconds (60 s) exceeded");
  for (int r : {kMpirunRank, 0, 1}) EXPECT_EQ(WhenSent(r, SIGTERM), seconds(60)) << r;
  EXPECT_FALSE(result.killed_after_grace);
  EXPECT_GE(clock_.Elapsed(), seconds(60));
  EXPECT_LT(clock_.Elapsed(), seconds(61));
}

TEST_F(MpiSupervisorTest, SigtermToTrainrunCancelsWithExit143) {
  Make();
  Rank(0, milliseconds(100));
  Rank(1, milliseconds(100));
  processes_.SendSignalAt(seconds(2), SIGTERM);
  SupervisionResult result = Run({0, 1});
  EXPECT_EQ(result.outcome, RunOutcome::kCanceled);
  EXPECT_EQ(result.exit_code, kExitCodeCanceled);
  EXPECT_EQ(result.cancel_signal, SIGTERM);
  EXPECT_EQ(result.stop_reason, "trainrun received SIGTERM");
  for (int r : {kMpirunRank, 0, 1}) EXPECT_EQ(SignalsTo(r).front(), SIGTERM) << r;
  for (int r : {0, 1}) EXPECT_TRUE(result.ranks[r].stopped_by_trainrun);
  EXPECT_LT(clock_.Elapsed(), seconds(3));
}

TEST_F(MpiSupervisorTest, SecondSigintWhileStoppingKillsAtOnce) {
  Make();
  processes_.Script(kMpirunRank, IgnoresSigterm());
  Rank(0, milliseconds(100), IgnoresSigterm());
  processes_.SendSignalAt(seconds(1), SIGINT);
  processes_.SendSignalAt(seconds(3), SIGINT);
  SupervisionResult result = Run({0});
  EXPECT_EQ(result.exit_code, kExitCodeCanceled);
  EXPECT_EQ(result.cancel_signal, SIGINT);
  EXPECT_EQ(SignalsTo(kMpirunRank), (std::vector<int>{SIGINT, SIGKILL}));
  EXPECT_EQ(SignalsTo(0), (std::vector<int>{SIGINT, SIGKILL, SIGKILL}));
  EXPECT_TRUE(result.killed_after_grace);
  // Killed at the second SIGINT, long before the 30 s grace period.
  EXPECT_EQ(clock_.Elapsed(), seconds(3));
}

TEST_F(MpiSupervisorTest, MpirunFailingWithoutARankFailureIsRankMinusOne) {
  Make();
  processes_.Script(kMpirunRank, ExitsAfter(seconds(1), 1));
  Rank(0, milliseconds(100));
  SupervisionResult result = Run({0});
  EXPECT_EQ(result.outcome, RunOutcome::kRankFailed);
  EXPECT_EQ(result.exit_code, 1);
  ASSERT_TRUE(result.failure);
  EXPECT_EQ(result.failure->rank, kMpirunRank);
  EXPECT_EQ(result.stop_reason, "mpirun exited with exit code 1");
  EXPECT_EQ(WhenSent(0, SIGTERM), seconds(1));
  EXPECT_TRUE(result.ranks[0].stopped_by_trainrun);
}

TEST_F(MpiSupervisorTest, MpirunThatCannotStartFailsWith127) {
  Make();
  ProcessScript missing;
  missing.spawn_error = NotFoundError("mpirun: not found on PATH");
  processes_.Script(kMpirunRank, missing);
  SupervisionResult result = Run({0, 1});
  EXPECT_EQ(result.outcome, RunOutcome::kRankFailed);
  EXPECT_EQ(result.exit_code, kExitCodeCommandNotFound);
  ASSERT_TRUE(result.failure);
  EXPECT_EQ(result.failure->rank, kMpirunRank);
  EXPECT_NE(result.stop_reason.find("mpirun could not start"), std::string::npos);
}

TEST_F(MpiSupervisorTest, RequestStopFromElsewhereEndsWithTheGivenCode) {
  Make();
  Rank(0, milliseconds(100));
  supervisor_->RequestStop(69, "node 1 (gpu-002) was lost");
  processes_.SendSignalAt(seconds(1), SIGUSR1);  // ignored: keeps the run going a while
  SupervisionResult result = Run({0});
  EXPECT_EQ(result.outcome, RunOutcome::kStopped);
  EXPECT_EQ(result.exit_code, 69);
  EXPECT_EQ(result.stop_reason, "node 1 (gpu-002) was lost");
  EXPECT_EQ(SignalsTo(kMpirunRank).front(), SIGTERM);
}

TEST_F(MpiSupervisorTest, RankReportingItsStartWhileStoppingIsStoppedToo) {
  Make();
  processes_.Script(kMpirunRank, IgnoresSigterm());
  Rank(0, milliseconds(100));
  Rank(1, seconds(5));  // mpirun was slow to start it
  processes_.SendSignalAt(seconds(1), SIGTERM);
  SupervisionResult result = Run({0, 1});
  EXPECT_EQ(result.exit_code, kExitCodeCanceled);
  EXPECT_EQ(WhenSent(1, SIGTERM), seconds(5));
  EXPECT_TRUE(result.ranks[1].started);
  EXPECT_TRUE(result.ranks[1].stopped_by_trainrun);
}

TEST_F(MpiSupervisorTest, RankOutlivingMpirunIsStoppedAndTheOutcomeKept) {
  Make();
  processes_.Script(kMpirunRank, ExitsAfter(seconds(1), 0));
  Rank(0, milliseconds(100), ExitsAfter(milliseconds(500), 0));
  Rank(1, milliseconds(100));
  SupervisionResult result = Run({0, 1});
  EXPECT_EQ(result.outcome, RunOutcome::kSucceeded);
  EXPECT_EQ(result.exit_code, 0);
  EXPECT_EQ(result.stop_reason, "rank 1 still ran after its MPI launcher ended");
  EXPECT_EQ(WhenSent(1, SIGTERM), seconds(1));
  EXPECT_FALSE(result.ranks[0].stopped_by_trainrun);
  EXPECT_TRUE(result.ranks[1].stopped_by_trainrun);
}

}  // namespace
}  // namespace trainrun
