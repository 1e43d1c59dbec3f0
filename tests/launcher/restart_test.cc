// In-place restarts (README "In-place restarts") end to end with real processes:
// a rank that fails once resumes from its checkpoint file on attempt 2; restarts
// that run out end with the last attempt's code; a code that means a bad job is
// not retried; a cancel during the backoff ends the run at once; an MPI job on
// one node restarts, on several it is accepted (run by multinode_test).
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/launcher/local_run_test.h"
#include "tests/launcher/trainrun_runner.h"

namespace trainrun::testing {
namespace {

using nlohmann::json;

class RestartTest : public LocalRunTest {
 protected:
  RestartTest() : LocalRunTest("restart") {}
  // A job whose ranks run `script` with /bin/sh, in the run's working directory.
  std::string Job(const std::string& script, json extra = json::object()) {
    json job = {{"command", json::array({"/bin/sh", "-c", script})}};
    for (auto& [key, value] : extra.items()) job[key] = value;
    return WriteJob(job);
  }
};

TEST_F(RestartTest, AFailedRankResumesFromItsCheckpointOnAttempt2) {
  Invocation r = Run(
      Job(ResumingRankScript(1),
          {{"processCountPerNode", 2}, {"maxRestarts", 2}, {"restarts", {{"backoffSeconds", 0}}}}));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("attempt 1 failed (exit code 3): restart 1 of 2 in 0 s"), std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find("NCCL timeout"), std::string::npos) << "attempt 1's summary: " << r.err;
  EXPECT_NE(r.out.find("[rank 1] resumed from step 500 on attempt 2 (restart 1 of 2)"),
            std::string::npos)
      << r.out;

  // The log keeps both attempts, each after its marker.
  const std::string log = Log(1);
  const size_t first = log.find("=== trainrun: attempt 1 of at most 3 (");
  const size_t saved = log.find("saved step 500 on attempt 1");
  const size_t second = log.find("=== trainrun: attempt 2 of at most 3 (");
  const size_t resumed = log.find("resumed from step 500 on attempt 2");
  ASSERT_NE(first, std::string::npos) << log;
  ASSERT_NE(second, std::string::npos) << log;
  EXPECT_LT(first, saved) << log;
  EXPECT_LT(saved, second) << log;
  EXPECT_LT(second, resumed) << log;
  EXPECT_NE(Log(0).find("rank 0 on attempt 2"), std::string::npos) << Log(0);
  // `history logs` shows the same file.
  Invocation logs = RunTrainrun(
      {"history", "--history", history(), "--experiment", "tests", "logs", run_id_, "--rank", "1"},
      dir_.path());
  ASSERT_EQ(logs.exit_code, 0) << logs.err;
  EXPECT_NE(logs.out.find("=== trainrun: attempt 2 of at most 3"), std::string::npos) << logs.out;

  Invocation show = RunTrainrun(
      {"history", "--history", history(), "--experiment", "tests", "show", run_id_}, dir_.path());
  EXPECT_NE(show.out.find("attempt 1:   rank failed, exit code 3 (rank 1 exited with exit code 3); "
                          "restart 1 of 2 in 0 s\n"),
            std::string::npos)
      << show.out;
  EXPECT_NE(show.out.find("attempt 2:   succeeded, exit code 0\n"), std::string::npos) << show.out;

