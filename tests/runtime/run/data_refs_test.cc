// Data mounts' helpers: a stand-in plays rclone (FUSE may be unavailable here; the
// real mounts are tested in tests/stores/store_run_test.cc). It starts through the
// ProcessSet in its own process group, and its death while the ranks run is a
// warning that names the data reference, not a silently reaped orphan.
#include "runtime/run/data_refs.h"

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "runtime/process/process_posix.h"
#include "runtime/process/supervisor.h"
#include "tests/test_util.h"

namespace trainrun {
namespace {

namespace fs = std::filesystem;

// Plays `rclone mount REMOTE TARGET --read-only --log-file LOG ...`: "mounts" by
// creating TARGET/.mounted, then runs until TARGET/.die appears and exits 1 with a
// last word in its log. With a file fail_at_once beside TARGET it dies before mounting
// (a file, not a variable: the helper inherits only a few of trainrun's variables).
constexpr char kStandInRclone[] = R"(#!/bin/sh
target="$3"; log="$6"
echo "$$" > "$target/../helper.pid"
env > "$target/../helper.env"
if [ -e "$target/../fail_at_once" ]; then echo "Failed to mount: stand-in refuses" >> "$log"; exit 2; fi
touch "$target/.mounted"
trap 'exit 0' TERM
while [ ! -e "$target/.die" ]; do sleep 0.02; done
echo "Fatal error: stand-in lost the bucket" >> "$log"
exit 1
)";

class DataMountHelperTest : public ::testing::Test {
 protected:
  void SetUp() override {
    BlockSupervisionSignals();
    auto set = PosixProcessSet::Create();
    ASSERT_TRUE(set.ok()) << set.status().message();
    processes_ = std::move(set).value();
    rclone_ = dir_ / "rclone";
    testing::WriteFile(rclone_, kStandInRclone);
    chmod(rclone_.c_str(), 0755);
    ref_.name = "mnist";
    ref_.uri = "s3://bucket/mnist";
    ref_.mechanism = DataMechanism::kMount;
    ref_.path_on_compute = dir_ / "mnt/mnist";
  }
  std::unique_ptr<DataPreparer> Preparer() {
    FuseMountOptions fuse;
    fuse.rclone = rclone_;
    fuse.ready = [](const std::string& target) { return fs::exists(target + "/.mounted"); };
    return std::make_unique<DataPreparer>(dir_.path(), dir_ / "wd", dir_ / "data", &warnings_,
                                          fuse);
  }
  int HelperPid() { return std::stoi(testing::ReadFile(dir_ / "mnt/helper.pid")); }

