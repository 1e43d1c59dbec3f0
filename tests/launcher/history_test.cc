// `trainrun history` against runs made by the real `trainrun run`: the commands,
// their limits, their ends on SIGINT/SIGTERM/SIGHUP (also as a PID namespace's
// init), and runs whose trainrun was SIGKILLed shown as Lost.
#include <signal.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <memory>
#include <sstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/launcher/trainrun_runner.h"

namespace trainrun::testing {
namespace {

using nlohmann::json;

class HistoryCommandTest : public ::testing::Test {
 protected:
  void SetUp() override {
    WriteFile(dir_ / "src/a.txt", "a");
    for (int i = 0; i < 2; ++i) {
      json job = {{"command",
                   {"/bin/sh", "-c",
                    "mkdir -p outputs/sub && echo model-$RANK > outputs/model.txt && "
                    "echo deep > outputs/sub/x.txt && echo line-from-$RANK && exit " +
                        std::to_string(i * 3)}},
                  {"sourceDirectory", "src"},
                  {"experimentName", i == 0 ? "exp-a" : "exp-b"},
                  {"runId", "r" + std::to_string(i)}};
      WriteFile(dir_ / "job.json", job.dump());
      Invocation r = RunTrainrun({"run", dir_ / "job.json", "--history", history(), "--workdir",
                                  dir_ / "work", "--console", "none"},
                                 dir_.path());
      ASSERT_EQ(r.exit_code, i * 3) << r.err;
    }
  }
  Invocation History(std::vector<std::string> args) {
    args.insert(args.begin(), {"history", "--history", history()});
    return RunTrainrun(args, dir_.path());
  }
  std::string history() const { return dir_ / "hist"; }
  TempDir dir_;
};

TEST_F(HistoryCommandTest, ListShowFilesDownloadLogs) {
  Invocation list = History({"list"});
  ASSERT_EQ(list.exit_code, 0) << list.err;
  EXPECT_LT(list.out.find("r1"), list.out.find("r0"));  // newest first
  EXPECT_NE(list.out.find("Failed"), std::string::npos);
  EXPECT_NE(list.out.find("Completed"), std::string::npos);

  json runs = json::parse(History({"list", "--json"}).out);
  ASSERT_EQ(runs.size(), 2u);
  EXPECT_EQ(runs[0]["runId"], "r1");
  EXPECT_EQ(runs[0]["exitCode"], 3);
  EXPECT_EQ(json::parse(History({"--experiment", "exp-a", "list", "--json"}).out).size(), 1u);

  Invocation show = History({"show", "r1"});
  ASSERT_EQ(show.exit_code, 0) << show.err;
  EXPECT_NE(show.out.find("Failed (exit code 3)"), std::string::npos) << show.out;
  EXPECT_NE(show.out.find("rank 0 exited with exit code 3"), std::string::npos) << show.out;
  EXPECT_EQ(json::parse(History({"show", "r0", "--json"}).out)["status"], "Completed");

  Invocation files = History({"files", "r0"});
  EXPECT_NE(files.out.find("outputs/model.txt"), std::string::npos) << files.out;
  EXPECT_EQ(files.out.find("lease.json"), std::string::npos) << "removed at the end: " << files.out;
  EXPECT_NE(files.out.find("user_logs/std_log_process_0.txt"), std::string::npos);

  Invocation one = History({"download", "r0", "outputs/model.txt", "-o", dir_ / "model.txt"});
  ASSERT_EQ(one.exit_code, 0) << one.err;
  EXPECT_EQ(ReadFile(dir_ / "model.txt"), "model-0\n");
  Invocation folder = History({"download", "r0", "outputs", "-o", dir_ / "out"});
  ASSERT_EQ(folder.exit_code, 0) << folder.err;
  EXPECT_EQ(ReadFile(dir_ / "out/sub/x.txt"), "deep\n");

  Invocation logs = History({"logs", "r0", "--rank", "0"});
  ASSERT_EQ(logs.exit_code, 0) << logs.err;
  EXPECT_EQ(logs.out, "line-from-0\n");
  EXPECT_NE(History({"logs", "r0", "--system"}).out.find("phase   Running"), std::string::npos);
  EXPECT_EQ(History({"logs", "r0", "--follow"}).out, "line-from-0\n");  // ended: prints and returns
}

// The command on the console's "N rank(s) of" line and in history show is quoted the
// way a shell reads it back (base/text.h ShellQuote), so either can be pasted.
TEST(CommandLineTest, TheConsoleAndHistoryShowQuoteTheCommandForAShell) {
  TempDir dir;
  WriteFile(dir / "src/a.txt", "a");
  json job = {{"command", {"/bin/echo", "two words", "it's", "--plain=1"}},
              {"sourceDirectory", "src"},
              {"experimentName", "exp"},
              {"runId", "quoted"}};
  WriteFile(dir / "job.json", job.dump());
  Invocation r = RunTrainrun(
      {"run", dir / "job.json", "--history", dir / "hist", "--workdir", dir / "work"}, dir.path());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string line = R"(/bin/echo 'two words' 'it'\''s' --plain=1)";
  EXPECT_NE((r.out + r.err).find("1 rank(s) of " + line + "\n"), std::string::npos)
      << r.out << r.err;
  Invocation show =
      RunTrainrun({"history", "--history", dir / "hist", "show", "quoted"}, dir.path());
  ASSERT_EQ(show.exit_code, 0) << show.err;
  EXPECT_NE(show.out.find("command:     " + line + "\n"), std::string::npos) << show.out;
}

TEST_F(HistoryCommandTest, MissingRunsAndFilesExit66) {
  Invocation r = History({"show", "nope"});
  EXPECT_EQ(r.exit_code, 66);
  EXPECT_NE(r.err.find("no run \"nope\""), std::string::npos) << r.err;
  r = History({"download", "r0", "outputs/absent.bin"});
  EXPECT_EQ(r.exit_code, 66);
  EXPECT_NE(r.err.find("absent.bin"), std::string::npos) << r.err;
}

// Arguments past their limits are usage errors (64), found before any store is read.
class HistoryLimitsTest : public ::testing::Test {
 protected:
  Invocation History(std::vector<std::string> args) {
    args.insert(args.begin(), {"history", "--history", dir_ / "hist"});
    return RunTrainrun(args, dir_.path());
  }
  TempDir dir_;
};

TEST_F(HistoryLimitsTest, LongPathsAndBadRunIdsExit64NamingTheArgument) {
  Invocation r = History({"download", "r0", "outputs", "-o", std::string(300, 'o')});
  EXPECT_EQ(r.exit_code, 64) << r.err;
  EXPECT_NE(r.err.find("-o/--output: path component \"ooo"), std::string::npos) << r.err;
  std::string long_path;
  while (long_path.size() <= 4096) long_path += "dir/";
  r = History({"download", "r0", "outputs", "-o", long_path});
  EXPECT_EQ(r.exit_code, 64) << r.err;
  EXPECT_NE(r.err.find("-o/--output: is 4100 bytes long"), std::string::npos) << r.err;
  r = History({"download", "r0", "outputs/" + std::string(300, 'f')});
  EXPECT_EQ(r.exit_code, 64) << r.err;
  EXPECT_NE(r.err.find("path: path component \"fff"), std::string::npos) << r.err;

  for (const char* command : {"show", "files", "download", "logs"}) {
    r = History({command, std::string(300, 'r')});
    EXPECT_EQ(r.exit_code, 64) << command << ": " << r.err;
    EXPECT_NE(r.err.find("run id \"rrr"), std::string::npos) << r.err;
    EXPECT_LT(r.err.size(), 400u) << "the message quotes only the start: " << r.err;
  }
  r = History({"show", "../etc"});
  EXPECT_EQ(r.exit_code, 64) << r.err;
  EXPECT_NE(r.err.find("run id \"../etc\": must be 1-255 letters"), std::string::npos) << r.err;
  r = History({"--experiment", "a/b", "list"});
  EXPECT_EQ(r.exit_code, 64) << r.err;
  EXPECT_NE(r.err.find("--experiment \"a/b\""), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(dir_ / "hist"));
}

// A run that stays Running (its rank prints a line, then sleeps) and followers of
// its logs. The lease is short (0.5 s renewals, so it lasts 2 s); readers that
// judge it allow 1 s of clock skew (one machine, one clock).
class LiveRunTest : public ::testing::Test {
 protected:
  void SetUp() override { WriteFile(dir_ / "src/a.txt", "a"); }
  std::unique_ptr<TrainrunProcess> StartRun(const std::string& run_id) {
    json job = {{"command", {"/bin/sh", "-c", "echo live-line; exec sleep 600"}},
                {"sourceDirectory", "src"},
                {"experimentName", "exp"},
                {"runId", run_id}};
    WriteFile(dir_ / (run_id + ".json"), job.dump());
    const std::string where = dir_ / ("run-" + run_id);
    std::filesystem::create_directories(where);
    auto run = std::make_unique<TrainrunProcess>(
        std::vector<std::string>{TrainrunBinary(), "run", dir_ / (run_id + ".json"), "--history",
                                 history(), "--workdir", workdir(), "--console", "none",
                                 "--log-upload-interval", "0.2", "--grace-period", "2"},
        std::vector<std::string>{"TRAINRUN_LEASE_INTERVAL=0.5"}, where);
    EXPECT_TRUE(WaitFor([&] {
      return std::filesystem::exists(history() + "/exp/" + run_id + "/run.json");
    })) << ReadFile(where + "/trainrun.err");
    return run;
  }
  // `prefix` runs before trainrun (unshare ...).
  std::unique_ptr<TrainrunProcess> Follow(const std::string& run_id, const std::string& name,
                                          std::vector<std::string> prefix = {},
                                          std::vector<std::string> env = {}) {
    const std::string where = dir_ / name;
    std::filesystem::create_directories(where);
    std::vector<std::string> argv = prefix;
    for (const std::string& a : {TrainrunBinary(), std::string("history"), std::string("--history"),
                                 history(), std::string("logs"), run_id, std::string("--follow")}) {
      argv.push_back(a);
    }
    return std::make_unique<TrainrunProcess>(argv, env, where);
  }
  bool Printed(const std::string& name, const std::string& text) {
    return ReadFile(dir_ / (name + "/trainrun.out")).find(text) != std::string::npos;
  }
  Invocation History(std::vector<std::string> args) {
    args.insert(args.begin(), {"history", "--history", history()});
    return RunTrainrun(args, dir_.path(), ReaderEnv());
  }
  static std::vector<std::string> ReaderEnv() { return {"TRAINRUN_CLOCK_SKEW_MARGIN=1"}; }
  std::string history() const { return dir_ / "hist"; }
  std::string workdir() const { return dir_ / "work"; }
  TempDir dir_;
};

// The pid of `parent`'s first child (unshare --fork's child, PID 1 inside).
int ChildOf(int parent) {
  std::istringstream children(ReadFile("/proc/" + std::to_string(parent) + "/task/" +
                                       std::to_string(parent) + "/children"));
  int child = 0;
  children >> child;
  return child;
}

TEST_F(LiveRunTest, FollowEndsOnSigintSigtermAndSighupWithTheirCodes) {
  std::unique_ptr<TrainrunProcess> run = StartRun("live");
  const std::vector<std::pair<int, int>> cases = {{SIGINT, 130}, {SIGTERM, 143}, {SIGHUP, 129}};
  for (const auto& [sig, code] : cases) {
    const std::string name = "follow-" + std::to_string(sig);
    std::unique_ptr<TrainrunProcess> follow = Follow("live", name);
    ASSERT_TRUE(WaitFor([&] { return Printed(name, "live-line\n"); }))
        << ReadFile(dir_ / (name + "/trainrun.err"));
    follow->Signal(sig);
    // Well within the 5 s a command has to clean up, and far from the run's end.
    Invocation followed = follow->Wait(std::chrono::seconds(10));
    EXPECT_EQ(followed.exit_code, code) << strsignal(sig) << ": " << followed.err;
    EXPECT_EQ(followed.out, "live-line\n");
    EXPECT_EQ(followed.err.find("error"), std::string::npos) << followed.err;
  }
  EXPECT_TRUE(ProcessAlive(run->pid()));
  run->Signal(SIGTERM);
  EXPECT_EQ(run->Wait().exit_code, 143);
}

TEST_F(LiveRunTest, FollowAsPid1OfAPidNamespaceEndsOnSigintAndSigterm) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root for a new PID namespace (unshare --pid)";
  if (access("/usr/bin/unshare", X_OK) != 0) GTEST_SKIP() << "needs unshare (util-linux)";
  std::unique_ptr<TrainrunProcess> run = StartRun("live1");
  for (const auto& [sig, code] : std::vector<std::pair<int, int>>{{SIGINT, 130}, {SIGTERM, 143}}) {
    const std::string name = "pid1-" + std::to_string(sig);
    std::unique_ptr<TrainrunProcess> follow =
        Follow("live1", name, {"/usr/bin/unshare", "--pid", "--fork"});
    ASSERT_TRUE(WaitFor([&] { return Printed(name, "live-line\n"); }))
        << ReadFile(dir_ / (name + "/trainrun.err"));
    const int inner = ChildOf(follow->pid());
    ASSERT_GT(inner, 0);
    // The follower is its namespace's init: the kernel drops signals it has no
    // handler for, as it did to the old follower (podman stop waited, then 137).
    const std::string status = ReadFile("/proc/" + std::to_string(inner) + "/status");
    EXPECT_NE(status.find("\nNSpid:\t" + std::to_string(inner) + "\t1\n"), std::string::npos)
        << status;
    ASSERT_EQ(kill(inner, sig), 0);
    Invocation followed = follow->Wait(std::chrono::seconds(10));
    EXPECT_EQ(followed.exit_code, code) << strsignal(sig) << ": " << followed.err;
    EXPECT_EQ(followed.out, "live-line\n");
  }
  run->Signal(SIGTERM);
  EXPECT_EQ(run->Wait().exit_code, 143);
}

TEST_F(LiveRunTest, ASigkilledRunIsLostAndFollowOnItEnds) {
  std::unique_ptr<TrainrunProcess> run = StartRun("doomed");
  std::unique_ptr<TrainrunProcess> follow = Follow("doomed", "follow", {}, ReaderEnv());
  ASSERT_TRUE(WaitFor([&] { return Printed("follow", "live-line\n"); }))
      << ReadFile(dir_ / "follow/trainrun.err");
  // Alive past its first lease (2 s): renewed, so still Running.
  ASSERT_TRUE(WaitFor([&] {
    json lease = json::parse(ReadFile(history() + "/exp/doomed/lease.json"), nullptr, false);
    return lease.is_object() && lease.value("renewals", 0) >= 6;
  }));
  Invocation show = History({"show", "doomed"});
  EXPECT_NE(show.out.find("status:      Running\n"), std::string::npos) << show.out << show.err;
  EXPECT_TRUE(ProcessAlive(follow->pid()));

  // Without a word: no final record, no last upload.
  run->Signal(SIGKILL);
  run->Wait();
  Invocation followed = follow->Wait(std::chrono::seconds(30));
  EXPECT_EQ(followed.exit_code, 69) << followed.err;
  EXPECT_EQ(followed.out, "live-line\n");
  EXPECT_NE(followed.err.find("trainrun: run doomed is Lost: no word from its trainrun (pid " +
                              std::to_string(run->pid())),
            std::string::npos)
      << followed.err;
  EXPECT_NE(followed.err.find("its local files were in " + workdir() + "/exp/doomed on "),
            std::string::npos)
      << followed.err;

  Invocation list = History({"list"});
  ASSERT_EQ(list.exit_code, 0) << list.err;
  EXPECT_NE(list.out.find("doomed  exp         Lost "), std::string::npos) << list.out;
  json listed = json::parse(History({"list", "--json"}).out);
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_EQ(listed[0]["status"], "Lost");
  EXPECT_EQ(listed[0]["lost"]["lastStatus"], "Running");
  EXPECT_EQ(listed[0]["lost"]["runDirectory"], workdir() + "/exp/doomed");
  show = History({"show", "doomed"});
  ASSERT_EQ(show.exit_code, 0) << show.err;
  EXPECT_NE(show.out.find("status:      Lost since "), std::string::npos) << show.out;
  EXPECT_NE(show.out.find(" UTC (was Running)\n"), std::string::npos) << show.out;
  EXPECT_NE(show.out.find("local files: " + workdir() + "/exp/doomed on "), std::string::npos)
      << show.out;
  json shown = json::parse(History({"show", "doomed", "--json"}).out);
  EXPECT_EQ(shown["status"], "Lost");
  EXPECT_EQ(shown["lost"]["pid"], run->pid());
  // What is in history stays as the trainrun left it: Lost is the readers' verdict.
  EXPECT_EQ(json::parse(ReadFile(history() + "/exp/doomed/run.json"))["status"], "Running");
  // A margin for clocks that disagree puts the verdict off.
  Invocation patient = RunTrainrun(
      {"history", "--history", history(), "--clock-skew-margin", "3600", "show", "doomed"},
      dir_.path());
  EXPECT_NE(patient.out.find("status:      Running\n"), std::string::npos) << patient.out;
}

// A record written by a trainrun that kept no lease (before the lease existed)
// reads as it says.
TEST_F(LiveRunTest, ARecordWithoutALeaseReadsAsItSays) {
  WriteFile(history() + "/exp/old/run.json",
            R"({"runId": "old", "experimentName": "exp", "status": "Running",
                "statusHistory": [{"status": "Preparing", "time": "2025-01-02T03:04:05.000Z"},
                                  {"status": "Running", "time": "2025-01-02T03:04:06.000Z"}]})");
  Invocation list = History({"list"});
  ASSERT_EQ(list.exit_code, 0) << list.err;
  EXPECT_NE(list.out.find("old     exp         Running "), std::string::npos) << list.out;
  Invocation show = History({"show", "old"});
  ASSERT_EQ(show.exit_code, 0) << show.err;
  EXPECT_NE(show.out.find("status:      Running\n"), std::string::npos) << show.out;
}

}  // namespace
}  // namespace trainrun::testing
