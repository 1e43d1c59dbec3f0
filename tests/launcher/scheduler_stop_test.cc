// A stop from a scheduler or container engine, end to end: trainrun gets SIGTERM,
// and SIGKILL when the stop budget has passed, exactly as `podman stop` (10 s) or
// Slurm's scancel (KillWait) do it. With a rank that ignores SIGTERM the run must
// still be recorded Canceled with its outputs in history. The budget arithmetic and
// the reading of KillWait are unit-tested in process_test.StopBudgetTest.
#include <signal.h>
#include <sys/stat.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <memory>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/launcher/trainrun_runner.h"

namespace trainrun::testing {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

class SchedulerStopTest : public ::testing::Test {
 protected:
  // Two ranks that write outputs/rank<R>.txt first; rank 0 ignores SIGTERM.
  std::string Job() {
    json job = {{"command", json::array({RankHelper(), "--pid-dir", dir_.path(), "--write-output",
                                         "--ignore-term-rank", "0"})},
                {"sourceDirectory", "src"},
                {"experimentName", "tests"},
                {"runId", "stop1"},
                {"processCountPerNode", 2}};
    WriteFile(dir_ / "src/README", "source\n");
    WriteFile(dir_ / "job.json", job.dump(2));
    return dir_ / "job.json";
  }
  std::vector<std::string> Argv(std::vector<std::string> more = {}) {
    std::vector<std::string> argv = {TrainrunBinary(), "run",       Job(),        "--history",
                                     history(),        "--workdir", dir_ / "work"};
    argv.insert(argv.end(), more.begin(), more.end());
    return argv;
  }
  bool RanksStarted() {
    return !ReadFile(dir_ / "0.pid").empty() && !ReadFile(dir_ / "1.pid").empty();
  }
  // A fake `scontrol` in its own folder, for PATH: `show config` says KillWait.
  std::string FakeScontrol(int kill_wait) {
    std::string bin = dir_ / "bin";
    WriteFile(bin + "/scontrol",
              "#!/bin/sh\n[ \"$1 $2\" = 'show config' ] || exit 1\n"
              "echo 'KillOnBadExit           = 0'\n"
              "echo 'KillWait                = " +
                  std::to_string(kill_wait) + " sec'\n");
    chmod((bin + "/scontrol").c_str(), 0755);
    return bin;
  }
  std::string history() const { return dir_ / "history"; }
  std::string RunDir() const { return history() + "/tests/stop1"; }
  json Record() const { return json::parse(ReadFile(RunDir() + "/run.json")); }

  TempDir dir_;
};

TEST_F(SchedulerStopTest, PodmanStopsDefaultTenSecondsLeaveTheRunCanceledWithItsOutputs) {
  // podman stop: SIGTERM, 10 s, SIGKILL. The budget is given as a container's
  // would be detected (/.dockerenv, /run/.containerenv or PID 1).
  TrainrunProcess trainrun(Argv(), {"TRAINRUN_STOP_TIMEOUT=10"}, dir_.path());
  ASSERT_TRUE(WaitFor([&] { return RanksStarted(); }));
  Invocation r = trainrun.StopLikeAScheduler(std::chrono::seconds(10));
  // 137 would mean the SIGKILL came first: nothing recorded, nothing uploaded.
  EXPECT_EQ(r.exit_code, 143) << r.err;
  json rec = Record();
  EXPECT_EQ(rec["status"], "Canceled");
  EXPECT_EQ(rec["exitCode"], 143);
  EXPECT_EQ(ReadFile(RunDir() + "/outputs/rank0.txt"), "rank 0\n");
  EXPECT_EQ(ReadFile(RunDir() + "/outputs/rank1.txt"), "rank 1\n");
  EXPECT_TRUE(rec["uploadErrors"].empty()) << rec["uploadErrors"].dump();
  // Rank 0 ignored SIGTERM and was killed at the end of a grace period cut to fit.
  EXPECT_EQ(rec["ranks"][0]["signal"], SIGKILL);
  EXPECT_EQ(rec["details"]["stop"]["gracePeriodSeconds"], 5);
  EXPECT_EQ(rec["details"]["stop"]["stopTimeoutSeconds"], 10);
  const std::string log = ReadFile(RunDir() + "/system_logs/trainrun_node_0.log");
  EXPECT_NE(log.find("stop budget 10 s"), std::string::npos) << log;
}

TEST_F(SchedulerStopTest, ScancelWithAKillWaitReadFromScontrolLeavesTheRunCanceled) {
  // Slurm as scancel does it, KillWait from a fake scontrol: 12 s, so 8 s of grace.
  const std::string path = FakeScontrol(12) + ":" + std::getenv("PATH");
  TrainrunProcess trainrun(Argv(), {"SLURM_JOB_ID=4242", "PATH=" + path}, dir_.path());
  ASSERT_TRUE(WaitFor([&] { return RanksStarted(); }));
  Invocation r = trainrun.StopLikeAScheduler(std::chrono::seconds(12));
  EXPECT_EQ(r.exit_code, 143) << r.err;
  json rec = Record();
  EXPECT_EQ(rec["status"], "Canceled");
  EXPECT_EQ(ReadFile(RunDir() + "/outputs/rank0.txt"), "rank 0\n");
  EXPECT_EQ(rec["details"]["stop"]["stopTimeoutSeconds"], 12);
  EXPECT_EQ(rec["details"]["stop"]["gracePeriodSeconds"], 8);
  EXPECT_NE(rec["details"]["stop"]["stopTimeoutSource"].get<std::string>().find("scontrol"),
            std::string::npos);
}

TEST_F(SchedulerStopTest, TheDryRunSaysHowAStopFitsTheBudget) {
  auto dry = [&](std::vector<std::string> flags, std::vector<std::string> env) {
    std::vector<std::string> argv = Argv(flags);
    argv.push_back("--dry-run");
    TrainrunProcess trainrun(argv, env, dir_.path());
    Invocation r = trainrun.Wait();
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return r.out;
  };
  EXPECT_NE(dry({}, {"TRAINRUN_STOP_TIMEOUT=10"}).find("stop budget 10 s"), std::string::npos);
  EXPECT_NE(dry({}, {"TRAINRUN_STOP_TIMEOUT=10"}).find("grace period 5 s,"), std::string::npos);
  // An explicit grace period stands; 0 means nothing will SIGKILL trainrun.
  EXPECT_NE(dry({"--grace-period", "7"}, {"TRAINRUN_STOP_TIMEOUT=10"})
                .find("grace period 7 s (--grace-period)"),
            std::string::npos);
  EXPECT_NE(dry({"--stop-timeout", "0"}, {}).find("grace period 30 s (no stop budget"),
            std::string::npos);
}

}  // namespace
}  // namespace trainrun::testing