  testing::TempDir dir_;
  std::string rclone_;
  DataReference ref_;
  WarningCollector warnings_;
  std::unique_ptr<PosixProcessSet> processes_;
};

TEST_F(DataMountHelperTest, HelperDeathWhileTheRanksRunIsAWarningThatNamesTheData) {
  std::unique_ptr<DataPreparer> data = Preparer();
  Result<PreparedData> prepared = data->Prepare(ref_, processes_.get());
  ASSERT_TRUE(prepared.ok()) << prepared.status().message();
  EXPECT_EQ(prepared->method, "read-only FUSE mount (rclone)");
  const int helper = HelperPid();
  EXPECT_EQ(getpgid(helper), helper) << "rclone is not in a process group of its own";

  // The rank kills the mount's helper, waits until it ended (a zombie, or reaped
  // already), then ends well.
  RankLaunch rank;
  rank.spec.argv = {"/bin/sh", "-c",
                    "touch \"$MNT/.die\"; while [ -d /proc/$HELPER ] && "
                    "[ \"$(cut -d' ' -f3 /proc/$HELPER/stat 2>/dev/null)\" != Z ]; "
                    "do sleep 0.02; done"};
  rank.spec.env = {"PATH=/usr/bin:/bin", "MNT=" + ref_.path_on_compute,
                   "HELPER=" + std::to_string(helper)};
  SupervisorOptions options;
  options.on_helper_exit = [&](int pid, const ExitStatus& status) {
    EXPECT_FALSE(data->HelperExited(pid, status).empty());
  };
  Supervisor supervisor(processes_.get(), &warnings_, options);
  SupervisionResult result = supervisor.Run({rank});
  EXPECT_EQ(result.outcome, RunOutcome::kSucceeded);

  std::vector<std::string> warnings = warnings_.warnings();
  ASSERT_EQ(warnings.size(), 1u);
  const std::string expected = fmt::format(
      "data.mnist: the FUSE mount's rclone (pid {}) exited with exit code 1; the data at {} is "
      "gone (rclone's last log line: Fatal error: stand-in lost the bucket; log: {})",
      helper, ref_.path_on_compute, dir_ / "system_logs/rclone_mnist.log");
  EXPECT_EQ(warnings[0], expected);
  EXPECT_EQ(processes_->orphans_reaped(), 0) << "rclone's exit was counted as an orphan's";
  data.reset();
  EXPECT_EQ(warnings_.warnings().size(), 1u);  // unmounting says nothing more
}

TEST_F(DataMountHelperTest, UnmountStopsTheHelperWithoutAWarning) {
  std::unique_ptr<DataPreparer> data = Preparer();
  ASSERT_TRUE(data->Prepare(ref_, processes_.get()).ok());
  const int helper = HelperPid();
  EXPECT_TRUE(processes_->Running(helper));
  data.reset();  // SIGTERM to the helper's group
  EXPECT_FALSE(processes_->Running(helper));
  std::optional<ExitStatus> exit;
  for (int i = 0; i < 100 && !exit; ++i) {
    for (const ProcessEvent& e : processes_->Wait(SystemClock()->Now() + std::chrono::seconds(1))) {
      if (e.kind == ProcessEvent::Kind::kExited && e.pid == helper) exit = e.status;
    }
  }
  ASSERT_TRUE(exit) << "the helper's exit did not reach Wait()";
  EXPECT_EQ(processes_->orphans_reaped(), 0);
  EXPECT_TRUE(warnings_.warnings().empty()) << warnings_.warnings()[0];
}

TEST_F(DataMountHelperTest, HelperThatDiesBeforeMountingFailsPrepareNamingTheData) {
  fs::create_directories(dir_ / "mnt");
  testing::WriteFile(dir_ / "mnt/fail_at_once", "");
  std::unique_ptr<DataPreparer> data = Preparer();
  Result<PreparedData> prepared = data->Prepare(ref_, processes_.get());
  ASSERT_FALSE(prepared.ok());
  const std::string& message = prepared.status().message();
  EXPECT_EQ(message.rfind("data.mnist: rclone could not mount s3://bucket/mnist at ", 0), 0)
      << message;
  EXPECT_NE(message.find("Failed to mount: stand-in refuses"), std::string::npos) << message;
}

TEST_F(DataMountHelperTest, TheHelperInheritsNoCredentialOfTrainrun) {
  setenv("TRAINRUN_JOB_TOKEN", "job-token-0123456789", 1);
  setenv("AZURE_STORAGE_KEY", "c3RvcmFnZS1rZXk=", 1);
  setenv("AWS_SECRET_ACCESS_KEY", "aws-secret-0123456789", 1);
  setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE", 1);
  std::unique_ptr<DataPreparer> data = Preparer();
  Result<PreparedData> prepared = data->Prepare(ref_, processes_.get());
  unsetenv("TRAINRUN_JOB_TOKEN");
  unsetenv("AZURE_STORAGE_KEY");
  unsetenv("AWS_SECRET_ACCESS_KEY");
  unsetenv("AWS_ACCESS_KEY_ID");
  ASSERT_TRUE(prepared.ok()) << prepared.status().message();
  const std::string env = testing::ReadFile(dir_ / "mnt/helper.env");
  EXPECT_EQ(env.find("TRAINRUN_JOB_TOKEN"), std::string::npos) << env;
  EXPECT_EQ(env.find("job-token-0123456789"), std::string::npos) << env;
  EXPECT_EQ(env.find("AZURE_STORAGE_KEY"), std::string::npos) << env;
  EXPECT_EQ(env.find("\nAWS_SECRET_ACCESS_KEY="), std::string::npos) << env;
  // What it needs: its remote's configuration (here with the S3 keys it is given on
  // purpose, as rclone's own variables) and a PATH.
  EXPECT_NE(env.find("RCLONE_CONFIG_TRAINRUN_TYPE=s3"), std::string::npos) << env;
  EXPECT_NE(env.find("PATH="), std::string::npos) << env;
  data.reset();  // unmounts: stops the stand-in
  // Reap what the stand-in left (its last `sleep`), so no other test counts it.
  for (int i = 0; i < 25; ++i)
    processes_->Wait(SystemClock()->Now() + std::chrono::milliseconds(20));
}

}  // namespace
}  // namespace trainrun
