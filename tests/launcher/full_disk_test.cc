// `trainrun run` on full disks (small tmpfs mounts, so these need root): a rank that
// fills the working directory's disk with its output, and a file:// run history on a
// disk that is full or fills up. The run never ends 0, the local run.json always
// holds the final status, and the message says what was lost and where the rest is.
#include <unistd.h>

#include <filesystem>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/launcher/trainrun_runner.h"
#include "tests/small_tmpfs.h"

namespace trainrun::testing {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

class FullDiskTest : public ::testing::Test {
 protected:
  // A job running `script` with /bin/sh in the snapshot of a small source folder.
  std::string Job(const std::string& script) {
    run_id_ = "full" + std::to_string(++jobs_);
    json job = {{"command", {"/bin/sh", "-c", script}},
                {"sourceDirectory", "src"},
                {"experimentName", "tests"},
                {"runId", run_id_}};
    WriteFile(dir_ / "src/README", "source snapshot\n");
    std::string path = dir_ / ("job" + std::to_string(jobs_) + ".json");
    WriteFile(path, job.dump(2));
    return path;
  }
  Invocation Run(const std::string& job, const std::string& history, const std::string& workdir) {
    return RunTrainrun({"run", job, "--history", history, "--workdir", workdir}, dir_.path());
  }
  std::string LocalDir(const std::string& workdir) const { return workdir + "/tests/" + run_id_; }
  std::string HistoryDir(const std::string& history) const { return history + "/tests/" + run_id_; }

