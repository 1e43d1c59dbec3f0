// The run lease: its arithmetic, the verdict Lost, and the keeper's renewals, all
// on a fake clock (nothing here sleeps).
#include "runtime/run/run_lease.h"

#include <gtest/gtest.h>

#include "runtime/store/file_store.h"
#include "tests/fakes/fake_clock.h"
#include "tests/test_util.h"

namespace trainrun {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

RunRecord Record(RunStatus status) {
  RunRecord r;
  r.run_id = "r1";
  r.experiment = "exp";
  r.SetStatus(RunStatus::kPreparing, WallTime(seconds(1'800'000'000)));
  if (status != RunStatus::kPreparing) r.SetStatus(status, WallTime(seconds(1'800'000'001)));
  return r;
}

RunLease Base() {
  RunLease base;
  base.host = "node-a";
  base.pid = 4242;
  base.run_directory = "/tmp/trainrun/exp/r1";
  return base;
}

TEST(RunLeaseTest, ALeaseHoldsFourIntervalsPastItsRenewal) {
  const WallTime now(seconds(1'800'000'000));
  RunLease lease = RenewedLease(Base(), now, seconds(15), 3);
  EXPECT_EQ(lease.renewed, now);
  EXPECT_EQ(lease.expires, now + seconds(60));
  EXPECT_EQ(lease.interval_seconds, 15);
  EXPECT_EQ(lease.renewals, 3u);
  EXPECT_EQ(lease.host, "node-a");
  EXPECT_EQ(lease.pid, 4242);
  EXPECT_EQ(lease.run_directory, "/tmp/trainrun/exp/r1");
}

TEST(RunLeaseTest, LostOnlyPastExpiryAndTheClockSkewMargin) {
  const WallTime renewed(seconds(1'800'000'000));
  const RunLease lease = RenewedLease(Base(), renewed, seconds(15), 1);  // expires +60 s
  const RunRecord running = Record(RunStatus::kRunning);
  const Duration margin = seconds(30);

  EXPECT_FALSE(JudgeLease(running, lease, renewed + seconds(60), margin));
  EXPECT_FALSE(JudgeLease(running, lease, renewed + seconds(90), margin)) << "margin inclusive";
  std::optional<LostRun> lost =
      JudgeLease(running, lease, renewed + seconds(90) + milliseconds(1), margin);
  ASSERT_TRUE(lost);
  EXPECT_EQ(lost->since, renewed + seconds(60));
  EXPECT_EQ(lost->last_renewed, renewed);
  EXPECT_EQ(lost->last_status, RunStatus::kRunning);
  EXPECT_EQ(lost->host, "node-a");
  EXPECT_EQ(lost->pid, 4242);
  EXPECT_EQ(lost->run_directory, "/tmp/trainrun/exp/r1");
  // A reader whose clock is behind the writer's never calls it lost early.
  EXPECT_FALSE(JudgeLease(running, lease, renewed - seconds(3600), margin));
  // No margin: lost the moment the lease is past.
  EXPECT_TRUE(JudgeLease(running, lease, renewed + seconds(60) + milliseconds(1), Duration{}));
  // Preparing and Finalizing are not final either.
  EXPECT_TRUE(JudgeLease(Record(RunStatus::kPreparing), lease, renewed + seconds(91), margin));
  EXPECT_TRUE(JudgeLease(Record(RunStatus::kFinalizing), lease, renewed + seconds(91), margin));
}

TEST(RunLeaseTest, AFinalRecordOrNoLeaseIsNeverLost) {
  const WallTime renewed(seconds(1'800'000'000));
  const RunLease lease = RenewedLease(Base(), renewed, seconds(1), 1);
  const WallTime much_later = renewed + seconds(86400);
  for (RunStatus s : {RunStatus::kCompleted, RunStatus::kFailed, RunStatus::kCanceled}) {
    EXPECT_FALSE(JudgeLease(Record(s), lease, much_later, seconds(30))) << RunStatusName(s);
  }
  // A record written by a trainrun that keeps no lease (older versions).
  EXPECT_FALSE(JudgeLease(Record(RunStatus::kRunning), std::nullopt, much_later, seconds(30)));
}

TEST(RunLeaseTest, ReadsWhatItWritesAndNoLeaseIsNotAnError) {
  testing::TempDir dir;
  FileStore store(dir / "hist");
  const RunKey key{"exp", "r1"};
  Result<std::optional<RunLease>> none = ReadLease(&store, key);
  ASSERT_TRUE(none.ok()) << none.status().message();
  EXPECT_FALSE(*none);

  const RunLease lease = RenewedLease(Base(), WallTime(seconds(1'800'000'000)), seconds(2), 7);
  ASSERT_TRUE(WriteLease(&store, key, lease).ok());
  Result<std::optional<RunLease>> read = ReadLease(&store, key);
  ASSERT_TRUE(read.ok()) << read.status().message();
  ASSERT_TRUE(*read);
  EXPECT_EQ((*read)->expires, lease.expires);
  EXPECT_EQ((*read)->renewed, lease.renewed);
  EXPECT_EQ((*read)->renewals, 7u);
  EXPECT_EQ((*read)->run_directory, lease.run_directory);

  ASSERT_TRUE(store.PutBytes("exp/r1/lease.json", "{\"renewedAt\": 3}").ok());
  Result<std::optional<RunLease>> bad = ReadLease(&store, key);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("exp/r1/lease.json"), std::string::npos)
      << bad.status().message();
}

class LeaseKeeperTest : public ::testing::Test {
 protected:
  std::optional<RunLease> Stored() {
    Result<std::optional<RunLease>> lease = ReadLease(&store_, key_);
    EXPECT_TRUE(lease.ok()) << lease.status().message();
    return lease.ok() ? *lease : std::nullopt;
  }
  testing::TempDir dir_;
  FileStore store_{dir_ / "hist"};
  const RunKey key_{"exp", "r1"};
  testing::FakeClock clock_;
  WarningCollector reporter_;
};

// The keeper's thread sleeps, in real time, for what the clock says is left of
// the interval: an hour here, so only the test's RenewIfDue() calls renew, at the
// times the fake clock says.
constexpr auto kHour = std::chrono::hours(1);

TEST_F(LeaseKeeperTest, RenewsOnceAnIntervalByTheClock) {
  LeaseKeeper keeper(&store_, key_, Base(), kHour, &reporter_, &clock_);
  ASSERT_TRUE(keeper.Start().ok());
  std::optional<RunLease> first = Stored();
  ASSERT_TRUE(first);
  EXPECT_EQ(first->renewals, 1u);
  EXPECT_EQ(first->renewed, clock_.WallNow());
  EXPECT_EQ(first->expires, clock_.WallNow() + 4 * kHour);

  clock_.Advance(kHour - seconds(1));
  EXPECT_FALSE(keeper.RenewIfDue());
  EXPECT_EQ(Stored()->renewals, 1u);
  clock_.Advance(seconds(1));
  EXPECT_TRUE(keeper.RenewIfDue());
  EXPECT_FALSE(keeper.RenewIfDue()) << "one renewal per interval";
  std::optional<RunLease> second = Stored();
  ASSERT_TRUE(second);
  EXPECT_EQ(second->renewals, 2u);
  EXPECT_EQ(second->expires, clock_.WallNow() + 4 * kHour);
  EXPECT_EQ(keeper.next_due(), clock_.Now() + kHour);

  keeper.Stop();
  clock_.Advance(10 * kHour);
  EXPECT_FALSE(keeper.RenewIfDue()) << "no renewal after Stop()";
  EXPECT_EQ(Stored()->renewals, 2u);
  ASSERT_TRUE(keeper.Release().ok());
  EXPECT_FALSE(Stored());
  EXPECT_TRUE(reporter_.warnings().empty());
}

TEST_F(LeaseKeeperTest, AStoreOutOfReachIsWarnedOnceAndRetriedEachInterval) {
  // A history root below a regular file: every write fails.
  testing::WriteFile(dir_ / "file", "x");
  FileStore broken(dir_ / "file/hist");
  LeaseKeeper keeper(&broken, key_, Base(), kHour, &reporter_, &clock_);
  EXPECT_FALSE(keeper.Start().ok());
  EXPECT_EQ(keeper.renewals(), 0u);
  clock_.Advance(kHour);
  EXPECT_TRUE(keeper.RenewIfDue());
  clock_.Advance(kHour);
  EXPECT_TRUE(keeper.RenewIfDue());
  ASSERT_EQ(reporter_.warnings().size(), 1u);
  EXPECT_NE(reporter_.warnings()[0].find("could not be renewed"), std::string::npos);
  EXPECT_NE(reporter_.warnings()[0].find("every 3600 s"), std::string::npos);
  EXPECT_NE(reporter_.warnings()[0].find("for 14400 s"), std::string::npos);
  // A failed attempt still waits a whole interval before the next.
  clock_.Advance(kHour - seconds(1));
  EXPECT_FALSE(keeper.RenewIfDue());
}

}  // namespace
}  // namespace trainrun
