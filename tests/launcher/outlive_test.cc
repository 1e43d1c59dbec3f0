// Nothing of a job outlives trainrun, however it ends (README "Processes never
// outlive trainrun"), and a rank that SIGKILL cannot end does not keep trainrun
// alive (README "Ranks that cannot be killed"). Real trainrun, real process trees,
// a real uninterruptible sleep (tests/helpers/hang_fs.c).
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <random>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/launcher/trainrun_runner.h"

namespace trainrun::testing {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using std::chrono::seconds;

// The pids of live (not zombie) processes whose environment holds `marker`.
std::vector<int> ProcessesWithMarker(const std::string& marker) {
  std::vector<int> pids;
  std::error_code ec;
  for (fs::directory_iterator it("/proc", ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream environ(it->path() / "environ", std::ios::binary);
    std::string env((std::istreambuf_iterator<char>(environ)), std::istreambuf_iterator<char>());
    if (env.find(marker) == std::string::npos) continue;
    const int pid = std::stoi(name);
    if (ProcessAlive(pid)) pids.push_back(pid);
  }
  return pids;
}

std::string Describe(const std::vector<int>& pids) {
  std::string out;
  for (int pid : pids) {
    std::string cmdline = ReadFile("/proc/" + std::to_string(pid) + "/cmdline");
    for (char& c : cmdline) c = c == '\0' ? ' ' : c;
    out += "\n  " + std::to_string(pid) + ": " + cmdline;
  }
  return out;
}

class OutliveTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::random_device random;
    marker_ = "TRAINRUN_OUTLIVE_MARKER=" + std::to_string(random()) + std::to_string(getpid());
  }
  void TearDown() override {
    // Whatever a failed test left behind goes, so it cannot disturb the next.
    for (int pid : ProcessesWithMarker(marker_)) kill(pid, SIGKILL);
  }

  // A job of `ranks` ranks, each `sh -c script`, with the marker in every process's
  // environment.
  std::string Job(const std::string& script, int ranks) {
    const std::string name = marker_.substr(0, marker_.find('='));
    json job = {{"command", json::array({"/bin/sh", "-c", script})},
                {"sourceDirectory", "src"},
                {"experimentName", "tests"},
                {"runId", "outlive" + std::to_string(++jobs_)},
                {"processCountPerNode", ranks},
                {"environment",
                 {{"environmentVariables", {{name, marker_.substr(marker_.find('=') + 1)}}}}}};
    WriteFile(dir_ / "src/README", "source\n");
    run_id_ = job["runId"];
    const std::string path = dir_ / ("job" + std::to_string(jobs_) + ".json");
    WriteFile(path, job.dump(2));
    return path;
  }
  std::vector<std::string> Argv(const std::string& job, std::vector<std::string> more = {}) {
    std::vector<std::string> argv = {TrainrunBinary(), "run",       job,      "--history",
                                     history(),        "--workdir", workdir()};
    argv.insert(argv.end(), more.begin(), more.end());
    return argv;
  }
  std::string history() const { return dir_ / "history"; }
  std::string workdir() const { return dir_ / "work"; }
  json Record() const {
    return json::parse(ReadFile(history() + "/tests/" + run_id_ + "/run.json"));
  }
  std::string SystemLog() const {
    return ReadFile(history() + "/tests/" + run_id_ + "/system_logs/trainrun_node_0.log");
  }

