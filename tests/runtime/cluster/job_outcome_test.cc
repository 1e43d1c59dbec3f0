// How the head decides a multi-node job's exit code, status and root cause.
#include "runtime/cluster/job_outcome.h"

#include <gtest/gtest.h>

namespace trainrun {
namespace {

std::map<int, NodeReport> Nodes(int count) {
  std::map<int, NodeReport> nodes;
  for (int n = 0; n < count; ++n) {
    NodeReport& r = nodes[n];
    r.join.node_rank = n;
    r.join.host = "host" + std::to_string(n);
    r.result_in = true;
    r.done_in = true;
    r.result.ranks = {RankRecord{.rank = 2 * n + 1,
                                 .node_rank = n,
                                 .local_rank = 1,
                                 .pid = 0,
                                 .exit_code = 0,
                                 .signal = 0,
                                 .seconds = 1,
                                 .stopped_by_trainrun = false},
                      RankRecord{.rank = 2 * n,
                                 .node_rank = n,
                                 .local_rank = 0,
                                 .pid = 0,
                                 .exit_code = 0,
                                 .signal = 0,
                                 .seconds = 1,
                                 .stopped_by_trainrun = false}};
  }
  return nodes;
}

TEST(JobOutcomeTest, NothingFailedMeansCompletedWithEveryRankInOrder) {
  JobOutcome out = DecideJobOutcome({}, Nodes(3), JobOutcome{}, {});
  EXPECT_EQ(out.exit_code, 0);
  EXPECT_EQ(out.status, RunStatus::kCompleted);
  ASSERT_EQ(out.ranks.size(), 6u);
  for (int r = 0; r < 6; ++r) EXPECT_EQ(out.ranks[r].rank, r);
  EXPECT_FALSE(out.failure.has_value());
}

TEST(JobOutcomeTest, TheEarliestFailureIsTheRootCauseWhateverArrivedFirst) {
  std::map<int, NodeReport> nodes = Nodes(2);
  FailureRecord tail;
  tail.rank = 3;
  tail.node_rank = 1;
  tail.host = "host1";
  tail.exit_code = 7;
  tail.stderr_tail = {"boom"};
  nodes[1].result.failure = tail;
  // Rank 0's collateral failure reached the head first but happened later.
  std::vector<FailureEvent> events = {
      {2000, 1, "rank 0 on node 0 exited with exit code 1", 0, 0, false},
      {1990, 7, "rank 3 on node 1 exited with exit code 7", 1, 3, false}};
  JobOutcome out = DecideJobOutcome(events, nodes, JobOutcome{}, {});
  EXPECT_EQ(out.exit_code, 7);
  EXPECT_EQ(out.status, RunStatus::kFailed);
  EXPECT_EQ(out.outcome, "rank failed");
  ASSERT_TRUE(out.failure.has_value());
  EXPECT_EQ(out.failure->rank, 3);
  EXPECT_EQ(out.failure->stderr_tail, std::vector<std::string>{"boom"});
}

TEST(JobOutcomeTest, ALostNodeIs69AndNamed) {
  std::map<int, NodeReport> nodes = Nodes(3);
  nodes[2].lost = true;
  nodes[2].result_in = false;
  nodes[2].done_in = false;
  nodes[2].join.pid = 4242;
  JobOutcome out =
      DecideJobOutcome({{1000, 69, "node 2 (host2) was lost", 2, std::nullopt, true},
                        {1050, 1, "rank 0 on node 0 exited with exit code 1", 0, 0, false}},
                       nodes, JobOutcome{}, {});
  EXPECT_EQ(out.exit_code, 69);
  EXPECT_EQ(out.outcome, "node lost");
  ASSERT_TRUE(out.failure.has_value());
  EXPECT_EQ(out.failure->rank, -1);
  EXPECT_EQ(out.failure->node_rank, 2);
  EXPECT_EQ(out.failure->host, "host2");
  EXPECT_EQ(out.failure->pid, 4242);
  EXPECT_EQ(out.nodes[2]["lost"], true);
}

TEST(JobOutcomeTest, ACancelIsCanceled) {
  JobOutcome out = DecideJobOutcome({{5, 143, "canceled on node 1", 1, std::nullopt, false}},
                                    Nodes(2), JobOutcome{}, {});
  EXPECT_EQ(out.exit_code, 143);
  EXPECT_EQ(out.status, RunStatus::kCanceled);
  EXPECT_EQ(out.outcome, "canceled");
}

TEST(JobOutcomeTest, UnfinishedOrFailedUploadsElsewhereMake74) {
  std::map<int, NodeReport> nodes = Nodes(3);
  nodes[1].done.upload_errors = {"outputs/x -> ...: disk full"};
  nodes[2].done_in = false;
  JobOutcome out = DecideJobOutcome({}, nodes, JobOutcome{}, {});
  EXPECT_EQ(out.exit_code, 74);
  EXPECT_EQ(out.outcome, "upload failed");
  ASSERT_EQ(out.upload_errors.size(), 2u);
  EXPECT_EQ(out.upload_errors[0], "node 1: outputs/x -> ...: disk full");
  EXPECT_NE(out.upload_errors[1].find("node 2: node 2 (host2) did not finish its uploads in time"),
            std::string::npos);
  // A failed rank keeps its own code.
  JobOutcome failed = DecideJobOutcome(
      {{1, 3, "rank 1 on node 0 exited with exit code 3", 0, 1, false}}, nodes, JobOutcome{}, {});
  EXPECT_EQ(failed.exit_code, 3);
}

TEST(JobOutcomeTest, AFailureOnlyInANodesResultStillCounts) {
  std::map<int, NodeReport> nodes = Nodes(2);
  FailureRecord f;
  f.rank = 2;
  f.node_rank = 1;
  f.exit_code = 9;
  f.reason = "rank 2 exited with exit code 9";
  nodes[1].result.failure = f;
  nodes[1].result.failure_time_ms = 100;
  JobOutcome out = DecideJobOutcome({}, nodes, JobOutcome{}, {});
  EXPECT_EQ(out.exit_code, 9);
  EXPECT_EQ(out.failure->rank, 2);
}

}  // namespace
}  // namespace trainrun
