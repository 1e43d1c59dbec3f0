// The real process seam with real processes: exits, signals, process groups, the
// exec error path, and orphans reaped as subreaper.
#include "runtime/process/process_posix.h"

#include <fcntl.h>
#include <linux/kcmp.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>

#include "runtime/process/supervisor.h"
#include "tests/test_util.h"

namespace trainrun {
namespace {

using std::chrono::seconds;
namespace fs = std::filesystem;

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

// Live (not zombie) processes with `marker` in their environment.
std::vector<int> Marked(const std::string& marker) {
  std::vector<int> pids;
  std::error_code ec;
  for (std::filesystem::directory_iterator it("/proc", ec), end; !ec && it != end;
       it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream environ(it->path() / "environ", std::ios::binary);
    std::string env((std::istreambuf_iterator<char>(environ)), std::istreambuf_iterator<char>());
    if (env.find(marker) == std::string::npos) continue;
    if (ReadProcessState(std::stoi(name)).state == 'Z') continue;
    pids.push_back(std::stoi(name));
  }
  return pids;
}

bool WaitUntil(const std::function<bool()>& condition, Duration limit = seconds(10)) {
  const TimePoint deadline = SystemClock()->Now() + limit;
  while (!condition()) {
    if (SystemClock()->Now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return true;
}

// How many PID namespaces `pid` is in, from the NSpid line of its status.
int NamespaceDepth(int pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("NSpid:", 0) != 0) continue;
    std::istringstream ids(line.substr(6));
    int id, depth = 0;
    while (ids >> id) ++depth;
    return depth;
  }
  return 0;
}

class IsolationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    BlockSupervisionSignals();
    marker_ = "TRAINRUN_ISOLATION_MARKER=" + std::to_string(getpid()) + "_" +
              ::testing::UnitTest::GetInstance()->current_test_info()->name();
  }
  void TearDown() override {
    for (int pid : Marked(marker_)) kill(pid, SIGKILL);
  }
  SpawnSpec MarkedShell(const std::string& script) {
    SpawnSpec spec = Shell(script);
    spec.env.push_back(marker_);
    return spec;
  }
  // A rank started in `set` is killed by its guard once the set is gone.
  void ExpectTheGuardKillsARankWhenTheSetEnds(std::unique_ptr<PosixProcessSet>& set) {
    const int rank = *set->Spawn(MarkedShell("exec sleep 300"));
    ASSERT_TRUE(WaitUntil([&] { return Marked(marker_).size() == 1; }));
    set.reset();
    EXPECT_TRUE(WaitUntil([&] { return Marked(marker_).empty(); }, seconds(5)))
        << "rank " << rank << " outlived the set";
  }
  std::string marker_;
};

// "auto" on a GPU node is the process-group guard: the CUDA driver fails in a PID
// namespace that sees the host's /proc (cudaErrorOperatingSystem on an H200). The
// device folder is a test folder here, with and without NVIDIA's control device.
TEST(IsolationForTest, AutoIsAPidNamespaceExceptOnNvidiaGpuNodes) {
  testing::TempDir tmp;
  const std::string dev = tmp.path();
  std::string why;
  EXPECT_EQ(IsolationFor("auto", dev, &why), Isolation::kPidNamespace);
  EXPECT_EQ(why, "");
  testing::WriteFile(tmp / "nvidiactl", "");
  EXPECT_EQ(IsolationFor("auto", dev, &why), Isolation::kProcessGroups);
  EXPECT_NE(why.find("nvidiactl"), std::string::npos) << why;
  EXPECT_NE(why.find("CUDA"), std::string::npos) << why;
  EXPECT_EQ(IsolationFor("process-group", dev, nullptr), Isolation::kProcessGroups);
  EXPECT_EQ(IsolationFor("none", dev, nullptr), Isolation::kNone);
}

TEST_F(IsolationTest, PidNamespaceHoldsEveryChildAndEverythingDiesWithTheSet) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root for a PID namespace (CAP_SYS_ADMIN)";
  auto set = PosixProcessSet::Create(Isolation::kPidNamespace);
  ASSERT_TRUE(set.ok()) << set.status().message();
  ASSERT_EQ((*set)->isolation(), Isolation::kPidNamespace) << (*set)->isolation_note();
  const int depth = NamespaceDepth(getpid());
  // Two ranks, as trainrun starts them: one namespace for both.
  std::vector<int> ranks;
  for (int i = 0; i < 2; ++i) {
    ranks.push_back(
        *(*set)->Spawn(MarkedShell("sleep 300 & setsid sleep 300 & (sleep 300 &); wait")));
  }
  ASSERT_TRUE(WaitUntil([&] { return Marked(marker_).size() == 8; })) << Marked(marker_).size();
  for (int pid : Marked(marker_)) EXPECT_EQ(NamespaceDepth(pid), depth + 1) << pid;
  std::string ns0 = std::filesystem::read_symlink("/proc/" + std::to_string(ranks[0]) + "/ns/pid");
  EXPECT_EQ(ns0, std::filesystem::read_symlink("/proc/" + std::to_string(ranks[1]) + "/ns/pid"));
  EXPECT_NE(ns0, std::filesystem::read_symlink("/proc/self/ns/pid"));
  // A child that asks for another death signal (rclone) starts outside.
  // (exec: the SIGKILL below must reach the sleep itself, not only a shell that may
  // have forked it already.)
  SpawnSpec helper = MarkedShell("exec sleep 300");
  helper.parent_death_signal = SIGTERM;
  const int outside = *(*set)->Spawn(helper);
  EXPECT_EQ(NamespaceDepth(outside), depth);
  kill(outside, SIGKILL);
  // The set's end is trainrun's end as the guard sees it: the socket closes.
  set->reset();
  EXPECT_TRUE(WaitUntil([&] { return Marked(marker_).empty(); }, seconds(5)))
      << Marked(marker_).size() << " process(es) outlived the namespace";
}