  // Starts trainrun on `job`, waits until `expected` marked processes run and every
  // rank wrote its ready file, SIGKILLs trainrun, and expects every marked process
  // gone within a few seconds.
  void KillTrainrunAndExpectNothingLeft(const std::string& job, int ranks, size_t expected,
                                        const std::vector<std::string>& env) {
    TrainrunProcess trainrun(Argv(job), env, dir_.path());
    ASSERT_TRUE(WaitFor(
        [&] {
          for (int r = 0; r < ranks; ++r) {
            if (!fs::exists(dir_ / ("ready." + std::to_string(r)))) return false;
          }
          return ProcessesWithMarker(marker_).size() >= expected;
        },
        seconds(60)))
        << "the ranks' trees did not start: " << Describe(ProcessesWithMarker(marker_));
    trainrun.Signal(SIGKILL);
    trainrun.Wait();
    std::vector<int> left;
    EXPECT_TRUE(WaitFor(
        [&] {
          left = ProcessesWithMarker(marker_);
          return left.empty();
        },
        seconds(5)))
        << left.size() << " process(es) of the job outlived trainrun's SIGKILL:" << Describe(left);
  }

  TempDir dir_;
  std::string marker_;
  std::string run_id_;
  int jobs_ = 0;
};

// Each rank: a shell (the "wrapper") whose real program runs in the background, one
// that left the group and session (setsid), and one double-forked (its parent
// subshell exits at once, so it is an orphan).
constexpr const char* kSleeper = "/usr/bin/python3 -c 'import time; time.sleep(300)'";

TEST_F(OutliveTest, NothingOfTheJobOutlivesSigkillInAPidNamespace) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root for a PID namespace (CAP_SYS_ADMIN)";
  if (access("/usr/bin/setsid", X_OK) != 0) GTEST_SKIP() << "needs setsid (util-linux)";
  const std::string script = std::string(kSleeper) + " & /usr/bin/setsid " + kSleeper + " & (" +
                             kSleeper + " &) ; touch " + dir_.path() + "/ready.$LOCAL_RANK; wait";
  // Per rank: sh, three pythons (setsid's exec of python counts once).
  KillTrainrunAndExpectNothingLeft(Job(script, 2), 2, 8, {});
}

TEST_F(OutliveTest, ProcessGroupFallbackKillsTheRanksGroupsOnSigkill) {
  // Forced as where no PID namespace is permitted: TRAINRUN_ISOLATION=process-group.
  // The rank's background program and a double-forked one stay in its group.
  const std::string script = std::string(kSleeper) + " & " + kSleeper + " & (" + kSleeper +
                             " &) ; touch " + dir_.path() + "/ready.$LOCAL_RANK; wait";
  KillTrainrunAndExpectNothingLeft(Job(script, 2), 2, 8, {"TRAINRUN_ISOLATION=process-group"});
}

TEST_F(OutliveTest, TheIsolationInUseIsRecordedAndSaidInTheSystemLog) {
  const std::string job = Job("true", 1);
  TrainrunProcess fallback(Argv(job, {"--isolation", "process-group"}), {}, dir_.path());
  Invocation r = fallback.Wait();
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(Record()["details"]["isolation"], "process-group");
  EXPECT_NE(SystemLog().find("isolation: process-group"), std::string::npos) << SystemLog();

  if (geteuid() != 0) GTEST_SKIP() << "needs root for a PID namespace (CAP_SYS_ADMIN)";
  TrainrunProcess automatic(Argv(Job("true", 1)), {}, dir_.path());
  r = automatic.Wait();
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(Record()["details"]["isolation"], "pid-namespace");
  EXPECT_NE(SystemLog().find("isolation: pid-namespace"), std::string::npos) << SystemLog();
}

#ifdef HANG_FS_BINARY
// The state letter and wait channel of `pid`.
std::pair<std::string, std::string> StateOf(int pid) {
  std::string stat = ReadFile("/proc/" + std::to_string(pid) + "/stat");
  const size_t close = stat.rfind(')');
  std::string state = close == std::string::npos ? "" : stat.substr(close + 2, 1);
  return {state, ReadFile("/proc/" + std::to_string(pid) + "/wchan")};
}

bool IsMountPoint(const std::string& path) {
  struct stat here {
  }, parent{};
  return stat(path.c_str(), &here) == 0 && stat((fs::path(path) / "..").c_str(), &parent) == 0 &&
         here.st_dev != parent.st_dev;
}
#endif

