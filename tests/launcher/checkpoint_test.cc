// Checkpoints and preemption end to end, with real trainrun and a Python rank that
// uses trainrun's helper (python/trainrun/checkpoint.py), history on file://:
// complete files uploaded while the rank still runs (its signal, the quiet period),
// hidden partial files never, retention; a preemption notice (a file, a metadata
// URL on a loopback server) stops the run like a SIGTERM, the rank's last
// checkpoint goes up first, and a new run with resumeFrom starts from it.
#include <signal.h>

#include <filesystem>
#include <memory>
#include <regex>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/fakes/checkpoint_rank.h"
#include "tests/fakes/metadata_server.h"
#include "tests/launcher/trainrun_runner.h"

namespace trainrun::testing {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

class CheckpointTest : public ::testing::Test {
 protected:
  void WriteJob(json job) {
    job["sourceDirectory"] = "src";
    job["experimentName"] = "ckpt";
    job["script"] = "rank.py";
    job["environment"] = {{"python", {{"interpreterPath", "/usr/bin/python3"}}}};
    WriteFile(dir_ / "job.json", job.dump(2));
  }
  void WriteRank(const std::string& code) { WriteFile(dir_ / "src/rank.py", code); }
  std::unique_ptr<TrainrunProcess> Start(const std::string& run_id) {
    return StartCheckpointRun(dir_, history(), run_id, {"GO=" + (dir_ / "go")});
  }
  std::string history() const { return dir_ / "history"; }
  std::string RunDir(const std::string& run_id) const { return history() + "/ckpt/" + run_id; }
  std::string Stored(const std::string& run_id, const std::string& rel) const {
    return RunDir(run_id) + "/checkpoints/" + rel;
  }
  json Record(const std::string& run_id) const {
    return json::parse(ReadFile(RunDir(run_id) + "/run.json"));
  }
  std::string RankLog(const std::string& run_id) const {
    return ReadFile(RunDir(run_id) + "/user_logs/std_log_process_0.txt");
  }

  // After a preempted run1: its last checkpoint is in history and was uploaded
  // before the outputs and logs; run2 with resumeFrom starts from it.
  void ExpectSavedAndResumed(const Invocation& run1) {
    EXPECT_EQ(run1.exit_code, 143) << run1.err;
    json rec = Record("run1");
    EXPECT_EQ(rec["status"], "Canceled");
    EXPECT_NE(rec["warnings"].dump().find("preempted: "), std::string::npos) << rec["warnings"];
    const std::string saved = ReadFile(Stored("run1", "last.pt"));
    ASSERT_FALSE(saved.empty());
    EXPECT_NE(RankLog("run1").find("saved step " + saved), std::string::npos) << RankLog("run1");
    // The node's own system log: the upload line, "uploaded to URI: N file(s), SIZE",
    // comes after the system log's one upload to history, so history's copy ends before it.
    const std::string log = ReadFile(dir_ / "work/ckpt/run1/system_logs/trainrun_node_0.log");
    std::smatch outputs;
    ASSERT_TRUE(std::regex_search(log, outputs, std::regex(R"(uploaded to \S+: \d+ file\(s\))")))
        << log;
    const size_t checkpoints = log.find("checkpoint last.pt uploaded to");
    ASSERT_NE(checkpoints, std::string::npos) << log;
    EXPECT_LT(checkpoints, static_cast<size_t>(outputs.position(0))) << log;

    json job = json::parse(ReadFile(dir_ / "job.json"));
    job["resumeFrom"] = "run1";
    job.erase("preemptionNoticeFile");
    job.erase("preemptionNoticeUrl");
    WriteJob(job);
    Invocation run2 = Start("run2")->Wait();
    ASSERT_EQ(run2.exit_code, 0) << run2.err;
    EXPECT_NE(RankLog("run2").find("resumed from last.pt at step " + saved), std::string::npos)
        << RankLog("run2");
    EXPECT_EQ(Record("run2")["details"]["checkpoints"]["units"], 1);
  }