  TempDir dir_;
  int jobs_ = 0;
  std::string run_id_;
};

#define NEED_DISK(disk) \
  if (!(disk).skip_reason().empty()) GTEST_SKIP() << (disk).skip_reason()

TEST_F(FullDiskTest, ARankFillingTheDiskWithOutputEndsWith74AndAFinalLocalRecord) {
  SmallTmpfs disk("2m");
  NEED_DISK(disk);
  // 3 MB of 100-byte lines into a 2 MB disk; then the rank fills what the log left
  // free, so the disk stays full to the end, and says one more line.
  const std::string job =
      Job("i=0; while [ $i -lt 30000 ]; do printf 'line %06d %087d\\n' $i 0; i=$((i+1)); done; "
          "sleep 1; cat /dev/zero > filler 2>/dev/null; echo 'after the disk filled'");
  const std::string history = dir_ / "history";
  Invocation r = Run(job, history, disk.path());
  EXPECT_EQ(r.exit_code, 74) << r.err;

  const std::string local = LocalDir(disk.path());
  const std::string log_path = local + "/user_logs/std_log_process_0.txt";
  const std::string log = ReadFile(log_path);
  ASSERT_FALSE(log.empty());
  EXPECT_EQ(log.back(), '\n') << "the log was cut in the middle of a line";
  EXPECT_EQ(log.size() % 100, 0u) << "the log was cut in the middle of a line";
  EXPECT_EQ(log.substr(0, 100), "line 000000 " + std::string(87, '0') + "\n");

  // The final record is on local disk, written into the space reserved at the start
  // (the disk was still full: the usual write of run.json failed).
  json rec = json::parse(ReadFile(local + "/run.json"));
  EXPECT_EQ(rec["status"], "Failed");
  EXPECT_EQ(rec["exitCode"], 74);
  EXPECT_EQ(rec["outcome"], "rank output lost");
  ASSERT_EQ(rec["details"]["lostOutput"].size(), 1u) << rec.dump(2);
  const json& lost = rec["details"]["lostOutput"][0];
  EXPECT_EQ(lost["rank"], 0);
  EXPECT_EQ(lost["file"], log_path);
  EXPECT_EQ(lost["keptBytes"], log.size());
  EXPECT_GT(lost["lostBytes"].get<uint64_t>(), 0u);
  EXPECT_EQ(lost["toConsole"], true);
  EXPECT_NE(r.err.find("the final run record was written into the space reserved"),
            std::string::npos)
      << r.err;
  EXPECT_FALSE(fs::exists(local + "/.run.json.reserve"));

  // The message: which rank, from which byte and when, why, and where the rest is.
  const std::string message = "rank 0's output from byte " + std::to_string(log.size()) + " on (" +
                              lost["lostFrom"].get<std::string>() +
                              ") is not in its log: " + log_path + ": No space left on device";
  EXPECT_NE(r.err.find(message), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("went to trainrun's console (standard output) only"), std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find("whole lines, in file://" + history + "/tests/" + run_id_ +
                       "/user_logs and on this node"),
            std::string::npos)
      << r.err;
  EXPECT_NE(r.out.find("[rank 0] after the disk filled\n"), std::string::npos)
      << "the output after the cut did not reach the console";

  // History (on another disk) has the same final status and the log as it was kept.
  json remote = json::parse(ReadFile(HistoryDir(history) + "/run.json"));
  EXPECT_EQ(remote["status"], "Failed");
  EXPECT_EQ(remote["exitCode"], 74);
  EXPECT_EQ(ReadFile(HistoryDir(history) + "/user_logs/std_log_process_0.txt"), log);
}

TEST_F(FullDiskTest, AHistoryThatFillsUpEndsWith74AndSaysWhatStayedOnTheNode) {
  SmallTmpfs history("2m");
  NEED_DISK(history);
  const std::string workdir = dir_ / "work";
  // 3 MB of outputs for a 2 MB history.
  const std::string job =
      Job("mkdir -p outputs && head -c 3000000 /dev/zero > outputs/model.bin && echo saved");
  Invocation r = Run(job, history.path(), workdir);
  EXPECT_EQ(r.exit_code, 74) << r.err;
  const std::string local = LocalDir(workdir);
  EXPECT_NE(r.err.find("did not reach run history at file://" + history.path() +
                       "; everything stays on this node under " + local),
            std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find("outputs/model.bin"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("No space left on device"), std::string::npos) << r.err;
  EXPECT_EQ(fs::file_size(local + "/wd/outputs/model.bin"), 3000000u);
  json rec = json::parse(ReadFile(local + "/run.json"));
  EXPECT_EQ(rec["status"], "Failed");
  EXPECT_EQ(rec["exitCode"], 74);
  EXPECT_FALSE(rec["uploadErrors"].empty());
  // No half-written file is left in history.
  for (const auto& e : fs::recursive_directory_iterator(history.path())) {
    EXPECT_EQ(e.path().filename().string().find(".tmp-"), std::string::npos) << e.path();
  }
}

TEST_F(FullDiskTest, AHistoryFullFromTheStartStartsNothingAndTheLocalRecordSaysSo) {
  SmallTmpfs history("1m");
  NEED_DISK(history);
  history.Fill();
  const std::string workdir = dir_ / "work";
  const std::string marker = dir_ / "ran";
  const std::string job = Job("touch " + marker);
  Invocation r = Run(job, history.path(), workdir);
  EXPECT_EQ(r.exit_code, 74) << r.err;
  EXPECT_FALSE(fs::exists(marker)) << "the ranks were started";
  const std::string local = LocalDir(workdir);
  EXPECT_NE(r.err.find("run history file://" + history.path() + " is not writable"),
            std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find("No space left on device"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("the system log and run.json are in " + local), std::string::npos) << r.err;
  json rec = json::parse(ReadFile(local + "/run.json"));
  EXPECT_EQ(rec["status"], "Failed");
  EXPECT_EQ(rec["exitCode"], 74);
  EXPECT_EQ(rec["outcome"], "history not writable");
}

TEST_F(FullDiskTest, WithNoRoomForTheReserveTheFinalRecordGoesToTmpdir) {
  // 1 MiB cannot hold the 1 MiB reserve as well as the run directory: the run starts
  // with a warning, and once the rank's output has filled the disk the final record
  // is written to $TMPDIR.
  SmallTmpfs disk("1m");
  NEED_DISK(disk);
  const std::string tmp = dir_ / "tmp";
  fs::create_directories(tmp);
  const std::string job =
      Job("i=0; while [ $i -lt 15000 ]; do printf 'line %06d %087d\\n' $i 0; i=$((i+1)); done; "
          "sleep 1; cat /dev/zero > filler 2>/dev/null; echo done");
  Invocation r = RunTrainrun({"run", job, "--history", dir_ / "history", "--workdir", disk.path()},
                             dir_.path(), {"TMPDIR=" + tmp});
  EXPECT_EQ(r.exit_code, 74) << r.err;
  const std::string fallback = tmp + "/trainrun-tests-" + run_id_ + ".run.json";
  EXPECT_NE(r.err.find("no space reserved for the final run record"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("it is in " + fallback + " instead"), std::string::npos) << r.err;
  json rec = json::parse(ReadFile(fallback));
  EXPECT_EQ(rec["status"], "Failed");
  EXPECT_EQ(rec["exitCode"], 74);
  EXPECT_EQ(rec["details"]["lostOutput"][0]["rank"], 0);
}

}  // namespace
}  // namespace trainrun::testing