TEST_F(IsolationTest, OrphansInTheNamespaceAreKilledAndPidsAreTranslated) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root for a PID namespace (CAP_SYS_ADMIN)";
  auto set = PosixProcessSet::Create(Isolation::kPidNamespace);
  ASSERT_TRUE(set.ok()) << set.status().message();
  ASSERT_EQ((*set)->isolation(), Isolation::kPidNamespace) << (*set)->isolation_note();
  testing::TempDir dir;
  const int pid = *(*set)->Spawn(MarkedShell("echo $$ > " + (dir / "inner") +
                                             "; setsid sleep 300 & (sleep 300 &); sleep 0.3"));
  ASSERT_EQ(WaitExit(**set, pid)->code, 0);
  // What the shell saw as its pid, made one this process can signal (MPI's wrappers).
  const int inner = std::stoi(testing::ReadFile(dir / "inner"));
  EXPECT_NE(inner, pid);
  EXPECT_EQ(PidOfChild(getpid(), inner), inner) << "no longer a child: nothing to translate";
  const std::vector<int> orphans = Marked(marker_);
  ASSERT_EQ(orphans.size(), 2u);
  std::vector<int> killed = (*set)->KillAdoptedOrphans();
  for (int orphan : orphans) {
    EXPECT_NE(std::find(killed.begin(), killed.end(), orphan), killed.end()) << orphan;
  }
  EXPECT_TRUE(WaitUntil([&] { return Marked(marker_).empty(); }));
  const int live = *(*set)->Spawn(MarkedShell("echo $$ > " + (dir / "live") + "; exec sleep 300"));
  ASSERT_TRUE(WaitUntil([&] { return !testing::ReadFile(dir / "live").empty(); }));
  EXPECT_EQ(PidOfChild(getpid(), std::stoi(testing::ReadFile(dir / "live"))), live);
  killed = (*set)->KillAdoptedOrphans();
  EXPECT_EQ(std::find(killed.begin(), killed.end(), live), killed.end())
      << "a live child is no orphan";
  // What a live rank started is in the namespace too, and goes; the rank stays.
  const int parent =
      *(*set)->Spawn(MarkedShell("sleep 300 & echo $! > " + (dir / "grandchild") + "; wait"));
  ASSERT_TRUE(WaitUntil([&] { return !testing::ReadFile(dir / "grandchild").empty(); }));
  ASSERT_TRUE(WaitUntil([&] { return Marked(marker_).size() == 3; })) << Marked(marker_).size();
  const int grandchild = PidOfChild(parent, std::stoi(testing::ReadFile(dir / "grandchild")));
  killed = (*set)->KillAdoptedOrphans();
  EXPECT_NE(std::find(killed.begin(), killed.end(), grandchild), killed.end()) << grandchild;
  EXPECT_EQ(std::find(killed.begin(), killed.end(), parent), killed.end());
  EXPECT_EQ(std::find(killed.begin(), killed.end(), live), killed.end());
}

TEST_F(IsolationTest, ProcessGroupGuardKillsTheGroupsWhenTheSetEnds) {
  auto set = PosixProcessSet::Create(Isolation::kProcessGroups);
  ASSERT_TRUE(set.ok()) << set.status().message();
  ASSERT_EQ((*set)->isolation(), Isolation::kProcessGroups);
  ASSERT_GT((*set)->guard_pid(), 0);
  EXPECT_NE(getpgid((*set)->guard_pid()), getpgrp()) << "the guard must not get our Ctrl-C";
  for (int i = 0; i < 2; ++i) (*set)->Spawn(MarkedShell("sleep 300 & (sleep 300 &); wait")).value();
  // A helper that asked for SIGTERM (rclone unmounting) is left to it.
  SpawnSpec helper = MarkedShell("trap 'exit 0' TERM; sleep 300 & wait");
  helper.parent_death_signal = SIGTERM;
  const int helper_pid = *(*set)->Spawn(helper);
  ASSERT_TRUE(WaitUntil([&] { return Marked(marker_).size() == 8; })) << Marked(marker_).size();
  set->reset();
  EXPECT_TRUE(WaitUntil([&] { return Marked(marker_).size() == 2; }, seconds(5)))
      << Marked(marker_).size() - 2 << " group member(s) outlived the set";
  // Alive: sleeping in its wait, or running for a moment (not a zombie, not gone).
  const char helper_state = ReadProcessState(helper_pid).state;
  EXPECT_TRUE(helper_state == 'S' || helper_state == 'R')
      << "the guard killed the helper's group (state '" << helper_state << "')";
}

