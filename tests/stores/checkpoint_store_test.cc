// Checkpoints on a real S3 server (s3rver from .deps): a scheduler's SIGTERM (as
// `podman stop` sends it, 10 s before SIGKILL) gives the rank the grace period to
// write its last checkpoint, trainrun puts it into the bucket before the outputs
// and logs, and new runs with resumeFrom (the run id, then the URI) restore it
// before their rank starts; the rank's output proves the resume.
#include <signal.h>

#include <filesystem>
#include <memory>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "runtime/store/store_factory.h"
#include "tests/fakes/checkpoint_rank.h"
#include "tests/launcher/trainrun_runner.h"
#include "tests/stores/store_server.h"
#include "tests/test_util.h"

namespace trainrun::testing {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

class CheckpointStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = std::make_unique<StoreServer>(ServerKind::kS3rver);
    std::string missing = server_->Missing();
    if (!missing.empty()) GTEST_SKIP() << "needs s3rver: " << missing;
    ASSERT_EQ(server_->Start(), "");
    Status created = server_->CreateRoot("ckpt", &root_);
    ASSERT_TRUE(created.ok()) << created.message();
    auto store = OpenStore(root_, server_->Lookup());
    ASSERT_TRUE(store.ok()) << store.status().message();
    store_ = std::move(store).value();
    WriteFile(dir_ / "src/rank.py", kCountingRank);
  }
  void WriteJob(json extra) {
    json job = {{"script", "rank.py"},
                {"sourceDirectory", "src"},
                {"experimentName", "exp"},
                {"environment", {{"python", {{"interpreterPath", "/usr/bin/python3"}}}}},
                {"checkpoints", {{"uri", root_ + "/checkpoints"}}}};
    if (extra.is_object()) job.update(extra);
    WriteFile(dir_ / "job.json", job.dump(2));
  }
  std::unique_ptr<TrainrunProcess> Start(const std::string& run_id) {
    std::vector<std::string> env = server_->Env();
    env.push_back("TRAINRUN_STOP_TIMEOUT=10");
    return StartCheckpointRun(dir_, root_ + "/history", run_id, env);
  }
  std::string Stored(const std::string& key) {
    Result<std::string> text = store_->GetBytes(key);
    return text.ok() ? *text : "<" + text.status().message() + ">";
  }

  std::unique_ptr<StoreServer> server_;
  std::string root_;
  std::unique_ptr<Store> store_;
  TempDir dir_;
};

TEST_F(CheckpointStoreTest, ASigtermsLastCheckpointReachesS3AndANewRunResumesFromIt) {
  WriteJob(json::object());
  std::unique_ptr<TrainrunProcess> first = Start("first");
  ASSERT_TRUE(WaitFor([&] { return fs::exists(dir_ / "started"); }));
  Invocation stopped = first->StopLikeAScheduler(std::chrono::seconds(10));
  ASSERT_EQ(stopped.exit_code, 143) << stopped.err;
  const std::string saved = Stored("checkpoints/exp/first/last.pt");
  ASSERT_EQ(saved.find('<'), std::string::npos) << saved;
  EXPECT_NE(Stored("history/exp/first/user_logs/std_log_process_0.txt").find("saved step " + saved),
            std::string::npos);
  json manifest = json::parse(Stored("checkpoints/exp/first/.trainrun/node-0.json"));
  EXPECT_EQ(manifest["units"][0]["name"], "last.pt");
  EXPECT_EQ(json::parse(Stored("history/exp/first/run.json"))["status"], "Canceled");

  // By run id: the same experiment's run, at checkpoints.uri.
  WriteJob({{"resumeFrom", "first"}});
  Invocation second = Start("second")->Wait();
  ASSERT_EQ(second.exit_code, 0) << second.err;
  EXPECT_NE(Stored("history/exp/second/user_logs/std_log_process_0.txt")
                .find("resumed from last.pt at step " + saved),
            std::string::npos);
  // By URI: any folder of any store.
  WriteJob({{"resumeFrom", root_ + "/checkpoints/exp/first"}});
  Invocation third = Start("third")->Wait();
  ASSERT_EQ(third.exit_code, 0) << third.err;
  EXPECT_NE(Stored("history/exp/third/user_logs/std_log_process_0.txt")
                .find("resumed from last.pt at step " + saved),
            std::string::npos);
}

}  // namespace
}  // namespace trainrun::testing
