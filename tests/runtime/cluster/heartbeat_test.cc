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

}  // namespace
}  // namespace trainrun
