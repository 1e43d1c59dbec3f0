#include "runtime/cluster/heartbeat.h"

#include <gtest/gtest.h>

#include "tests/fakes/fake_clock.h"

namespace trainrun {
namespace {

using std::chrono::seconds;

TEST(HeartbeatTest, SendsEveryIntervalWithoutBursts) {
  testing::FakeClock clock;
  HeartbeatMonitor monitor(&clock, {seconds(1), seconds(10)});
  EXPECT_TRUE(monitor.SendDue());
  EXPECT_FALSE(monitor.SendDue());
  clock.Advance(std::chrono::milliseconds(999));
  EXPECT_FALSE(monitor.SendDue());
  clock.Advance(std::chrono::milliseconds(1));
  EXPECT_TRUE(monitor.SendDue());
  clock.Advance(seconds(30));  // a stall: one beat, not thirty
  EXPECT_TRUE(monitor.SendDue());
  EXPECT_FALSE(monitor.SendDue());
}

TEST(HeartbeatTest, ASilentPeerExpiresOnceAndAnyMessageKeepsItAlive) {
  testing::FakeClock clock;
  HeartbeatMonitor monitor(&clock, {seconds(1), seconds(10)});
  monitor.Add(1);
  monitor.Add(2);
  clock.Advance(seconds(6));
  monitor.Heard(2);
  clock.Advance(seconds(5));
  EXPECT_EQ(monitor.Expired(), std::vector<int>{1});
  EXPECT_TRUE(monitor.Expired().empty());  // reported once
  EXPECT_EQ(monitor.SilenceOf(2), seconds(5));
  clock.Advance(seconds(6));
  EXPECT_EQ(monitor.Expired(), std::vector<int>{2});
}

TEST(HeartbeatTest, RemovedPeersAreNotWatched) {
  testing::FakeClock clock;
  HeartbeatMonitor monitor(&clock, {seconds(1), seconds(2)});
  monitor.Add(3);
  monitor.Remove(3);
  clock.Advance(seconds(60));
  EXPECT_TRUE(monitor.Expired().empty());
}

// Turns of a loop that keeps running: one every 100 ms for `d`.
void TurnFor(testing::FakeClock* clock, HeartbeatMonitor* monitor, Duration d) {
  for (Duration t{}; t < d; t += std::chrono::milliseconds(100)) {
    clock->Advance(std::chrono::milliseconds(100));
    EXPECT_FALSE(monitor->Turn().has_value());
  }
}

TEST(HeartbeatTest, AStalledLoopGivesEveryPeerAFreshIntervalAndSaysForHowLong) {
  testing::FakeClock clock;
  HeartbeatMonitor monitor(&clock, {seconds(1), seconds(10)});
  EXPECT_FALSE(monitor.Turn().has_value());  // the first turn only starts the measurement
  monitor.Add(1);
  monitor.Add(2);
  TurnFor(&clock, &monitor, seconds(3));
  monitor.Heard(2);
  // SIGSTOP for 20 s: nothing is read, nothing turns.
  clock.Advance(seconds(20));
  EXPECT_EQ(monitor.Turn(), seconds(20));
  EXPECT_TRUE(monitor.Expired().empty());
  EXPECT_EQ(monitor.SilenceOf(1), Duration::zero());
  EXPECT_EQ(monitor.SilenceOf(2), Duration::zero());
  EXPECT_TRUE(monitor.SendDue());  // ours goes out at once
}

TEST(HeartbeatTest, APeerReallyGoneIsStillLostOneTimeoutAfterTheStall) {
  testing::FakeClock clock;
  HeartbeatMonitor monitor(&clock, {seconds(1), seconds(10)});
  monitor.Add(1);
  monitor.Add(2);
  monitor.Turn();
  clock.Advance(seconds(30));
  ASSERT_TRUE(monitor.Turn().has_value());
  // Node 2 speaks after the stall, node 1 never does again.
  TurnFor(&clock, &monitor, seconds(5));
  monitor.Heard(2);
  TurnFor(&clock, &monitor, seconds(5));
  EXPECT_TRUE(monitor.Expired().empty());  // exactly the timeout: not yet
  clock.Advance(std::chrono::milliseconds(1));
  monitor.Turn();
  EXPECT_EQ(monitor.Expired(), std::vector<int>{1});
}

TEST(HeartbeatTest, AStallBeforeTheFirstTurnCountsFromTheFirstPeer) {
  testing::FakeClock clock;
  HeartbeatMonitor monitor(&clock, {seconds(1), seconds(10)});
  clock.Advance(seconds(60));  // a rendezvous: nobody watched, no turns
  monitor.Add(1);
  clock.Advance(seconds(20));
  EXPECT_EQ(monitor.Turn(), seconds(20));
  EXPECT_TRUE(monitor.Expired().empty());
}

TEST(HeartbeatTest, ALoopLateByHalfTheTimeoutOrLessWasNotStalled) {
  testing::FakeClock clock;
  HeartbeatMonitor monitor(&clock, {seconds(1), seconds(10)});
  monitor.Add(1);
  monitor.Turn();
  clock.Advance(seconds(5));
  EXPECT_FALSE(monitor.Turn().has_value());
  EXPECT_EQ(monitor.SilenceOf(1), seconds(5));  // silence still counts
  clock.Advance(seconds(5) + std::chrono::milliseconds(1));
  EXPECT_EQ(monitor.Turn(), seconds(5) + std::chrono::milliseconds(1));
  EXPECT_EQ(monitor.SilenceOf(1), Duration::zero());
}

TEST(HeartbeatTest, ALoopThatKeepsTurningStillLosesASilentPeer) {
  testing::FakeClock clock;
  HeartbeatMonitor monitor(&clock, {seconds(1), seconds(2)});
  monitor.Add(1);
  monitor.Turn();
  TurnFor(&clock, &monitor, seconds(2));
  EXPECT_TRUE(monitor.Expired().empty());
  TurnFor(&clock, &monitor, std::chrono::milliseconds(100));
  EXPECT_EQ(monitor.Expired(), std::vector<int>{1});
}

}  // namespace
}  // namespace trainrun
