#include "runtime/run/run_record.h"

#include <gtest/gtest.h>

namespace trainrun {
namespace {

TEST(RunRecordTest, StatusesOpenAndClosePhases) {
  RunRecord r;
  WallTime t0 = WallTime(std::chrono::seconds(1'800'000'000));
  r.SetStatus(RunStatus::kPreparing, t0);
  r.SetStatus(RunStatus::kRunning, t0 + std::chrono::seconds(2));
  r.SetStatus(RunStatus::kFinalizing, t0 + std::chrono::seconds(12));
  r.SetStatus(RunStatus::kCompleted, t0 + std::chrono::milliseconds(12500));
  ASSERT_EQ(r.phases.size(), 3u);
  EXPECT_DOUBLE_EQ(r.phases[0].seconds, 2.0);
  EXPECT_DOUBLE_EQ(r.phases[1].seconds, 10.0);
  EXPECT_DOUBLE_EQ(r.phases[2].seconds, 0.5);
  EXPECT_EQ(r.status_history.size(), 4u);
  EXPECT_EQ(*r.end_time(), t0 + std::chrono::milliseconds(12500));
}

TEST(RunRecordTest, JsonRoundTrip) {
  RunRecord r;
  r.run_id = "r1";
  r.experiment = "e";
  WallTime t0 = WallTime(std::chrono::milliseconds(1'800'000'000'123));
  r.SetStatus(RunStatus::kPreparing, t0);
  r.SetStatus(RunStatus::kFailed, t0 + std::chrono::seconds(1));
  r.exit_code = 3;
  r.outcome = "rank failed";
  FailureRecord f;
  f.rank = 2;
  f.exit_code = 3;
  f.reason = "rank 2 exited with exit code 3";
  f.stderr_tail = {"Traceback", "ValueError: boom"};
  r.failure = f;
  r.nodes.push_back({0, "host", 4, 42, "/tmp/x"});
  r.ranks.push_back({2, 0, 2, 100, 3, 0, 1.5, false});
  r.skipped_symlinks.push_back({"outputs/link", "/etc/passwd"});
  r.job = {{"script", "train.py"}};

  nlohmann::json j = r.ToJson();
  EXPECT_EQ(j["status"], "Failed");
  EXPECT_EQ(j["startTime"], "2027-01-15T08:00:00.123Z");
  Result<RunRecord> back = RunRecord::FromJson(j);
  ASSERT_TRUE(back.ok()) << back.status().message();
  EXPECT_EQ(back->ToJson(), j);
}

TEST(RunRecordTest, AttemptsRoundTripAndAreLeftOutWithoutRestarts) {
  RunRecord r;
  r.run_id = "r1";
  WallTime t0 = WallTime(std::chrono::milliseconds(1'800'000'000'123));
  r.SetStatus(RunStatus::kPreparing, t0);
  EXPECT_FALSE(r.ToJson().contains("attempts"));
  r.attempts.push_back({.attempt = 1,
                        .start = t0,
                        .end = t0 + std::chrono::seconds(2),
                        .outcome = "rank failed",
                        .exit_code = 3,
                        .failed_rank = 1,
                        .failed_node_rank = 0,
                        .reason = "rank 1 exited with exit code 3",
                        .next = "restart 1 of 2 in 1 s"});
  AttemptRecord running;
  running.attempt = 2;
  running.start = t0 + std::chrono::seconds(3);
  r.attempts.push_back(running);
  nlohmann::json j = r.ToJson();
  ASSERT_EQ(j["attempts"].size(), 2u);
  EXPECT_EQ(j["attempts"][0]["failedRank"], 1);
  EXPECT_EQ(j["attempts"][0]["end"], "2027-01-15T08:00:02.123Z");
  EXPECT_FALSE(j["attempts"][1].contains("end")) << "attempt 2 still runs";
  EXPECT_FALSE(j["attempts"][1].contains("exitCode"));
  Result<RunRecord> back = RunRecord::FromJson(j);
  ASSERT_TRUE(back.ok()) << back.status().message();
  EXPECT_EQ(back->ToJson(), j);
}

TEST(RunRecordTest, RejectsGarbage) {
  EXPECT_FALSE(RunRecord::FromJson(nlohmann::json::array()).ok());
  EXPECT_FALSE(RunRecord::FromJson({{"status", "Exploded"}}).ok());
}

}  // namespace
}  // namespace trainrun
