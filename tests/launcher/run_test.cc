// `trainrun run` end to end with real processes: fail-fast, signals, cancel,
// timeout, PID 1, large logs, uploads, exit codes.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <memory>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/launcher/local_run_test.h"
#include "tests/launcher/trainrun_runner.h"

namespace trainrun::testing {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

class RunTest : public LocalRunTest {
 protected:
  RunTest() : LocalRunTest("run") {}
  // Writes a job whose ranks run the rank helper with `args`.
  std::string Job(const std::vector<std::string>& helper_args, json extra = json::object()) {
    json job = {{"command", json::array({RankHelper()})}};
    for (const std::string& a : helper_args) job["command"].push_back(a);
    for (auto& [key, value] : extra.items()) job[key] = value;
    return WriteJob(job);
  }
  std::vector<int> Pids(int ranks) {
    std::vector<int> pids;
    for (int r = 0; r < ranks; ++r)
      pids.push_back(std::stoi(ReadFile(dir_ / (std::to_string(r) + ".pid"))));
    return pids;
  }
  bool AllPidFiles(int ranks) {
    for (int r = 0; r < ranks; ++r) {
      if (ReadFile(dir_ / (std::to_string(r) + ".pid")).empty()) return false;
    }
    return true;
  }
};

TEST_F(RunTest, SuccessUploadsEverythingAndRecordsTheRun) {
  std::string job =
      Job({"--sleep-ms", "50", "--write-output", "--print-env", "RANK", "WORLD_SIZE", "LOCAL_RANK",
           "MASTER_ADDR", "TRAINRUN_RUN_ID", "CUDA_DEVICE_ORDER", "MY_SECRET_TOKEN"},
          {{"processCountPerNode", 2},
           {"environment", {{"environmentVariables", {{"MY_SECRET_TOKEN", "hunter2"}}}}}});
  Invocation r = Run(job);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("[rank 1] RANK=1"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("[rank 0] WORLD_SIZE=2"), std::string::npos);
  EXPECT_NE(r.out.find("[rank 0] MASTER_ADDR=127.0.0.1"), std::string::npos);
  EXPECT_NE(r.out.find("[rank 0] CUDA_DEVICE_ORDER=PCI_BUS_ID"), std::string::npos);
  EXPECT_NE(r.out.find("[rank 0] TRAINRUN_RUN_ID=" + run_id_), std::string::npos);
  EXPECT_EQ(ReadFile(RunDir() + "/outputs/rank1.txt"), "rank 1\n");
  EXPECT_NE(ReadFile(RunDir() + "/user_logs/std_log_process_0.txt").find("LOCAL_RANK=0"),
            std::string::npos);
  // The system log goes up once, at the very end: it holds the final status line, and
  // the upload line after it counts it with every other file history holds of the run
  // (outputs, rank logs, the binding table; run.json goes up after the line).
  const std::string system_log = ReadFile(RunDir() + "/system_logs/trainrun_node_0.log");
  EXPECT_NE(system_log.find("phase   Finalizing"), std::string::npos) << system_log;
  EXPECT_NE(system_log.find("run " + run_id_ + " Completed (exit code 0); history: "),
            std::string::npos)
      << system_log;
  int stored = 0;
  for (const auto& entry : fs::recursive_directory_iterator(RunDir())) {
    stored += entry.is_regular_file() && entry.path().filename() != "run.json" ? 1 : 0;
  }
  EXPECT_EQ(stored, 6);
  const size_t said = r.err.find("run " + run_id_ + " Completed (exit code 0)");
  const size_t counted = r.err.find("/history: " + std::to_string(stored) + " file(s), ");
  ASSERT_NE(counted, std::string::npos) << r.err;
  EXPECT_LT(said, counted) << r.err;

  json rec = Record();
  EXPECT_EQ(rec["status"], "Completed");
  EXPECT_EQ(rec["exitCode"], 0);
  std::vector<std::string> statuses;
  for (const json& s : rec["statusHistory"]) statuses.push_back(s["status"]);
  EXPECT_EQ(statuses,
            (std::vector<std::string>{"Preparing", "Running", "Finalizing", "Completed"}));
  ASSERT_EQ(rec["phases"].size(), 3u);
  for (const json& p : rec["phases"]) EXPECT_GE(p["seconds"].get<double>(), 0.0);
  EXPECT_EQ(rec["ranks"].size(), 2u);
  EXPECT_EQ(rec["nodes"][0]["processCount"], 2);
  EXPECT_EQ(rec["job"]["environment"]["environmentVariables"]["MY_SECRET_TOKEN"], "***");
  EXPECT_EQ(ReadFile(RunDir() + "/run.json").find("hunter2"), std::string::npos);
  // Local copies stay on the node too.
  EXPECT_TRUE(fs::exists(LocalDir() + "/wd/outputs/rank0.txt"));
  EXPECT_TRUE(fs::exists(LocalDir() + "/wd/README"));
}

TEST_F(RunTest, FailFastStopsEveryRankAndNamesTheFailingOne) {
  std::string job =
      Job({"--pid-dir", dir_.path(), "--fail-rank", "2", "--exit-code", "3", "--after-ms", "300"},
          {{"processCountPerNode", 4}});
  Invocation r = Run(job);
  EXPECT_EQ(r.exit_code, 3) << r.err;
  EXPECT_NE(r.err.find("rank 2"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("exit code 3"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("ValueError: boom"), std::string::npos) << r.err;
  // The full log where it outlives the node (a container's --rm) first, then locally.
  EXPECT_NE(r.err.find("full log: file://" + RunDir() +
                       "/user_logs/std_log_process_2.txt (on this node: " + LocalDir() +
                       "/user_logs/std_log_process_2.txt)"),
            std::string::npos)
      << r.err;
  for (int pid : Pids(4)) EXPECT_FALSE(ProcessAlive(pid)) << "pid " << pid << " outlived the run";
  json rec = Record();
  EXPECT_EQ(rec["status"], "Failed");
  EXPECT_EQ(rec["exitCode"], 3);
  EXPECT_EQ(rec["failure"]["rank"], 2);
  EXPECT_EQ(rec["failure"]["exitCode"], 3);
  EXPECT_EQ(rec["failure"]["stderrTail"].back(), "ValueError: boom");
  EXPECT_EQ(rec["failure"]["logFile"], "user_logs/std_log_process_2.txt");
  for (int rank : {0, 1, 3}) {
    EXPECT_TRUE(rec["ranks"][rank]["stoppedByTrainrun"].get<bool>());
    EXPECT_EQ(rec["ranks"][rank]["signal"], SIGTERM);
  }
}

TEST_F(RunTest, SegfaultExitsWith139) {
  Invocation r = Run(Job({"--segv-rank", "1", "--after-ms", "100"}, {{"processCountPerNode", 2}}));
  EXPECT_EQ(r.exit_code, 139) << r.err;
  EXPECT_NE(r.err.find("SIGSEGV"), std::string::npos) << r.err;
  EXPECT_EQ(Record()["failure"]["signal"], SIGSEGV);
}

TEST_F(RunTest, RankIgnoringSigtermIsKilledAfterTheGracePeriod) {
  std::string job = Job({"--pid-dir", dir_.path(), "--fail-rank", "1", "--ignore-term-rank", "0",
                         "--after-ms", "200"},
                        {{"processCountPerNode", 2}});
  Invocation r = Run(job, {"--grace-period", "1"});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  json rec = Record();
  EXPECT_EQ(rec["ranks"][0]["signal"], SIGKILL);
  EXPECT_NE(ReadFile(RunDir() + "/system_logs/trainrun_node_0.log")
                .find("still running after the grace period"),
            std::string::npos);
  EXPECT_FALSE(ProcessAlive(Pids(2)[0]));
}

TEST_F(RunTest, SigtermCancelsUploadsOutputsAndExits143) {
  std::string job = Job({"--pid-dir", dir_.path(), "--write-output"}, {{"processCountPerNode", 2}});
  TrainrunProcess trainrun(
      [&] {
        std::vector<std::string> argv = {TrainrunBinary()};
        for (const std::string& a : Args(job)) argv.push_back(a);
        return argv;
      }(),
      {}, dir_.path());
  ASSERT_TRUE(WaitFor([&] { return AllPidFiles(2); }));
  trainrun.Signal(SIGTERM);
  Invocation r = trainrun.Wait();
  EXPECT_EQ(r.exit_code, 143) << r.err;
  json rec = Record();
  EXPECT_EQ(rec["status"], "Canceled");
  EXPECT_EQ(rec["exitCode"], 143);
  EXPECT_EQ(ReadFile(RunDir() + "/outputs/rank0.txt"), "rank 0\n");
  for (int pid : Pids(2)) EXPECT_FALSE(ProcessAlive(pid));
}

TEST_F(RunTest, MaxRunDurationExits124) {
  Invocation r = Run(Job({}, {{"maxRunDurationSeconds", 1}}));
  EXPECT_EQ(r.exit_code, 124) << r.err;
  json rec = Record();
  EXPECT_EQ(rec["status"], "Failed");
  EXPECT_NE(rec["stopReason"].get<std::string>().find("maxRunDurationSeconds (1 s) exceeded"),
            std::string::npos);
}

TEST_F(RunTest, RanksDieWithTrainrunEvenOnSigkill) {
  std::string job = Job({"--pid-dir", dir_.path()}, {{"processCountPerNode", 3}});
  std::vector<std::string> argv = {TrainrunBinary()};
  for (const std::string& a : Args(job)) argv.push_back(a);
  TrainrunProcess trainrun(argv, {}, dir_.path());
  ASSERT_TRUE(WaitFor([&] { return AllPidFiles(3); }));
  trainrun.Signal(SIGKILL);
  trainrun.Wait();
  for (int pid : Pids(3)) {
    EXPECT_TRUE(WaitFor([&] { return !ProcessAlive(pid); }, std::chrono::seconds(10)))
        << "rank pid " << pid << " outlived trainrun";
  }
}

TEST_F(RunTest, FiftyMegabytesPerRankArriveComplete) {
  Invocation r = Run(Job({"--spew-mb", "50"}, {{"processCountPerNode", 2}}));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const size_t out_bytes = (50u << 20) / 100 * 100;
  const size_t err_bytes = ((50u << 20) / 10) / 100 * 100;
  for (int rank = 0; rank < 2; ++rank) {
    std::string log =
        ReadFile(RunDir() + "/user_logs/std_log_process_" + std::to_string(rank) + ".txt");
    ASSERT_EQ(log.size(), out_bytes + err_bytes) << "rank " << rank;
    // Every line whole and in order within its stream.
    long next_out = 0, next_err = 0;
    size_t pos = 0;
    bool ordered = true;
    while (pos < log.size() && ordered) {
      std::string line = log.substr(pos, 100);
      ordered = line.size() == 100 && line.back() == '\n';
      long seq = std::stol(line.substr(line.find(' ', 3) + 1, 10));
      long& expected = line.compare(3, 3, "out") == 0 ? next_out : next_err;
      ordered = ordered && seq == expected++;
      pos += 100;
    }
    EXPECT_TRUE(ordered) << "rank " << rank << " at byte " << pos;
    EXPECT_EQ(static_cast<size_t>(next_out) * 100, out_bytes);
  }
  // The console shows the lines, or says how many it could not keep up with.
  EXPECT_NE(r.out.find("[rank 1] r1 out 0000000000 "), std::string::npos);
  if (r.out.size() < 2 * (out_bytes + err_bytes)) {
    EXPECT_NE(r.out.find("line(s) not shown: the console was too slow"), std::string::npos);
  }
}

TEST_F(RunTest, OrphanedGrandchildrenAreReapedWhenTrainrunIsPid1) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root for a new PID namespace (unshare --pid)";
  if (access("/usr/bin/unshare", X_OK) != 0) GTEST_SKIP() << "needs unshare (util-linux)";
  std::string job = Job({"--orphan"});
  std::vector<std::string> argv = {"/usr/bin/unshare", "--pid", "--fork", "--mount-proc",
                                   TrainrunBinary()};
  for (const std::string& a : Args(job)) argv.push_back(a);
  TrainrunProcess trainrun(argv, {}, dir_.path());
  Invocation r = trainrun.Wait();
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("zombies: 0"), std::string::npos) << r.out;
  EXPECT_NE(ReadFile(RunDir() + "/system_logs/trainrun_node_0.log").find("PID 1"),
            std::string::npos);
}

TEST_F(RunTest, ConsoleCanShowOnlyRankZero) {
  Invocation r = Run(Job({"--sleep-ms", "0", "--print-env", "RANK"}, {{"processCountPerNode", 3}}),
                     {"--console", "rank0"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("[rank 0] RANK=0"), std::string::npos);
  EXPECT_EQ(r.out.find("[rank 1]"), std::string::npos);
  EXPECT_NE(ReadFile(RunDir() + "/user_logs/std_log_process_2.txt").find("RANK=2"),
            std::string::npos);
}

TEST_F(RunTest, InvalidJobFileExits65AndCreatesNothing) {
  WriteFile(dir_ / "bad.json", R"({"command": ["x"], "procesCountPerNode": 2})");
  Invocation r = Run(dir_ / "bad.json");
  EXPECT_EQ(r.exit_code, 65);
  EXPECT_NE(
      r.err.find(
          "bad.json: /procesCountPerNode: unknown field; did you mean \"processCountPerNode\"?"),
      std::string::npos)
      << r.err;
  EXPECT_FALSE(fs::exists(workdir()));
  EXPECT_FALSE(fs::exists(history()));
}

TEST_F(RunTest, UsageErrorsExit64AndUnsupportedFeaturesExit65) {
  EXPECT_EQ(RunTrainrun({"run"}, dir_.path()).exit_code, 64);
  EXPECT_EQ(RunTrainrun({"frobnicate"}, dir_.path()).exit_code, 64);
  Invocation r = Run(Job({"--sleep-ms", "0"}), {"--console", "loud"});
  EXPECT_EQ(r.exit_code, 64);
  r = Run(Job({"--sleep-ms", "0"}, {{"communicator", "Horovod"}}));
  EXPECT_EQ(r.exit_code, 65);
  EXPECT_NE(r.err.find("\"Horovod\" is not one of None, Mpi, Nccl, Gloo, TensorFlow"),
            std::string::npos)
      << r.err;
  // history.uri counts only without --history, so run without it here.
  r = RunTrainrun({"run", Job({"--sleep-ms", "0"}, {{"history", {{"uri", "gs://bucket/x"}}}}),
                   "--workdir", workdir()},
                  dir_.path());
  EXPECT_EQ(r.exit_code, 65) << r.err;
  EXPECT_NE(r.err.find("/history/uri: gs://bucket/x: unknown scheme"), std::string::npos) << r.err;
  r = RunTrainrun({"run", Job({"--sleep-ms", "0"}), "--history", "gs://bucket/y"}, dir_.path());
  EXPECT_EQ(r.exit_code, 64) << r.err;
  EXPECT_NE(r.err.find("--history: gs://bucket/y"), std::string::npos) << r.err;
}

TEST_F(RunTest, MissingProgramExits127AndSaysWhat) {
  std::string job = Job({});
  json j = json::parse(ReadFile(job));
  j["command"] = {"no-such-trainer", "--x"};
  WriteFile(job, j.dump());
  Invocation r = Run(job);
  EXPECT_EQ(r.exit_code, 127);
  EXPECT_NE(r.err.find("no-such-trainer"), std::string::npos) << r.err;
  EXPECT_EQ(Record()["status"], "Failed");
}

TEST_F(RunTest, RunIdThatExistsIsRefused) {
  std::string job = Job({"--sleep-ms", "0"});
  ASSERT_EQ(Run(job).exit_code, 0);
  Invocation again = Run(job);
  EXPECT_EQ(again.exit_code, 65);
  EXPECT_NE(again.err.find("already exists"), std::string::npos) << again.err;
  EXPECT_EQ(Record()["status"], "Completed");  // the first run's record is untouched
}

// Ten starts with one run id at once, each with its own --workdir (as on ten hosts):
// exactly one runs; nine exit 65 naming the run id and the history, having touched
// nothing of the winner's run in history.
TEST_F(RunTest, TenStartsWithOneRunIdAtOnceRunOnce) {
  WriteFile(dir_ / "src/README", "source snapshot\n");
  json job = {{"command",
               {"/bin/sh", "-c",
                "mkdir -p outputs logs && echo $WHO > outputs/who.txt && echo log-$WHO > "
                "logs/train.log && echo started-$WHO"}},
              {"sourceDirectory", "src"},
              {"experimentName", "tests"},
              {"runId", "same"}};
  WriteFile(dir_ / "same.json", job.dump());
  run_id_ = "same";
  std::vector<std::unique_ptr<TrainrunProcess>> starts;
  for (int i = 0; i < 10; ++i) {
    const std::string where = dir_ / ("start" + std::to_string(i));
    fs::create_directories(where);
    starts.push_back(std::make_unique<TrainrunProcess>(
        std::vector<std::string>{TrainrunBinary(), "run", dir_ / "same.json", "--history",
                                 history(), "--workdir", dir_ / ("work" + std::to_string(i)),
                                 "--console", "none"},
        std::vector<std::string>{"WHO=" + std::to_string(i)}, where));
  }
  std::vector<int> winners;
  for (int i = 0; i < 10; ++i) {
    Invocation r = starts[i]->Wait();
    if (r.exit_code == 0) {
      winners.push_back(i);
      continue;
    }
    EXPECT_EQ(r.exit_code, 65) << r.err;
    EXPECT_NE(r.err.find("run \"same\" already exists in file://" + history()), std::string::npos)
        << r.err;
  }
  ASSERT_EQ(winners.size(), 1u);
  const std::string who = std::to_string(winners[0]);
  json record = Record();
  EXPECT_EQ(record["status"], "Completed");
  EXPECT_EQ(ReadFile(RunDir() + "/outputs/who.txt"), who + "\n");
  EXPECT_EQ(ReadFile(RunDir() + "/logs/train.log"), "log-" + who + "\n");
  EXPECT_EQ(ReadFile(RunDir() + "/user_logs/std_log_process_0.txt"), "started-" + who + "\n");
  std::vector<std::string> files;
  for (const auto& e : fs::recursive_directory_iterator(RunDir())) {
    if (e.is_regular_file()) files.push_back(fs::relative(e.path(), RunDir()).string());
  }
  std::sort(files.begin(), files.end());
  EXPECT_EQ(files,
            (std::vector<std::string>{
                "logs/train.log", "outputs/who.txt", "run.json", "system_logs/binding_node_0.txt",
                "system_logs/trainrun_node_0.log", "user_logs/std_log_process_0.txt"}));
  EXPECT_NE(ReadFile(RunDir() + "/system_logs/trainrun_node_0.log").find("work" + who),
            std::string::npos);
}

TEST_F(RunTest, DryRunPrintsThePlanAndStartsNothing) {
  Invocation r = Run(Job({"--pid-dir", dir_.path()}, {{"processCountPerNode", 2}}), {"--dry-run"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("rank 1:"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("RANK=1"), std::string::npos);
  EXPECT_NE(r.out.find("WORLD_SIZE=2"), std::string::npos);
  EXPECT_NE(r.out.find(RankHelper()), std::string::npos);
  EXPECT_FALSE(fs::exists(workdir()));
  EXPECT_FALSE(fs::exists(history()));
  EXPECT_TRUE(ReadFile(dir_ / "0.pid").empty());
}

TEST_F(RunTest, SymlinksOutsideTheWorkingDirectoryAreRecordedNotFollowed) {
  WriteFile(dir_ / "outside/secret.txt", "not for history");
  std::string job = Job({"--sleep-ms", "0"});
  json j = json::parse(ReadFile(job));
  j["command"] = {"/bin/sh", "-c",
                  "mkdir -p outputs && ln -s " + (dir_ / "outside/secret.txt") +
                      " outputs/link && echo ok > outputs/real.txt"};
  WriteFile(job, j.dump());
  Invocation r = Run(job);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(fs::exists(RunDir() + "/outputs/real.txt"));
  EXPECT_FALSE(fs::exists(RunDir() + "/outputs/link"));
  json rec = Record();
  ASSERT_EQ(rec["skippedSymlinks"].size(), 1u);
  EXPECT_EQ(rec["skippedSymlinks"][0]["path"], "outputs/link");
  EXPECT_EQ(rec["skippedSymlinks"][0]["target"], dir_ / "outside/secret.txt");
}

TEST_F(RunTest, UploadFailureExits74AndKeepsFilesOnDisk) {
  // The rank replaces the run's history folder with a file, so nothing more can be
  // written there: outputs must stay local and the message must say where.
  std::string job = Job({});
  json j = json::parse(ReadFile(job));
  j["command"] = {"/bin/sh", "-c",
                  "mkdir -p outputs && echo w > outputs/model.txt && rm -rf " + RunDir() +
                      " && touch " + RunDir()};
  WriteFile(job, j.dump());
  Invocation r = Run(job);
  EXPECT_EQ(r.exit_code, 74) << r.err;
  EXPECT_NE(r.err.find(LocalDir()), std::string::npos) << r.err;
  EXPECT_EQ(ReadFile(LocalDir() + "/wd/outputs/model.txt"), "w\n");
  json local = json::parse(ReadFile(LocalDir() + "/run.json"));
  EXPECT_EQ(local["exitCode"], 74);
  EXPECT_FALSE(local["uploadErrors"].empty());
}

TEST_F(RunTest, DataReferencesAndPlaceholders) {
  WriteFile(dir_ / "datasets/mnist/train.csv", "1,2,3\n");
  std::string job = Job({});
  json j = json::parse(ReadFile(job));
  j["command"] = {
      "/bin/sh",
      "-c",
      "cat \"$1/train.csv\" && cat $AZUREML_DATAREFERENCE_copy/train.csv && echo \"$2\" && "
      "echo \"direct=$3\" && echo \"env=$MNIST\" && (touch \"$1/new\" 2>/dev/null && echo writable "
      "|| echo read-only)",
      "sh",
      "{{data.mnist}}",
      "{{outputs}}",
      "$AZUREML_DATAREFERENCE_raw"};
  j["data"] = {{"mnist",
                {{"dataLocation", {{"uri", "datasets/mnist"}}},
                 {"mechanism", "mount"},
                 {"environmentVariableName", "MNIST"}}},
               {"copy",
                {{"dataLocation", {{"uri", "file://" + (dir_ / "datasets/mnist")}}},
                 {"mechanism", "download"}}},
               {"raw", {{"dataLocation", {{"uri", "s3://bucket/raw"}}}, {"mechanism", "direct"}}}};
  WriteFile(job, j.dump());
  Invocation r = Run(job);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("[rank 0] 1,2,3\n[rank 0] 1,2,3\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("[rank 0] " + LocalDir() + "/wd/outputs\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("direct=s3://bucket/raw"), std::string::npos);
  EXPECT_NE(r.out.find("env=" + LocalDir() + "/data/mnist"), std::string::npos) << r.out;
  std::string system_log = ReadFile(RunDir() + "/system_logs/trainrun_node_0.log");
  if (geteuid() == 0) {
    EXPECT_NE(r.out.find("read-only"), std::string::npos) << r.out;
    EXPECT_NE(system_log.find("data.mnist: read-only bind mount"), std::string::npos) << system_log;
    // The bind mount lived in trainrun's own mount namespace: gone with the run.
    EXPECT_TRUE(fs::is_empty(LocalDir() + "/data/mnist"));
  } else {
    EXPECT_NE(system_log.find("using a symlink"), std::string::npos) << system_log;
  }
  EXPECT_TRUE(fs::exists(LocalDir() + "/data/copy/train.csv"));
  EXPECT_FALSE(fs::exists(dir_ / "datasets/mnist/new"));
}

}  // namespace
}  // namespace trainrun::testing

namespace trainrun::testing {
namespace {

TEST_F(RunTest, LargeSnapshotWarnsAndGitInfoIsRecorded) {
  std::string job = Job({"--sleep-ms", "0"});
  for (int i = 0; i < 2001; ++i) WriteFile(dir_ / ("src/many/f" + std::to_string(i)), "x");
  WriteFile(dir_ / "src/.amlignore", "ignored/\n");
  WriteFile(dir_ / "src/ignored/big.bin", "x");
  std::string git = "cd " + (dir_ / "src") +
                    " && git init -q -b trunk && git -c user.email=t@t -c user.name=t add -A && "
                    "git -c user.email=t@t -c user.name=t commit -qm init";
  ASSERT_EQ(system(git.c_str()), 0);
  Invocation r = Run(job);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("warning: the source snapshot"), std::string::npos) << r.err;
  json rec = Record();
  EXPECT_EQ(rec["source"]["files"], 2003);  // README, .amlignore, 2001 files
  EXPECT_EQ(rec["source"]["ignoreFile"], ".amlignore");
  EXPECT_EQ(rec["source"]["git"]["branch"], "trunk");
  EXPECT_EQ(rec["source"]["git"]["dirty"], false);
  EXPECT_EQ(rec["source"]["git"]["commit"].get<std::string>().size(), 40u);
  EXPECT_FALSE(fs::exists(LocalDir() + "/wd/ignored"));
  EXPECT_FALSE(rec["warnings"].empty());
}

// Job files and flags past their limits (README "Limits"): exit 65 or 64 with a
// message naming the field, never a signal, and nothing created.
class RunLimitsTest : public RunTest {
 protected:
  // Runs trainrun on `job` and fails the test if it has not ended within 30 s.
  Invocation RunWithin30s(const std::string& job, std::vector<std::string> more = {}) {
    std::vector<std::string> argv = Args(job, more);
    argv.insert(argv.begin(), TrainrunBinary());
    TrainrunProcess process(argv, {}, dir_.path());
    return process.Wait(std::chrono::seconds(30));
  }
  void ExpectNothingCreated() {
    EXPECT_FALSE(fs::exists(workdir()));
    EXPECT_FALSE(fs::exists(history()));
  }
};

TEST_F(RunLimitsTest, DeepNestingExits65WithAMessage) {
  const std::string job = dir_ / "deep.json";
  WriteFile(job, R"({"command": ["x"], "arguments": )" + std::string(60000, '[') +
                     std::string(60000, ']') + "}");
  Invocation r = RunWithin30s(job);
  EXPECT_EQ(r.exit_code, 65) << r.err.substr(0, 500);
  EXPECT_NE(r.err.find("deep.json:1:"), std::string::npos) << r.err.substr(0, 500);
  EXPECT_NE(r.err.find("nested more than 64 levels deep"), std::string::npos)
      << r.err.substr(0, 500);
  ExpectNothingCreated();
}

TEST_F(RunLimitsTest, LongPathFieldsExit65NamingTheField) {
  Invocation r = RunWithin30s(Job({}, {{"command", json::array({"/bin/true"})},
                                       {"sourceDirectory", "src/" + std::string(256, 's')}}));
  EXPECT_EQ(r.exit_code, 65) << r.err;
  EXPECT_NE(r.err.find("/sourceDirectory: path component \"sss"), std::string::npos) << r.err;

  r = RunWithin30s(Job({}, {{"command", nullptr}, {"script", std::string(256, 't') + ".py"}}));
  EXPECT_EQ(r.exit_code, 65) << r.err;
  EXPECT_NE(r.err.find("/script: path component \"ttt"), std::string::npos) << r.err;

  // Used to throw in Preparing and leave run.json there.
  r = RunWithin30s(Job({"--sleep-ms", "0"}, {{"data",
                                              {{"d",
                                                {{"dataLocation", {{"uri", dir_ / "src"}}},
                                                 {"mechanism", "download"},
                                                 {"pathOnCompute", std::string(300, 'p')}}}}}}));
  EXPECT_EQ(r.exit_code, 65) << r.err;
  EXPECT_NE(r.err.find("/data/d/pathOnCompute: path component \"ppp"), std::string::npos) << r.err;
  ExpectNothingCreated();
}

TEST_F(RunLimitsTest, FifoDevZeroAndDirectoriesAreRefusedAtOnce) {
  const std::string fifo = dir_ / "job.fifo";
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  for (const std::string& job : {fifo, std::string("/dev/zero"), dir_.path()}) {
    Invocation r = RunWithin30s(job);
    EXPECT_EQ(r.exit_code, 65) << job << ": " << r.err;
    EXPECT_NE(r.err.find("the job file must be a regular file"), std::string::npos) << r.err;
  }
  ExpectNothingCreated();
}

TEST_F(RunLimitsTest, HugeNumbersAreReportedAsWritten) {
  const std::string job = dir_ / "huge.json";
  WriteFile(job, R"({"command": ["x"], "processCountPerNode": 18446744073709551615})");
  Invocation r = RunWithin30s(job);
  EXPECT_EQ(r.exit_code, 65) << r.err;
  EXPECT_NE(r.err.find("/processCountPerNode: must be an integer from 1 to 4096, got "
                       "18446744073709551615"),
            std::string::npos)
      << r.err;
}

TEST_F(RunLimitsTest, BadRunIdsAndLongJobPathsExit64) {
  const std::string job = Job({"--sleep-ms", "0"});
  Invocation r = RunWithin30s(job, {"--run-id", std::string(256, 'r')});
  EXPECT_EQ(r.exit_code, 64) << r.err;
  EXPECT_NE(r.err.find("--run-id \"rrr"), std::string::npos) << r.err;
  {
    TrainrunProcess process(
        {TrainrunBinary(), "run", job, "--history", history(), "--workdir", workdir()},
        {"TRAINRUN_RUN_ID=../escape"}, dir_.path());
    r = process.Wait(std::chrono::seconds(30));
  }
  EXPECT_EQ(r.exit_code, 64) << r.err;
  EXPECT_NE(r.err.find("\"../escape\": must be 1-255"), std::string::npos) << r.err;
  r = RunWithin30s(dir_ / (std::string(300, 'j') + ".json"));
  EXPECT_EQ(r.exit_code, 64) << r.err;
  EXPECT_NE(r.err.find("job file: path component \"jjj"), std::string::npos) << r.err;
  ExpectNothingCreated();
}

}  // namespace
}  // namespace trainrun::testing