// The files the guard `pid` holds, once it holds one: its socket alone, when it has
// closed what it got from its parent (the list is read while it closes them).
std::vector<std::string> GuardFiles(int pid) {
  std::vector<std::string> fds;
  WaitUntil([&] {
    fds.clear();
    std::error_code ec;
    const std::string dir = "/proc/" + std::to_string(pid) + "/fd";
    for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
      const fs::path target = fs::read_symlink(it->path(), ec);
      if (!ec) fds.push_back(target.string());
    }
    return fds.size() == 1;
  });
  return fds;
}

// Whether `a` and `b` share an address space (kcmp KCMP_VM); nullopt where kcmp is
// refused (a container's seccomp without CAP_SYS_PTRACE) or absent.
std::optional<bool> ShareMemory(int a, int b) {
  const long same = syscall(SYS_kcmp, a, b, KCMP_VM, 0, 0);
  if (same < 0) return std::nullopt;
  return same == 0;
}

// The guard is a small image of its own, run from a memfd: it shares none of this
// process's memory, holds little (32 MiB touched here, none of it the guard's), holds
// none of this process's open files but its socket, and answers for the groups once
// this set is gone.
TEST_F(IsolationTest, TheGuardIsASmallImageOfItsOwn) {
  std::vector<char> ballast(32 << 20, 1);
  int kept[2];
  ASSERT_EQ(pipe2(kept, O_CLOEXEC), 0);  // a pipe this process holds: not the guard
  auto set = PosixProcessSet::Create(Isolation::kProcessGroups);
  ASSERT_TRUE(set.ok()) << set.status().message();
  if (!(*set)->guard_note().empty()) GTEST_SKIP() << (*set)->guard_note();
  const int guard = (*set)->guard_pid();
  const std::string proc = "/proc/" + std::to_string(guard);
  if (std::optional<bool> shared = ShareMemory(getpid(), guard)) {
    EXPECT_FALSE(*shared) << "the guard shares this process's memory";
  }
  const std::vector<std::string> fds = GuardFiles(guard);
  ASSERT_EQ(fds.size(), 1u) << "the guard holds " << fds.size() << " files";
  EXPECT_EQ(fds[0].rfind("socket:", 0), 0u) << fds[0];
  EXPECT_EQ(testing::ReadFile(proc + "/comm"), "trainrun-guard\n");
  const std::string status = testing::ReadFile(proc + "/status");
  const size_t at = status.find("VmRSS:");
  ASSERT_NE(at, std::string::npos) << status;
  EXPECT_LT(std::stol(status.substr(at + 6)), 1024) << "KiB held by the guard";
  EXPECT_EQ(ballast[12345], 1);
  ExpectTheGuardKillsARankWhenTheSetEnds(*set);
  close(kept[0]);
  close(kept[1]);
}

// Where the kernel will not run the image, the guard is a clone that shares this
// memory; it too holds only its socket and answers for the groups.
TEST_F(IsolationTest, TheInMemoryGuardSharesTheCallersMemoryAndHoldsOnlyItsSocket) {
  int kept[2];
  ASSERT_EQ(pipe2(kept, O_CLOEXEC), 0);
  auto set = PosixProcessSet::Create(Isolation::kProcessGroups, GuardStart::kInMemory);
  ASSERT_TRUE(set.ok()) << set.status().message();
  const int guard = (*set)->guard_pid();
  if (std::optional<bool> shared = ShareMemory(getpid(), guard)) {
    EXPECT_TRUE(*shared) << "the in-memory guard has memory of its own";
  }
  const std::vector<std::string> fds = GuardFiles(guard);
  ASSERT_EQ(fds.size(), 1u) << "the guard holds " << fds.size() << " files";
  EXPECT_EQ(fds[0].rfind("socket:", 0), 0u) << fds[0];
  EXPECT_EQ(testing::ReadFile("/proc/" + std::to_string(guard) + "/comm"), "trainrun-guard\n");
  ExpectTheGuardKillsARankWhenTheSetEnds(*set);
  close(kept[0]);
  close(kept[1]);
}

TEST_F(IsolationTest, AnUnkillableProcessIsSeenInItsState) {
  const int pid = fork();
  if (pid == 0) {
    pause();
    _exit(0);
  }
  ASSERT_TRUE(WaitUntil([&] { return ReadProcessState(pid).state == 'S'; }));
  kill(pid, SIGKILL);
  waitpid(pid, nullptr, 0);
  EXPECT_EQ(ReadProcessState(pid).state, 0) << "gone: nothing to say";
}

}  // namespace
}  // namespace trainrun