  TempDir dir_;
};

TEST_F(CheckpointTest, CompleteFilesGoUpWhileTheRankRunsAndPartialOnesNever) {
  WriteRank(R"(
import os, time
from trainrun import checkpoint
folder = checkpoint.directory()
print("dir", folder, flush=True)
def wait(name):
    while not os.path.exists(name):
        time.sleep(0.02)
with checkpoint.saving("signalled.pt") as path:
    path.write_text("signalled")
(folder / ".partial.pt.tmp").write_text("partial")
wait(os.environ["GO"] + "1")
(folder / "quiet").mkdir()
(folder / "quiet" / "model.pt").write_text("quiet")
wait(os.environ["GO"] + "2")
)");
  WriteJob({{"checkpoints",
             {{"quietPeriodSeconds", 1}, {"scanIntervalSeconds", 0.2}, {"keepLast", 0}}}});
  std::unique_ptr<TrainrunProcess> trainrun = Start("live");
  // The script's signal: up within a scan, while the rank waits.
  ASSERT_TRUE(WaitFor([&] { return fs::exists(Stored("live", "signalled.pt")); }));
  EXPECT_EQ(ReadFile(Stored("live", "signalled.pt")), "signalled");
  WriteFile(dir_ / "go1", "");
  // Written without a signal: up once unchanged for the quiet period.
  ASSERT_TRUE(WaitFor([&] { return fs::exists(Stored("live", "quiet/model.pt")); }));
  EXPECT_FALSE(trainrun->ExitsBy(std::chrono::steady_clock::now())) << "the rank still runs";
  WriteFile(dir_ / "go2", "");
  Invocation r = trainrun->Wait();
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_FALSE(fs::exists(Stored("live", ".partial.pt.tmp")));
  json manifest = json::parse(ReadFile(Stored("live", ".trainrun/node-0.json")));
  ASSERT_EQ(manifest["units"].size(), 2u) << manifest.dump();
  EXPECT_EQ(manifest["units"][0]["name"], "signalled.pt");
  EXPECT_EQ(manifest["units"][1]["name"], "quiet");
  EXPECT_NE(RankLog("live").find("dir " + (dir_ / "work/ckpt/live/wd/checkpoints")),
            std::string::npos)
      << RankLog("live");
}

TEST_F(CheckpointTest, RetentionKeepsTheLastTwo) {
  WriteRank(R"(
from trainrun import checkpoint
for epoch in range(1, 5):
    with checkpoint.saving(f"epoch{epoch}.pt") as path:
        path.write_text(str(epoch))
)");
  WriteJob({{"checkpoints", {{"keepLast", 2}, {"quietPeriodSeconds", 0}}}});
  Invocation r = Start("kept")->Wait();
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (int epoch = 1; epoch <= 4; ++epoch) {
    EXPECT_EQ(fs::exists(Stored("kept", "epoch" + std::to_string(epoch) + ".pt")), epoch > 2)
        << epoch;
  }
  json manifest = json::parse(ReadFile(Stored("kept", ".trainrun/node-0.json")));
  ASSERT_EQ(manifest["units"].size(), 2u) << manifest.dump();
  EXPECT_EQ(manifest["units"][1]["name"], "epoch4.pt");
}

TEST_F(CheckpointTest, APreemptionNoticeFileStopsTheRunAndItResumesFromTheLastCheckpoint) {
  WriteRank(kCountingRank);
  WriteJob({{"checkpoints", true}, {"preemptionNoticeFile", dir_ / "notice"}});
  std::unique_ptr<TrainrunProcess> trainrun = Start("run1");
  ASSERT_TRUE(WaitFor([&] { return fs::exists(dir_ / "started"); }));
  WriteFile(dir_ / "notice", "");
  ExpectSavedAndResumed(trainrun->Wait());
}

TEST_F(CheckpointTest, APreemptionNoticeFromAMetadataUrlStopsTheRunTheSameWay) {
  MetadataServer server;
  server.Answer(200, R"({"DocumentIncarnation": 1, "Events": []})");
  WriteRank(kCountingRank);
  WriteJob({{"checkpoints", true},
            {"preemptionNoticeUrl",
             {{"url", server.url()},
              {"bodyContains", "\"Preempt\""},
              {"headers", {{"Metadata", "true"}}},
              {"intervalSeconds", 1}}}});
  std::unique_ptr<TrainrunProcess> trainrun = Start("run1");
  ASSERT_TRUE(WaitFor([&] { return fs::exists(dir_ / "started"); }));
  ASSERT_TRUE(WaitFor([&] { return !server.requests().empty(); }));
  EXPECT_FALSE(trainrun->ExitsBy(std::chrono::steady_clock::now()));
  server.Answer(200, R"({"Events": [{"EventId": "A", "EventType": "Preempt"}]})");
  ExpectSavedAndResumed(trainrun->Wait());
  EXPECT_NE(server.requests().front().find("Metadata: true"), std::string::npos);
}

TEST_F(CheckpointTest, AResumeFromWithoutCheckpointsIsAnErrorNamingIt) {
  WriteRank("print('never')\n");
  WriteJob({{"resumeFrom", "nosuchrun"}});
  Invocation r = Start("lonely")->Wait();
  EXPECT_EQ(r.exit_code, 65) << r.err;
  EXPECT_NE(r.err.find("/resumeFrom: \"nosuchrun\" has no checkpoints"), std::string::npos)
      << r.err;
  EXPECT_EQ(Record("lonely")["status"], "Failed");
}

}  // namespace
}  // namespace trainrun::testing
