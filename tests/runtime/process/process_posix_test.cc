// The real process seam with real processes: exits, signals, process groups, the
// exec error path, and orphans reaped as subreaper.
#include "runtime/process/process_posix.h"

#include <signal.h>
#include <unistd.h>

#include <sstream>

#include <gtest/gtest.h>

#include "runtime/process/supervisor.h"
#include "tests/test_util.h"

namespace trainrun {
namespace {

using std::chrono::seconds;

SpawnSpec Shell(const std::string& script) {
  SpawnSpec spec;
  spec.argv = {"/bin/sh", "-c", script};
  spec.env = {"PATH=/usr/bin:/bin"};
  return spec;
}

// Waits for the exit of `pid`, ignoring other events, for up to 10 s.
std::optional<ExitStatus> WaitExit(PosixProcessSet& set, int pid) {
  TimePoint deadline = SystemClock()->Now() + seconds(10);
  while (SystemClock()->Now() < deadline) {
    for (const ProcessEvent& e : set.Wait(deadline)) {
      if (e.kind == ProcessEvent::Kind::kExited && e.pid == pid) return e.status;
    }
  }
  return std::nullopt;
}

class PosixProcessSetTest : public ::testing::Test {
 protected:
  // Per test: the runner's main() puts the signal mask back after each one.
  void SetUp() override {
    BlockSupervisionSignals();
    auto set = PosixProcessSet::Create();
    ASSERT_TRUE(set.ok()) << set.status().message();
    set_ = std::move(set).value();
  }
  std::unique_ptr<PosixProcessSet> set_;
};

TEST_F(PosixProcessSetTest, ExitCodesAndSignals) {
  int a = *set_->Spawn(Shell("exit 3"));
  EXPECT_EQ(WaitExit(*set_, a)->code, 3);
  int b = *set_->Spawn(Shell("kill -SEGV $$"));
  ExitStatus s = *WaitExit(*set_, b);
  EXPECT_EQ(s.signal, SIGSEGV);
  EXPECT_EQ(s.ToExitCode(), 139);
  EXPECT_EQ(s.Describe(), "signal 11 (SIGSEGV)");
}

TEST_F(PosixProcessSetTest, EachChildLeadsItsOwnGroupAndSignalsReachTheWholeGroup) {
  testing::TempDir dir;
  // The child starts a grandchild in the same group and reports both pids.
  int pid = *set_->Spawn(Shell("sleep 60 & echo $! > " + (dir / "gc") + "; wait"));
  EXPECT_EQ(getpgid(pid), pid);
  std::string gc;
  for (int i = 0; i < 200 && gc.empty(); ++i) {
    usleep(10000);
    gc = testing::ReadFile(dir / "gc");
  }
  int grandchild = std::stoi(gc);
  EXPECT_EQ(getpgid(grandchild), pid);
  ASSERT_TRUE(set_->SignalGroup(pid, SIGTERM).ok());
  EXPECT_EQ(WaitExit(*set_, pid)->signal, SIGTERM);
  for (int i = 0; i < 200 && kill(grandchild, 0) == 0; ++i) {
    set_->Wait(SystemClock()->Now() + std::chrono::milliseconds(10));
  }
  EXPECT_NE(kill(grandchild, 0), 0) << "the grandchild survived its group's SIGTERM";
}

TEST_F(PosixProcessSetTest, MissingProgramIsNotFoundAndNotExecutableIsPermissionDenied) {
  SpawnSpec spec;
  spec.argv = {"definitely-not-a-program"};
  spec.env = {"PATH=/usr/bin:/bin"};
  Result<int> missing = set_->Spawn(spec);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find("definitely-not-a-program"), std::string::npos);

  testing::TempDir dir;
  testing::WriteFile(dir / "script.sh", "#!/bin/sh\n");
  spec.argv = {dir / "script.sh"};
  Result<int> denied = set_->Spawn(spec);
  ASSERT_FALSE(denied.ok());
  EXPECT_EQ(denied.status().code(), StatusCode::kPermissionDenied);

  spec.argv = {"/bin/true"};
  spec.cwd = dir / "no-such-dir";
  Result<int> bad_cwd = set_->Spawn(spec);
  ASSERT_FALSE(bad_cwd.ok());
  EXPECT_NE(bad_cwd.status().message().find("working directory"), std::string::npos);
}

TEST_F(PosixProcessSetTest, EnvironmentCwdAndAffinityAreApplied) {
  testing::TempDir dir;
  SpawnSpec spec =
      Shell("echo \"$FOO $(pwd)\" > out; grep Cpus_allowed_list /proc/self/status >> out");
  spec.env.push_back("FOO=bar");
  spec.cwd = dir.path();
  spec.cpus = {0};
  int pid = *set_->Spawn(spec);
  EXPECT_EQ(WaitExit(*set_, pid)->code, 0);
  std::string out = testing::ReadFile(dir / "out");
  EXPECT_NE(out.find("bar " + dir.path()), std::string::npos) << out;
  EXPECT_NE(out.find("Cpus_allowed_list:\t0\n"), std::string::npos) << out;
}

TEST_F(PosixProcessSetTest, InterruptWakesWait) {
  set_->Interrupt();
  std::vector<ProcessEvent> events = set_->Wait(SystemClock()->Now() + seconds(5));
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].kind, ProcessEvent::Kind::kInterrupt);
}

TEST_F(PosixProcessSetTest, SignalToTrainrunIsAnEvent) {
  kill(getpid(), SIGHUP);
  std::vector<ProcessEvent> events = set_->Wait(SystemClock()->Now() + seconds(5));
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].kind, ProcessEvent::Kind::kSignal);
  EXPECT_EQ(events[0].signal, SIGHUP);
}

