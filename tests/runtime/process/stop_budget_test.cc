// The stop budget: reading Slurm's KillWait (scontrol's output, slurm.conf, a fake
// scontrol on disk, one that hangs), telling a container, which source wins, and
// how the grace period and the upload margins are cut from the budget.
#include "runtime/process/stop_budget.h"

#include <sys/stat.h>

#include <map>

#include <gtest/gtest.h>

#include "tests/test_util.h"

namespace trainrun {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using testing::TempDir;
using testing::WriteFile;

// An excerpt of Slurm 22.05's `scontrol show config`.
constexpr const char* kScontrolOutput = R"(Configuration data as of 2026-11-26T06:10:00
AccountingStorageBackupHost = (null)
JobCompType             = None
KillOnBadExit           = 0
KillWait                = 45 sec
UnkillableStepProgram   = (null)
UnkillableStepTimeout   = 60 sec
)";

EnvLookup MapEnv(std::map<std::string, std::string> vars) {
  auto shared = std::make_shared<std::map<std::string, std::string>>(std::move(vars));
  return [shared](const char* name) -> const char* {
    auto it = shared->find(name);
    return it == shared->end() ? nullptr : it->second.c_str();
  };
}

std::string Script(const TempDir& dir, const std::string& name, const std::string& body) {
  std::string path = dir / name;
  WriteFile(path, "#!/bin/sh\n" + body + "\n");
  chmod(path.c_str(), 0755);
  return path;
}

TEST(StopBudgetTest, ReadsKillWaitFromScontrolShowConfig) {
  EXPECT_EQ(ParseScontrolKillWait(kScontrolOutput), 45);
  EXPECT_EQ(ParseScontrolKillWait("KillWait = 0 sec\n"), 0);
  EXPECT_EQ(ParseScontrolKillWait("UnkillableStepTimeout = 60 sec\n"), std::nullopt);
  EXPECT_EQ(ParseScontrolKillWait("KillWait = (null)\n"), std::nullopt);
  EXPECT_EQ(ParseScontrolKillWait(""), std::nullopt);
}

TEST(StopBudgetTest, ReadsKillWaitFromSlurmConf) {
  EXPECT_EQ(ParseSlurmConfKillWait("ClusterName=c\nKillWait=12\n"), 12);
  // Keys are case-insensitive; several pairs may share a line; the last one wins.
  EXPECT_EQ(ParseSlurmConfKillWait("SlurmctldPort=6817 killwait=20 MinJobAge=300\n"), 20);
  EXPECT_EQ(ParseSlurmConfKillWait("KillWait=5\nKILLWAIT=50\n"), 50);
  // A comment is not a setting.
  EXPECT_EQ(ParseSlurmConfKillWait("#KillWait=5\nClusterName=c # KillWait=7\n"), std::nullopt);
  EXPECT_EQ(ParseSlurmConfKillWait("UnkillableStepTimeout=120\n"), std::nullopt);
}

TEST(StopBudgetTest, TellsAContainerByItsMarkersOrPidOne) {
  TempDir root;
  EnvLookup empty = MapEnv({});
  EXPECT_EQ(DetectContainer(root.path(), 4242, empty), "");
  EXPECT_EQ(DetectContainer(root.path(), 1, empty), "trainrun is PID 1");
  EXPECT_EQ(DetectContainer(root.path(), 4242, MapEnv({{"container", "podman"}})),
            "container=podman");
  WriteFile(root / "run/.containerenv", "engine=\"podman-4.3.1\"\n");
  EXPECT_EQ(DetectContainer(root.path(), 4242, empty), "/run/.containerenv");
  WriteFile(root / ".dockerenv", "");
  EXPECT_EQ(DetectContainer(root.path(), 4242, empty), "/.dockerenv");
}

TEST(StopBudgetTest, TheFlagWinsThenSlurmThenKubernetesThenAContainer) {
  StopBudgetFacts facts;
  EXPECT_FALSE(DecideStopBudget(facts).budget);
  facts.container = "/.dockerenv";
  EXPECT_EQ(DecideStopBudget(facts).budget, Duration(seconds(10)));
  facts.kubernetes = true;
  EXPECT_EQ(DecideStopBudget(facts).budget, Duration(seconds(30)));
  facts.slurm = true;
  EXPECT_EQ(DecideStopBudget(facts).budget, Duration(seconds(30)));  // KillWait unknown
  facts.kill_wait_seconds = 90;
  facts.kill_wait_from = "scontrol show config";
  StopBudget slurm = DecideStopBudget(facts);
  EXPECT_EQ(slurm.budget, Duration(seconds(90)));
  EXPECT_NE(slurm.source.find("scontrol show config"), std::string::npos) << slurm.source;
  facts.flag_seconds = 7.5;
  EXPECT_EQ(DecideStopBudget(facts).budget, Duration(milliseconds(7500)));
  facts.flag_seconds = 0;  // "nothing will SIGKILL trainrun"
  EXPECT_FALSE(DecideStopBudget(facts).budget);
}

TEST(StopBudgetTest, UnderSlurmAFakeScontrolOnDiskIsAsked) {
  TempDir dir;
  StopBudgetProbe probe;
  probe.root = dir.path();
  probe.pid = 4242;
  probe.env = MapEnv({{"SLURM_JOB_ID", "77"}});
  probe.scontrol = Script(dir, "scontrol",
                          "[ \"$1 $2\" = 'show config' ] || exit 2\ncat <<'EOF'\n" +
                              std::string(kScontrolOutput) + "EOF");
  StopBudget budget = ProbeStopBudget(probe);
  EXPECT_EQ(budget.budget, Duration(seconds(45))) << budget.source;
  // Outside Slurm nothing asks scontrol.
  probe.env = MapEnv({});
  EXPECT_FALSE(ProbeStopBudget(probe).budget);
}