  json rec = Record();
  EXPECT_EQ(rec["status"], "Completed");
  EXPECT_EQ(rec["exitCode"], 0);
  EXPECT_FALSE(rec.contains("failure")) << "attempt 1's failure is in attempts[]: " << rec.dump(2);
  ASSERT_EQ(rec["attempts"].size(), 2u) << rec.dump(2);
  const json& a1 = rec["attempts"][0];
  EXPECT_EQ(a1["attempt"], 1);
  EXPECT_EQ(a1["outcome"], "rank failed");
  EXPECT_EQ(a1["exitCode"], 3);
  EXPECT_EQ(a1["failedRank"], 1);
  EXPECT_EQ(a1["failedNodeRank"], 0);
  EXPECT_EQ(a1["reason"], "rank 1 exited with exit code 3");
  EXPECT_EQ(a1["next"], "restart 1 of 2 in 0 s");
  EXPECT_LE(a1["start"].get<std::string>(), a1["end"].get<std::string>());
  const json& a2 = rec["attempts"][1];
  EXPECT_EQ(a2["attempt"], 2);
  EXPECT_EQ(a2["outcome"], "succeeded");
  EXPECT_EQ(a2["exitCode"], 0);
  EXPECT_FALSE(a2.contains("failedRank"));
  EXPECT_LE(a1["end"].get<std::string>(), a2["start"].get<std::string>());
}

TEST_F(RestartTest, ExhaustedRestartsEndWithTheLastAttemptsCode) {
  // Each attempt fails with its own code, so the final one shows which attempt it was.
  std::string job = Job(R"(echo "attempt $TRAINRUN_ATTEMPT"; exit $((10 + TRAINRUN_ATTEMPT)))",
                        {{"restarts", {{"backoffSeconds", 0.05}, {"backoffMaxSeconds", 0.1}}}});
  Invocation r = Run(job, {"--max-restarts", "2"});
  EXPECT_EQ(r.exit_code, 13) << r.err;
  EXPECT_NE(r.err.find("attempt 3 ended (exit code 13), not restarted: all 2 restart(s) of "
                       "maxRestarts used"),
            std::string::npos)
      << r.err;
  json rec = Record();
  EXPECT_EQ(rec["status"], "Failed");
  EXPECT_EQ(rec["exitCode"], 13);
  EXPECT_EQ(rec["failure"]["exitCode"], 13);
  ASSERT_EQ(rec["attempts"].size(), 3u) << rec.dump(2);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(rec["attempts"][i]["exitCode"], 11 + i);
  EXPECT_EQ(rec["attempts"][0]["next"], "restart 1 of 2 in 0.05 s");
  EXPECT_EQ(rec["attempts"][1]["next"], "restart 2 of 2 in 0.1 s");
  const std::string log = Log(0);
  for (int attempt = 1; attempt <= 3; ++attempt) {
    EXPECT_NE(log.find("=== trainrun: attempt " + std::to_string(attempt) + " of at most 3"),
              std::string::npos)
        << log;
    EXPECT_NE(log.find("attempt " + std::to_string(attempt) + "\n"), std::string::npos) << log;
  }
}

TEST_F(RestartTest, ACodeThatMeansABadJobIsNotRetried) {
  Invocation r = Run(Job("echo once >> runs.txt; exit 127", {{"maxRestarts", 3}}));
  EXPECT_EQ(r.exit_code, 127) << r.err;
  EXPECT_NE(r.err.find("not restarted: exit code 127 means a bad job"), std::string::npos) << r.err;
  json rec = Record();
  ASSERT_EQ(rec["attempts"].size(), 1u) << rec.dump(2);
  EXPECT_EQ(rec["failure"]["exitCode"], 127);
  EXPECT_EQ(ReadFile(workdir() + "/tests/" + run_id_ + "/wd/runs.txt"), "once\n");

  // retryExitCodes names the only codes retried.
  Invocation listed =
      Run(Job("exit 1", {{"maxRestarts", 3}, {"restarts", {{"retryExitCodes", {137}}}}}));
  EXPECT_EQ(listed.exit_code, 1) << listed.err;
  EXPECT_NE(listed.err.find("not restarted: exit code 1 is not in restarts.retryExitCodes"),
            std::string::npos)
      << listed.err;
  EXPECT_EQ(Record()["attempts"].size(), 1u);
}

TEST_F(RestartTest, ACancelDuringTheBackoffEndsTheRun) {
  std::string job = Job("exit 3", {{"maxRestarts", 1}, {"restarts", {{"backoffSeconds", 600}}}});
  std::vector<std::string> argv = {TrainrunBinary()};
  for (const std::string& a : Args(job)) argv.push_back(a);
  TrainrunProcess trainrun(argv, {}, dir_.path());
  ASSERT_TRUE(WaitFor([&] {
    return ReadFile(dir_ / "trainrun.err").find("restart 1 of 1 in 600 s") != std::string::npos;
  })) << ReadFile(dir_ / "trainrun.err");
  trainrun.Signal(SIGTERM);
  Invocation r = trainrun.Wait(std::chrono::seconds(60));
  EXPECT_EQ(r.exit_code, 143) << r.err;
  json rec = Record();
  EXPECT_EQ(rec["status"], "Canceled");
  EXPECT_NE(rec["stopReason"].get<std::string>().find("before attempt 2 started"),
            std::string::npos)
      << rec.dump(2);
  ASSERT_EQ(rec["attempts"].size(), 1u);
}

#ifdef MPI_ALLREDUCE_BINARY
// An MPI job on one node restarts as any other: mpirun is started again.
TEST_F(RestartTest, AnMpiJobOnOneNodeResumesOnAttempt2) {
  if (access("/usr/bin/mpirun", X_OK) != 0)
    GTEST_SKIP() << "needs mpirun (apt install openmpi-bin)";
  Invocation r = Run(Job(ResumingRankScript(1), {{"communicator", "Mpi"},
                                                 {"processCountPerNode", 2},
                                                 {"maxRestarts", 1},
                                                 {"restarts", {{"backoffSeconds", 0}}}}),
                     {"--grace-period", "3"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("[rank 1] resumed from step 500 on attempt 2 (restart 1 of 1)"),
            std::string::npos)
      << r.out;
  EXPECT_NE(Log(0).find("rank 0 on attempt 2"), std::string::npos) << Log(0);
  json rec = Record();
  ASSERT_EQ(rec["attempts"].size(), 2u) << rec.dump(2);
  EXPECT_EQ(rec["attempts"][0]["exitCode"], 3);
  EXPECT_EQ(rec["attempts"][1]["outcome"], "succeeded");
}
#endif

// Restarts of several nodes are multinode_test.MultinodeRestartTest's, an MPI job's
// multinode_test.MultinodeMpiRestartTest's; such a job is no longer refused (it was,
// with 65, before they were supported).
TEST_F(RestartTest, AnMpiJobOnSeveralNodesWithRestartsIsAccepted) {
  Invocation r =
      Run(Job("exit 0", {{"maxRestarts", 1}, {"communicator", "Mpi"}}),
          {"--nnodes", "2", "--node-rank", "0", "--master-addr", "127.0.0.1", "--dry-run"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("communicator:   Mpi"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("TORCHELASTIC_MAX_RESTARTS=1"), std::string::npos) << r.out;
}

}  // namespace
}  // namespace trainrun::testing