TEST_F(PosixProcessSetTest, OrphansAreAdoptedReapedAndKilled) {
  testing::TempDir dir;
  // A daemon-style double fork: the grandchild leaves the group and is orphaned.
  int pid = *set_->Spawn(
      Shell("setsid sh -c 'echo $$ > " + (dir / "orphan") + "; exec sleep 60' & sleep 0.2"));
  EXPECT_EQ(WaitExit(*set_, pid)->code, 0);
  int orphan = std::stoi(testing::ReadFile(dir / "orphan"));
  EXPECT_EQ(kill(orphan, 0), 0);
  std::vector<int> killed = set_->KillAdoptedOrphans();
  EXPECT_NE(std::find(killed.begin(), killed.end(), orphan), killed.end());
  // It was our child (subreaper), so we reap it: no zombie left behind.
  for (int i = 0; i < 100 && set_->orphans_reaped() == 0; ++i) {
    set_->Wait(SystemClock()->Now() + std::chrono::milliseconds(20));
  }
  EXPECT_GE(set_->orphans_reaped(), 1);
  EXPECT_NE(kill(orphan, 0), 0);
}

TEST_F(PosixProcessSetTest, RunningUntilTheProcessEndsAndWaitStillReportsTheExit) {
  int pid = *set_->Spawn(Shell("sleep 0.1; exit 4"));
  EXPECT_TRUE(set_->Running(pid));
  for (int i = 0; i < 500 && set_->Running(pid); ++i) usleep(10000);
  EXPECT_FALSE(set_->Running(pid));
  EXPECT_EQ(WaitExit(*set_, pid)->code, 4);
  EXPECT_FALSE(set_->Running(pid));       // reaped now
  EXPECT_FALSE(set_->Running(getpid()));  // not a child of this set
  EXPECT_EQ(set_->orphans_reaped(), 0);
}

// CaptureOutput starts its child in the same place as Spawn, set up the same way.
TEST_F(PosixProcessSetTest, CaptureOutputReturnsStdoutOfACommandRunInCwd) {
  testing::TempDir dir;
  Result<std::string> out = CaptureOutput({"/bin/sh", "-c", "pwd; echo noise >&2"}, dir.path());
  ASSERT_TRUE(out.ok()) << out.status().message();
  EXPECT_EQ(*out, dir.path() + "\n");  // stderr is not in it
}

TEST_F(PosixProcessSetTest, CaptureOutputNamesTheProgramAndItsExitCode) {
  Result<std::string> out = CaptureOutput({"/bin/sh", "-c", "echo partial; exit 3"}, "");
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().message(), "/bin/sh failed (exit 3)");
  Result<std::string> killed = CaptureOutput({"/bin/sh", "-c", "kill -TERM $$"}, "");
  ASSERT_FALSE(killed.ok());
  EXPECT_NE(killed.status().message().find("SIGTERM"), std::string::npos)
      << killed.status().message();
}

TEST_F(PosixProcessSetTest, CaptureOutputChildLeadsItsOwnGroupWithNoSignalsBlocked) {
  // The fixture blocked the supervision signals in trainrun, as main() does.
  Result<std::string> out = CaptureOutput(
      {"/bin/sh", "-c", "echo $$; cut -d' ' -f5 /proc/$$/stat; grep SigBlk /proc/$$/status"}, "");
  ASSERT_TRUE(out.ok()) << out.status().message();
  std::istringstream lines(*out);
  int pid = 0, pgid = 0;
  std::string blocked_key, blocked;
  lines >> pid >> pgid >> blocked_key >> blocked;
  EXPECT_GT(pid, 0);
  EXPECT_EQ(pgid, pid) << *out;
  EXPECT_NE(pgid, getpgrp());
  EXPECT_EQ(blocked_key, "SigBlk:");
  EXPECT_EQ(blocked, "0000000000000000") << *out;
}

TEST_F(PosixProcessSetTest, CaptureOutputSaysWhyAProgramCouldNotStart) {
  Result<std::string> missing = CaptureOutput({"definitely-not-a-program"}, "");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  testing::TempDir dir;
  Result<std::string> bad_cwd = CaptureOutput({"/bin/true"}, dir / "no-such-dir");
  ASSERT_FALSE(bad_cwd.ok());
  EXPECT_NE(bad_cwd.status().message().find("cannot change to the working directory for /bin/true"),
            std::string::npos)
      << bad_cwd.status().message();
}

TEST_F(PosixProcessSetTest, SupervisorWithRealProcessesFailsFast) {
  // The same scenario as the scripted SupervisorTest, with real processes.
  std::vector<RankLaunch> launches;
  for (int rank = 0; rank < 3; ++rank) {
    RankLaunch l;
    l.rank = rank;
    l.spec = Shell(rank == 1 ? "sleep 0.2; exit 5" : "exec sleep 60");
    launches.push_back(l);
  }
  QuietReporter reporter;
  // A bound for the wait: should fail-fast break, the run ends here (exit 124) and
  // the assertions below fail at once, instead of the test waiting for `sleep 60`.
  SupervisorOptions options;
  options.max_run_duration = seconds(10);
  Supervisor supervisor(set_.get(), &reporter, options);
  TimePoint start = SystemClock()->Now();
  SupervisionResult result = supervisor.Run(launches);
  EXPECT_EQ(result.exit_code, 5);
  EXPECT_EQ(result.failure->rank, 1);
  EXPECT_EQ(result.ranks[0].status.signal, SIGTERM);
  EXPECT_EQ(result.ranks[2].status.signal, SIGTERM);
  EXPECT_LT(SystemClock()->Now() - start, seconds(20));  // not the 30 s grace period
}

}  // namespace
}  // namespace trainrun