TEST(StopBudgetTest, WithoutScontrolTheSlurmConfIsRead) {
  TempDir dir;
  StopBudgetProbe probe;
  probe.root = dir.path();
  probe.pid = 4242;
  probe.scontrol = dir / "no-such-scontrol";
  WriteFile(dir / "elsewhere.conf", "ClusterName=c\nKillWait=14\n");
  probe.env = MapEnv({{"SLURM_JOB_ID", "77"}, {"SLURM_CONF", dir / "elsewhere.conf"}});
  EXPECT_EQ(ProbeStopBudget(probe).budget, Duration(seconds(14)));
  // The default path (under the test's root); a slurm.conf without KillWait means 30 s.
  WriteFile(dir / "etc/slurm/slurm.conf", "ClusterName=c\n");
  probe.env = MapEnv({{"SLURM_JOB_ID", "77"}});
  StopBudget budget = ProbeStopBudget(probe);
  EXPECT_EQ(budget.budget, Duration(seconds(30)));
  EXPECT_NE(budget.source.find("etc/slurm/slurm.conf"), std::string::npos) << budget.source;
}

TEST(StopBudgetTest, AHungScontrolIsKilledAndTheConfUsedInstead) {
  TempDir dir;
  StopBudgetProbe probe;
  probe.root = dir.path();
  probe.pid = 4242;
  // It answers nothing and keeps its output open; exec, so the kill reaches the sleep.
  probe.scontrol = Script(dir, "scontrol", "exec sleep 600");
  probe.scontrol_timeout = milliseconds(200);
  WriteFile(dir / "etc/slurm/slurm.conf", "KillWait=21\n");
  probe.env = MapEnv({{"SLURM_JOB_ID", "77"}});
  EXPECT_EQ(ProbeStopBudget(probe).budget, Duration(seconds(21)));
}

TEST(StopBudgetTest, RunBoundedCommandReturnsTheOutputOrSaysWhy) {
  Result<std::string> echoed = RunBoundedCommand({"/bin/echo", "hello"}, seconds(30));
  ASSERT_TRUE(echoed.ok()) << echoed.status().message();
  EXPECT_EQ(*echoed, "hello\n");
  EXPECT_EQ(RunBoundedCommand({"/nonexistent/scontrol"}, seconds(30)).status().code(),
            StatusCode::kNotFound);
  Result<std::string> hung = RunBoundedCommand({"/bin/sleep", "600"}, milliseconds(100));
  EXPECT_EQ(hung.status().code(), StatusCode::kUnavailable);
}

TEST(StopBudgetTest, DockersTenSecondsLeaveFiveForTheRanksAndFiveToFinalize) {
  StopTiming t = DeriveStopTiming(seconds(10), std::nullopt, std::nullopt);
  EXPECT_TRUE(t.grace_from_budget);
  EXPECT_EQ(t.grace_period, Duration(seconds(5)));
  EXPECT_EQ(t.uploads_margin, Duration(seconds(2)));
  EXPECT_EQ(t.head_margin, Duration(seconds(1)));
  EXPECT_EQ(t.unkillable_timeout, Duration(seconds(1)));
}

TEST(StopBudgetTest, SlurmsThirtySecondsLeaveTwentyForTheRanks) {
  StopTiming t = DeriveStopTiming(seconds(30), std::nullopt, std::nullopt);
  EXPECT_EQ(t.grace_period, Duration(seconds(20)));
  EXPECT_EQ(t.uploads_margin, Duration(seconds(4)));
  EXPECT_EQ(t.head_margin, Duration(seconds(2)));
  EXPECT_EQ(t.unkillable_timeout, Duration(seconds(2)));
  // A long budget keeps a third for Finalizing.
  StopTiming hour = DeriveStopTiming(seconds(3600), std::nullopt, std::nullopt);
  EXPECT_EQ(hour.grace_period, Duration(seconds(2400)));
  EXPECT_EQ(hour.unkillable_timeout, Duration(seconds(60)));  // never above its default
  // A tiny one still splits.
  StopTiming two = DeriveStopTiming(seconds(2), std::nullopt, std::nullopt);
  EXPECT_EQ(two.grace_period, Duration(seconds(1)));
  EXPECT_GT(two.head_margin, Duration(0));
  EXPECT_GT(two.uploads_margin, two.head_margin);
}

TEST(StopBudgetTest, GivenValuesStandAndNoBudgetKeepsTheDefaults) {
  StopTiming given = DeriveStopTiming(seconds(10), seconds(8), seconds(3));
  EXPECT_FALSE(given.grace_from_budget);
  EXPECT_EQ(given.grace_period, Duration(seconds(8)));
  EXPECT_EQ(given.unkillable_timeout, Duration(seconds(3)));
  EXPECT_EQ(given.uploads_margin, Duration(seconds(2)));  // the budget still bounds uploads
  StopTiming none = DeriveStopTiming(std::nullopt, std::nullopt, std::nullopt);
  EXPECT_FALSE(none.budget);
  EXPECT_EQ(none.grace_period, Duration(seconds(30)));
  EXPECT_EQ(none.unkillable_timeout, Duration(seconds(60)));
  EXPECT_EQ(none.uploads_margin, Duration(0));
}

}  // namespace
}  // namespace trainrun