TEST_F(OutliveTest, RankInUninterruptibleSleepIsRecordedAsUnkillableAndTrainrunExits) {
#ifndef HANG_FS_BINARY
  GTEST_SKIP() << "needs libfuse3-dev for tests/helpers/hang_fs.c (scripts/install-deps.sh)";
#else
  if (geteuid() != 0) GTEST_SKIP() << "needs root to mount a FUSE file system";
  if (access("/dev/fuse", R_OK | W_OK) != 0) GTEST_SKIP() << "needs /dev/fuse";
  const std::string mnt = dir_ / "hang";
  fs::create_directories(mnt);
  fs::create_directories(dir_ / "fuse");
  TrainrunProcess fuse({HANG_FS_BINARY, mnt}, {}, dir_ / "fuse");
  struct Release {  // the reader can only die once the daemon is gone
    TrainrunProcess* fuse;
    std::string mnt;
    ~Release() {
      fuse->Signal(SIGKILL);
      umount2(mnt.c_str(), MNT_DETACH);
    }
  } release{&fuse, mnt};
  ASSERT_TRUE(WaitFor([&] { return IsMountPoint(mnt); }, seconds(20))) << "hang_fs did not mount";

  // The rank is the reader itself, with the marker in its environment.
  const std::string job = Job("exec /bin/cat " + mnt + "/hang", 1);
  TrainrunProcess trainrun(
      Argv(job, {"--grace-period", "1", "--unkillable-timeout", "2", "--console", "none"}), {},
      dir_.path());
  int reader = 0;
  ASSERT_TRUE(WaitFor(
      [&] {
        std::vector<int> pids = ProcessesWithMarker(marker_);
        if (pids.size() != 1) return false;
        reader = pids[0];
        // In read(2) (syscall 0 on x86-64, 63 on arm64), waiting for the daemon: not
        // the open or lookup before it, which the daemon answers.
        const std::string syscall = ReadFile("/proc/" + std::to_string(reader) + "/syscall");
        const bool in_read = syscall.rfind("0 ", 0) == 0 || syscall.rfind("63 ", 0) == 0;
        return in_read && StateOf(reader).second == "request_wait_answer";
      },
      seconds(60)))
      << "the rank never waited on the FUSE read:" << Describe(ProcessesWithMarker(marker_));
  // SIGTERM is fatal to cat: from now on the read waits uninterruptibly.
  trainrun.Signal(SIGTERM);
  const auto stopped = std::chrono::steady_clock::now();
  Invocation r = trainrun.Wait(seconds(60));
  const double took =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - stopped).count();
  EXPECT_EQ(r.exit_code, 143) << r.err;
  EXPECT_LT(took, 30) << "trainrun waited far past grace period + unkillable timeout";
  EXPECT_EQ(StateOf(reader).first, "D") << "the reader was not in an uninterruptible sleep";

  json rank = Record()["ranks"][0];
  ASSERT_TRUE(rank.contains("unkillable")) << rank.dump();
  EXPECT_EQ(rank["unkillable"]["state"], "D");
  EXPECT_FALSE(rank["unkillable"]["wchan"].get<std::string>().empty()) << rank.dump();
  EXPECT_EQ(Record()["status"], "Canceled");
  EXPECT_NE(SystemLog().find("unkillable"), std::string::npos) << SystemLog();
  EXPECT_NE(r.err.find("unkillable"), std::string::npos) << r.err;

  // Released, the reader dies of the SIGKILL it has pending.
  fuse.Signal(SIGKILL);
  umount2(mnt.c_str(), MNT_DETACH);
  EXPECT_TRUE(WaitFor([&] { return !ProcessAlive(reader); }, seconds(20)))
      << "the reader did not die once its FUSE daemon was gone";
#endif
}

}  // namespace
}  // namespace trainrun::testing
