#include "runtime/run/restart_policy.h"

#include <gtest/gtest.h>

namespace trainrun {
namespace {

TEST(RestartPolicyTest, NoRestartsByDefault) {
  RestartPolicy policy;
  EXPECT_FALSE(policy.enabled());
  RestartDecision d = DecideRestart(policy, 1, RunOutcome::kRankFailed, 3);
  EXPECT_FALSE(d.restart);
  EXPECT_EQ(d.why, "not restarted: maxRestarts is 0");
  EXPECT_TRUE(DecideRestart(policy, 1, RunOutcome::kSucceeded, 0).why.empty());
}

TEST(RestartPolicyTest, RankFailuresAreRetriedUntilTheRestartsAreUsed) {
  RestartPolicy policy;
  policy.max_restarts = 2;
  RestartDecision first = DecideRestart(policy, 1, RunOutcome::kRankFailed, 3);
  EXPECT_TRUE(first.restart);
  EXPECT_EQ(first.why, "restart 1 of 2 in 1 s");
  EXPECT_TRUE(DecideRestart(policy, 2, RunOutcome::kRankFailed, 137).restart);
  RestartDecision last = DecideRestart(policy, 3, RunOutcome::kRankFailed, 3);
  EXPECT_FALSE(last.restart);
  EXPECT_EQ(last.why, "not restarted: all 2 restart(s) of maxRestarts used");
}

TEST(RestartPolicyTest, CodesThatMeanABadJobAreNotRetried) {
  RestartPolicy policy;
  policy.max_restarts = 5;
  for (int code : {2, 64, 65, 126, 127}) {
    RestartDecision d = DecideRestart(policy, 1, RunOutcome::kRankFailed, code);
    EXPECT_FALSE(d.restart) << code;
    EXPECT_NE(d.why.find("means a bad job"), std::string::npos) << d.why;
  }
  for (int code : {1, 3, 66, 137, 139, 143, 255}) EXPECT_TRUE(policy.RetriesExitCode(code)) << code;
  EXPECT_FALSE(policy.RetriesExitCode(0));
}

TEST(RestartPolicyTest, RetryExitCodesNameTheOnlyCodesRetried) {
  RestartPolicy policy;
  policy.max_restarts = 1;
  policy.retry_exit_codes = std::vector<int>{137, 65};
  EXPECT_TRUE(DecideRestart(policy, 1, RunOutcome::kRankFailed, 137).restart);
  EXPECT_TRUE(DecideRestart(policy, 1, RunOutcome::kRankFailed, 65).restart);
  RestartDecision d = DecideRestart(policy, 1, RunOutcome::kRankFailed, 1);
  EXPECT_FALSE(d.restart);
  EXPECT_EQ(d.why, "not restarted: exit code 1 is not in restarts.retryExitCodes");
}

TEST(RestartPolicyTest, OnlyARanksFailureIsRetried) {
  RestartPolicy policy;
  policy.max_restarts = 3;
  for (RunOutcome outcome : {RunOutcome::kCanceled, RunOutcome::kTimedOut, RunOutcome::kStopped}) {
    RestartDecision d = DecideRestart(policy, 1, outcome, 143);
    EXPECT_FALSE(d.restart);
    EXPECT_NE(d.why.find("only a rank's failure is retried"), std::string::npos) << d.why;
  }
  EXPECT_FALSE(DecideRestart(policy, 1, RunOutcome::kSucceeded, 0).restart);
}

TEST(RestartPolicyTest, BackoffDoublesUpToItsMaximum) {
  RestartPolicy policy;
  policy.max_restarts = 10;
  policy.backoff_seconds = 0.5;
  policy.backoff_max_seconds = 3;
  EXPECT_EQ(ToSeconds(policy.BackoffBefore(2)), 0.5);
  EXPECT_EQ(ToSeconds(policy.BackoffBefore(3)), 1.0);
  EXPECT_EQ(ToSeconds(policy.BackoffBefore(4)), 2.0);
  EXPECT_EQ(ToSeconds(policy.BackoffBefore(5)), 3.0);
  EXPECT_EQ(ToSeconds(policy.BackoffBefore(1000)), 3.0);
  EXPECT_EQ(ToSeconds(DecideRestart(policy, 2, RunOutcome::kRankFailed, 1).wait), 1.0);
  policy.backoff_seconds = 0;
  EXPECT_EQ(ToSeconds(policy.BackoffBefore(7)), 0.0);
}

}  // namespace
}  // namespace trainrun
