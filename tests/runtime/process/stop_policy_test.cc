// The stop policy alone, on a fake clock: which stop wins, the grace deadline, when
// SIGKILL is due, the max-run-duration deadline and a second signal while stopping.
#include "runtime/process/stop_policy.h"

#include <signal.h>

#include <gtest/gtest.h>

#include "base/exit_status.h"
#include "tests/fakes/fake_clock.h"

namespace trainrun {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using testing::FakeClock;

TimePoint At(Duration d) { return TimePoint{} + d; }

class StopPolicyTest : public ::testing::Test {
 protected:
  StopPolicy Make(Duration grace = seconds(30), std::optional<Duration> max_run = {}) {
    StopPolicy policy(&clock_, grace, max_run);
    policy.Start();
    return policy;
  }
  FakeClock clock_;
};

TEST_F(StopPolicyTest, BeforeAnyStopNothingIsDueAndTheOrderIsSuccess) {
  StopPolicy policy = Make();
  clock_.Advance(seconds(3600));
  EXPECT_FALSE(policy.stopping());
  EXPECT_FALSE(policy.CheckTimeout());
  EXPECT_FALSE(policy.KillDue());
  EXPECT_EQ(policy.WaitDeadline(), std::nullopt);  // no limit: wait for events only
  EXPECT_EQ(policy.order().outcome, RunOutcome::kSucceeded);
  EXPECT_EQ(policy.order().exit_code, 0);
}

TEST_F(StopPolicyTest, KillIsDueExactlyOneGracePeriodAfterTheStopBegan) {
  StopPolicy policy = Make(seconds(30));
  clock_.Advance(seconds(1));
  ASSERT_TRUE(policy.RankFailed(3, "rank 2 exited with exit code 3"));
  EXPECT_EQ(policy.order().outcome, RunOutcome::kRankFailed);
  EXPECT_EQ(policy.order().exit_code, 3);
  EXPECT_EQ(policy.order().signal, SIGTERM);
  EXPECT_EQ(policy.kill_deadline(), At(seconds(31)));
  EXPECT_EQ(policy.WaitDeadline(), At(seconds(31)));

  clock_.Advance(seconds(30) - milliseconds(1));
  EXPECT_FALSE(policy.KillDue()) << "SIGKILL before the grace period ended";
  clock_.Advance(milliseconds(1));
  EXPECT_TRUE(policy.KillDue());
  EXPECT_TRUE(policy.killed());
  EXPECT_FALSE(policy.KillDue()) << "SIGKILL is due once";
  // Now the exits are awaited, for a bounded time.
  EXPECT_EQ(policy.WaitDeadline(), At(seconds(31)) + kDefaultUnkillableTimeout);
}

TEST_F(StopPolicyTest, AfterSigkillTheWaitIsBoundedByTheUnkillableTimeout) {
  StopPolicy policy(&clock_, seconds(30), std::nullopt, seconds(20));
  policy.Start();
  ASSERT_TRUE(policy.RankFailed(3, "rank 2 exited with exit code 3"));
  EXPECT_FALSE(policy.UnkillableDue()) << "nothing was killed yet";
  clock_.Advance(seconds(30));
  ASSERT_TRUE(policy.KillDue());
  EXPECT_EQ(policy.WaitDeadline(), At(seconds(50)));
  clock_.Advance(seconds(20) - milliseconds(1));
  EXPECT_FALSE(policy.UnkillableDue()) << "gave up before the unkillable timeout";
  clock_.Advance(milliseconds(1));
  EXPECT_TRUE(policy.UnkillableDue());
  EXPECT_FALSE(policy.UnkillableDue()) << "given up once";
  EXPECT_EQ(policy.WaitDeadline(), std::nullopt);
  EXPECT_EQ(policy.order().exit_code, 3) << "the stop still explains the run";

  // A second signal's SIGKILL starts the same bound.
  StopPolicy second(&clock_, seconds(30), std::nullopt, seconds(20));
  second.Start();
  ASSERT_TRUE(second.RankFailed(1, "rank 0 exited with exit code 1"));
  clock_.Advance(seconds(2));
  ASSERT_EQ(second.OnSignal(SIGTERM), StopPolicy::SignalAction::kKillNow);
  EXPECT_EQ(second.WaitDeadline(), clock_.Now() + seconds(20));
  clock_.Advance(seconds(20));
  EXPECT_TRUE(second.UnkillableDue());
}

TEST_F(StopPolicyTest, TheFirstStopWinsAndLaterOnesChangeNothing) {
  StopPolicy policy = Make(seconds(10), seconds(60));
  ASSERT_TRUE(policy.Requested(69, "node 1 (gpu-002) was lost"));
  clock_.Advance(seconds(5));
  EXPECT_FALSE(policy.RankFailed(3, "rank 0 exited with exit code 3"));
  EXPECT_FALSE(policy.Leftovers("rank 1 still ran after its MPI launcher ended"));
  clock_.Advance(seconds(60));
  EXPECT_FALSE(policy.CheckTimeout());
  EXPECT_EQ(policy.order().outcome, RunOutcome::kStopped);
  EXPECT_EQ(policy.order().exit_code, 69);
  EXPECT_EQ(policy.order().reason, "node 1 (gpu-002) was lost");
  // The deadline is that of the first stop, not moved by the later ones.
  EXPECT_EQ(policy.kill_deadline(), At(seconds(10)));
}

TEST_F(StopPolicyTest, MaxRunDurationCountsFromStartAndStopsWith124) {
  clock_.Advance(seconds(100));
  StopPolicy policy = Make(seconds(30), seconds(60));
  EXPECT_EQ(policy.WaitDeadline(), At(seconds(160)));
  clock_.Advance(seconds(59));
  EXPECT_FALSE(policy.CheckTimeout());
  clock_.Advance(seconds(1));
  ASSERT_TRUE(policy.CheckTimeout());
  EXPECT_EQ(policy.order().outcome, RunOutcome::kTimedOut);
  EXPECT_EQ(policy.order().exit_code, kExitCodeTimeout);
  EXPECT_EQ(policy.order().signal, SIGTERM);
  EXPECT_EQ(policy.order().reason, "maxRunDurationSeconds (60 s) exceeded");
  EXPECT_EQ(policy.WaitDeadline(), At(seconds(190)));
  EXPECT_FALSE(policy.CheckTimeout()) << "the timeout begins one stop";
}

TEST_F(StopPolicyTest, SignalsCancelForwardingSigintAndTurningSighupIntoSigterm) {
  for (auto [received, forwarded] :
       {std::pair{SIGTERM, SIGTERM}, std::pair{SIGINT, SIGINT}, std::pair{SIGHUP, SIGTERM}}) {
    StopPolicy policy = Make();
    ASSERT_EQ(policy.OnSignal(received), StopPolicy::SignalAction::kStop);
    EXPECT_EQ(policy.order().outcome, RunOutcome::kCanceled);
    EXPECT_EQ(policy.order().exit_code, kExitCodeCanceled);
    EXPECT_EQ(policy.order().cancel_signal, received);
    EXPECT_EQ(policy.order().signal, forwarded) << SignalName(received);
    EXPECT_EQ(policy.order().reason, "trainrun received " + SignalName(received));
  }
  StopPolicy policy = Make();
  EXPECT_EQ(policy.OnSignal(SIGUSR1), StopPolicy::SignalAction::kIgnore);
  EXPECT_FALSE(policy.stopping());
}

TEST_F(StopPolicyTest, ASecondSignalWhileStoppingKillsNowAndAThirdIsIgnored) {
  StopPolicy policy = Make(seconds(30));
  ASSERT_TRUE(policy.RankFailed(1, "rank 0 exited with exit code 1"));
  clock_.Advance(seconds(2));
  EXPECT_EQ(policy.OnSignal(SIGINT), StopPolicy::SignalAction::kKillNow);
  EXPECT_TRUE(policy.killed());
  EXPECT_EQ(policy.WaitDeadline(), At(seconds(2)) + kDefaultUnkillableTimeout);
  EXPECT_EQ(policy.OnSignal(SIGTERM), StopPolicy::SignalAction::kIgnore);
  clock_.Advance(seconds(30));
  EXPECT_FALSE(policy.KillDue()) << "already killed";
  // The stop that began first still explains the run.
  EXPECT_EQ(policy.order().outcome, RunOutcome::kRankFailed);
  EXPECT_EQ(policy.order().cancel_signal, 0);
}

TEST_F(StopPolicyTest, LeftoversStopKeepsTheOutcomeAndLateStartersGetSigkillOnceKilled) {
  StopPolicy policy = Make(seconds(5));
  ASSERT_TRUE(policy.Leftovers("rank 1 still ran after its MPI launcher ended"));
  EXPECT_EQ(policy.order().outcome, RunOutcome::kSucceeded);
  EXPECT_EQ(policy.order().exit_code, 0);
  EXPECT_EQ(policy.order().signal, SIGTERM);
  EXPECT_EQ(policy.LateStarterSignal(), SIGTERM);
  clock_.Advance(seconds(5));
  ASSERT_TRUE(policy.KillDue());
  EXPECT_EQ(policy.LateStarterSignal(), SIGKILL);
}

// Under Slurm, scancel signals every process of the step while the head's stop
// message arrives: a second SIGTERM 16 ms into the stop is the same stop.
TEST_F(StopPolicyTest, ASignalWithinASecondOfTheStopIsTheSameStop) {
  StopPolicy policy = Make(seconds(30));
  ASSERT_TRUE(policy.Requested(143, "the head stopped the job"));
  clock_.Advance(milliseconds(16));
  EXPECT_EQ(policy.OnSignal(SIGTERM), StopPolicy::SignalAction::kSameStop);
  EXPECT_FALSE(policy.killed());
  clock_.Advance(milliseconds(900));
  EXPECT_EQ(policy.OnSignal(SIGHUP), StopPolicy::SignalAction::kSameStop);
  EXPECT_FALSE(policy.KillDue());
  // A later one is a person who does not want to wait.
  clock_.Advance(milliseconds(200));
  EXPECT_EQ(policy.OnSignal(SIGTERM), StopPolicy::SignalAction::kKillNow);
  EXPECT_TRUE(policy.killed());
}

TEST_F(StopPolicyTest, TheGracePeriodRunsOutAfterASameStopSignal) {
  StopPolicy policy = Make(seconds(30));
  ASSERT_EQ(policy.OnSignal(SIGTERM), StopPolicy::SignalAction::kStop);
  clock_.Advance(milliseconds(16));
  EXPECT_EQ(policy.OnSignal(SIGTERM), StopPolicy::SignalAction::kSameStop);
  clock_.Advance(seconds(29));
  EXPECT_FALSE(policy.KillDue());
  clock_.Advance(seconds(1));
  EXPECT_TRUE(policy.KillDue()) << "SIGKILL one grace period after the first signal";
}

TEST_F(StopPolicyTest, CtrlCPressedTwiceKillsAtOnce) {
  StopPolicy policy = Make(seconds(30));
  ASSERT_EQ(policy.OnSignal(SIGINT), StopPolicy::SignalAction::kStop);
  clock_.Advance(milliseconds(300));
  EXPECT_EQ(policy.OnSignal(SIGINT), StopPolicy::SignalAction::kKillNow);
  EXPECT_TRUE(policy.killed());
}

}  // namespace
}  // namespace trainrun
