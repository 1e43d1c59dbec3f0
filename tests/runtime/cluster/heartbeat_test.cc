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

TEST(HeartbeatTest, TheSendIntervalCanDifferFromTheOptions) {
  testing::FakeClock clock;
  HeartbeatMonitor monitor(&clock, {seconds(1), seconds(10)});
  EXPECT_EQ(monitor.send_interval(), seconds(1));
  monitor.set_send_interval(std::chrono::milliseconds(2500));
  EXPECT_TRUE(monitor.SendDue());
  clock.Advance(seconds(2));
  EXPECT_FALSE(monitor.SendDue());
  clock.Advance(std::chrono::milliseconds(500));
  EXPECT_TRUE(monitor.SendDue());
  // Silence still expires at the timeout, whatever the send interval.
  monitor.Add(1);
  clock.Advance(seconds(10) + std::chrono::milliseconds(1));
  EXPECT_EQ(monitor.Expired(), std::vector<int>{1});
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

// The monitor keeps its peers in order of silence (so the head's cost per
// heartbeat does not grow with the node count): a peer heard from, re-added or
// removed must leave that order right, and the expired come back ascending.
TEST(HeartbeatTest, ManyPeersExpireInAscendingOrderWhateverOrderTheyFellSilent) {
  testing::FakeClock clock;
  HeartbeatMonitor monitor(&clock, {seconds(1), seconds(10)});
  for (int peer = 100; peer > 0; --peer) {
    monitor.Add(peer);
    clock.Advance(std::chrono::milliseconds(10));
  }
  // Every even peer is heard from later; peer 7 is added again, peer 9 removed.
  clock.Advance(seconds(5));
  for (int peer = 2; peer <= 100; peer += 2) monitor.Heard(peer);
  monitor.Add(7);
  monitor.Remove(9);
  clock.Advance(seconds(6));  // the odd ones (but 7 and 9) are silent for 11 s and more
  std::vector<int> odd;
  for (int peer = 1; peer < 100; peer += 2) {
    if (peer != 7 && peer != 9) odd.push_back(peer);
  }
  EXPECT_EQ(monitor.Expired(), odd);
  EXPECT_EQ(monitor.SilenceOf(7), seconds(6));
  EXPECT_EQ(monitor.SilenceOf(9), Duration::zero());
  clock.Advance(seconds(5));
  std::vector<int> rest;
  for (int peer = 2; peer <= 100; peer += 2) rest.push_back(peer);
  rest.insert(rest.begin() + 3, 7);  // 2, 4, 6, 7, 8, ...
  EXPECT_EQ(monitor.Expired(), rest);
  EXPECT_TRUE(monitor.Expired().empty());
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
