// CheckpointUploader and RestoreCheckpointFiles against a file:// store in a temp
// folder, on a fake clock: the quiet period, the script's signal, hidden files,
// manifests written last, retention, the bandwidth cap, the final pass, restore.
#include "runtime/run/checkpoint_sync.h"

#include <filesystem>
#include <mutex>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "runtime/store/file_store.h"
#include "tests/fakes/fake_clock.h"
#include "tests/test_util.h"

namespace trainrun {
namespace {

namespace fs = std::filesystem;
using testing::FakeClock;
using testing::ReadFile;
using testing::TempDir;
using testing::WriteFile;

constexpr const char* kPrefix = "exp/run1/checkpoints";

// Advances the fake clock instead of sleeping, and adds up what it was asked.
class ClockSleeper : public Sleeper {
 public:
  explicit ClockSleeper(FakeClock* clock) : clock_(clock) {}
  void Sleep(Duration d) override {
    slept += d;
    clock_->Advance(d);
  }
  Duration slept{};

 private:
  FakeClock* clock_;
};

// A file store that records, for each file put, the units the manifest listed then.
class WatchingStore : public FileStore {
 public:
  using FileStore::FileStore;
  Status PutFile(const std::string& key, const std::string& local_path) override {
    if (key.find("/.trainrun/") == std::string::npos) {
      Result<std::string> manifest = GetBytes(CheckpointManifestKey(kPrefix, 0), 0, std::nullopt);
      std::lock_guard lock(mu);
      listed_while_put[key] = manifest.ok() ? *manifest : "";
    }
    return FileStore::PutFile(key, local_path);
  }
  std::mutex mu;
  std::map<std::string, std::string> listed_while_put;
};

class CheckpointSyncTest : public ::testing::Test {
 protected:
  CheckpointSyncTest() : store_(tmp_ / "store"), sleeper_(&clock_) {
    fs::create_directories(dir());
  }
  std::string dir() const { return tmp_ / "wd/checkpoints"; }
  CheckpointSyncOptions Options() const {
    CheckpointSyncOptions options;
    options.local_dir = dir();
    options.key_prefix = kPrefix;
    options.quiet_period = std::chrono::seconds(10);
    options.keep_last = 0;
    options.clock = const_cast<FakeClock*>(&clock_);
    options.sleeper = const_cast<ClockSleeper*>(&sleeper_);
    return options;
  }
  bool InStore(const std::string& rel) const {
    return fs::exists(tmp_ / ("store/" + std::string(kPrefix) + "/" + rel));
  }
  std::vector<std::string> Listed(const CheckpointUploader& uploader) const {
    std::vector<std::string> names;
    for (const CheckpointUnit& unit : uploader.manifest()) names.push_back(unit.name);
    return names;
  }
  void Commit(const std::string& unit) { WriteFile(dir() + "/.trainrun/commit/" + unit, ""); }

  TempDir tmp_;
  WatchingStore store_;
  FakeClock clock_;
  ClockSleeper sleeper_;
  QuietReporter reporter_;
};

TEST_F(CheckpointSyncTest, AUnitGoesUpOnceUnchangedForTheQuietPeriod) {
  CheckpointUploader uploader(&store_, &reporter_, Options());
  WriteFile(dir() + "/epoch1.pt", "half");
  uploader.PassOnce();
  clock_.Advance(std::chrono::seconds(9));
  uploader.PassOnce();
  EXPECT_FALSE(InStore("epoch1.pt"));
  // Still being written: the quiet period starts again.
  WriteFile(dir() + "/epoch1.pt", "half and the rest");
  uploader.PassOnce();
  clock_.Advance(std::chrono::seconds(9));
  uploader.PassOnce();
  EXPECT_FALSE(InStore("epoch1.pt"));
  clock_.Advance(std::chrono::seconds(1));
  uploader.PassOnce();
  ASSERT_TRUE(InStore("epoch1.pt"));
  EXPECT_EQ(ReadFile(tmp_ / ("store/" + std::string(kPrefix) + "/epoch1.pt")), "half and the rest");
  EXPECT_EQ(Listed(uploader), std::vector<std::string>{"epoch1.pt"});
  // Unchanged: not sent again.
  clock_.Advance(std::chrono::seconds(60));
  uploader.PassOnce();
  EXPECT_EQ(uploader.uploads(), 1);
}

TEST_F(CheckpointSyncTest, TheScriptsSignalUploadsAtOnceAndIsConsumed) {
  CheckpointSyncOptions options = Options();
  options.quiet_period = Duration::zero();  // signals only
  CheckpointUploader uploader(&store_, &reporter_, options);
  WriteFile(dir() + "/step-100/model.pt", "model");
  WriteFile(dir() + "/step-100/optim.pt", "optim");
  uploader.PassOnce();
  clock_.Advance(std::chrono::hours(1));
  uploader.PassOnce();
  EXPECT_FALSE(InStore("step-100/model.pt"));
  Commit("step-100");
  uploader.PassOnce();
  EXPECT_TRUE(InStore("step-100/model.pt"));
  EXPECT_TRUE(InStore("step-100/optim.pt"));
  EXPECT_FALSE(fs::exists(dir() + "/.trainrun/commit/step-100"));
  ASSERT_EQ(uploader.manifest().size(), 1u);
  EXPECT_EQ(uploader.manifest()[0].files.size(), 2u);
}

TEST_F(CheckpointSyncTest, HiddenNamesAreNeverUploaded) {
  CheckpointUploader uploader(&store_, &reporter_, Options());
  WriteFile(dir() + "/.epoch2.pt.tmp", "partial");
  WriteFile(dir() + "/step-1/.part", "partial");
  WriteFile(dir() + "/step-1/done.pt", "done");
  uploader.PassOnce();
  clock_.Advance(std::chrono::seconds(10));
  uploader.PassOnce();
  EXPECT_TRUE(InStore("step-1/done.pt"));
  EXPECT_FALSE(InStore(".epoch2.pt.tmp"));
  EXPECT_FALSE(InStore("step-1/.part"));
}

TEST_F(CheckpointSyncTest, AChangedUnitLeavesTheManifestBeforeItsFilesAreReplaced) {
  CheckpointUploader uploader(&store_, &reporter_, Options());
  WriteFile(dir() + "/latest/model.pt", "v1");
  Commit("latest");
  uploader.PassOnce();
  ASSERT_TRUE(InStore("latest/model.pt"));
  WriteFile(dir() + "/latest/model.pt", "version 2");
  Commit("latest");
  uploader.PassOnce();
  EXPECT_EQ(ReadFile(tmp_ / ("store/" + std::string(kPrefix) + "/latest/model.pt")), "version 2");
  // While the second version was being put, no manifest listed the unit.
  std::lock_guard lock(store_.mu);
  const std::string listed = store_.listed_while_put[std::string(kPrefix) + "/latest/model.pt"];
  EXPECT_EQ(listed.find("latest"), std::string::npos) << listed;
  EXPECT_EQ(Listed(uploader), std::vector<std::string>{"latest"});
}

TEST_F(CheckpointSyncTest, RetentionKeepsTheLastK) {
  CheckpointSyncOptions options = Options();
  options.keep_last = 2;
  CheckpointUploader uploader(&store_, &reporter_, options);
  for (const std::string name : {"epoch1.pt", "epoch2.pt", "epoch3.pt"}) {
    WriteFile(dir() + "/" + name, name);
    Commit(name);
    uploader.PassOnce();
  }
  EXPECT_FALSE(InStore("epoch1.pt"));
  EXPECT_TRUE(InStore("epoch2.pt"));
  EXPECT_TRUE(InStore("epoch3.pt"));
  EXPECT_EQ(Listed(uploader), (std::vector<std::string>{"epoch2.pt", "epoch3.pt"}));
  // The local folder is the script's: nothing is deleted there, nor sent again.
  EXPECT_TRUE(fs::exists(dir() + "/epoch1.pt"));
  clock_.Advance(std::chrono::seconds(60));
  uploader.PassOnce();
  EXPECT_FALSE(InStore("epoch1.pt"));
  EXPECT_EQ(uploader.uploads(), 3);
}

TEST_F(CheckpointSyncTest, TheBandwidthCapSpacesUploadsOut) {
  CheckpointSyncOptions options = Options();
  options.max_bytes_per_second = 1000;
  CheckpointUploader uploader(&store_, &reporter_, options);
  WriteFile(dir() + "/a.pt", std::string(3000, 'a'));
  WriteFile(dir() + "/b.pt", std::string(3000, 'b'));
  Commit("a.pt");
  Commit("b.pt");
  uploader.PassOnce();
  EXPECT_TRUE(InStore("a.pt"));
  EXPECT_TRUE(InStore("b.pt"));
  // 3,000 bytes at 1,000 B/s: b.pt waited 3 s after a.pt began.
  EXPECT_EQ(std::chrono::duration_cast<std::chrono::milliseconds>(sleeper_.slept).count(), 3000);
  // The final pass ignores the cap.
  WriteFile(dir() + "/c.pt", std::string(3000, 'c'));
  uploader.Stop();
  UploadReport last = uploader.FinalPass(/*ranks_ended_cleanly=*/true);
  EXPECT_TRUE(last.errors.empty());
  EXPECT_TRUE(InStore("c.pt"));
  EXPECT_EQ(std::chrono::duration_cast<std::chrono::milliseconds>(sleeper_.slept).count(), 3000);
}

TEST_F(CheckpointSyncTest, TheFinalPassTakesUnfinishedUnitsOnlyWhenTheRanksEndedByThemselves) {
  {
    CheckpointUploader uploader(&store_, &reporter_, Options());
    WriteFile(dir() + "/killed.pt", "maybe torn");
    uploader.Stop();
    EXPECT_EQ(uploader.FinalPass(/*ranks_ended_cleanly=*/false).files, 0u);
    EXPECT_FALSE(InStore("killed.pt"));
  }
  CheckpointUploader uploader(&store_, &reporter_, Options());
  uploader.Stop();
  EXPECT_EQ(uploader.FinalPass(/*ranks_ended_cleanly=*/true).files, 1u);
  EXPECT_TRUE(InStore("killed.pt"));
}

TEST_F(CheckpointSyncTest, ASecondStartOnThePrefixKeepsItsManifestAndSendsNothingAgain) {
  CheckpointSyncOptions options = Options();
  options.keep_last = 2;
  {
    CheckpointUploader first(&store_, &reporter_, options);
    WriteFile(dir() + "/epoch1.pt", "1");
    Commit("epoch1.pt");
    first.PassOnce();
  }
  CheckpointUploader second(&store_, &reporter_, options);
  EXPECT_EQ(Listed(second), std::vector<std::string>{"epoch1.pt"});
  clock_.Advance(std::chrono::seconds(60));
  second.PassOnce();
  EXPECT_EQ(second.uploads(), 0);
  for (const std::string name : {"epoch2.pt", "epoch3.pt"}) {
    WriteFile(dir() + "/" + name, name);
    Commit(name);
    second.PassOnce();
  }
  EXPECT_FALSE(InStore("epoch1.pt"));
  EXPECT_EQ(Listed(second), (std::vector<std::string>{"epoch2.pt", "epoch3.pt"}));
}

TEST_F(CheckpointSyncTest, RestoreTakesOnlyWhatTheManifestsList) {
  {
    CheckpointUploader uploader(&store_, &reporter_, Options());
    WriteFile(dir() + "/epoch1.pt", "one");
    WriteFile(dir() + "/step-2/model.pt", "two");
    Commit("epoch1.pt");
    Commit("step-2");
    uploader.PassOnce();
  }
  // A file on its way (not listed yet) is not restored.
  ASSERT_TRUE(store_.PutBytes(std::string(kPrefix) + "/epoch3.pt", "on its way").ok());
  const std::string target = tmp_ / "new-node/checkpoints";
  Result<RestoreReport> restored = RestoreCheckpointFiles(&store_, kPrefix, target);
  ASSERT_TRUE(restored.ok()) << restored.status().message();
  EXPECT_TRUE(restored->manifest);
  EXPECT_EQ(restored->units, 2);
  EXPECT_EQ(restored->files, 2);
  EXPECT_EQ(ReadFile(target + "/epoch1.pt"), "one");
  EXPECT_EQ(ReadFile(target + "/step-2/model.pt"), "two");
  EXPECT_FALSE(fs::exists(target + "/epoch3.pt"));
  EXPECT_FALSE(fs::exists(target + "/.trainrun"));
  // Again: what is there with the same size stays.
  restored = RestoreCheckpointFiles(&store_, kPrefix, target);
  ASSERT_TRUE(restored.ok());
  EXPECT_EQ(restored->files, 0);
  EXPECT_EQ(restored->skipped, 2);
}

TEST_F(CheckpointSyncTest, RestoreOfAFolderWithoutManifestTakesEverythingAndNothingIsFine) {
  ASSERT_TRUE(store_.PutBytes("mine/a.pt", "a").ok());
  ASSERT_TRUE(store_.PutBytes("mine/d/b.pt", "b").ok());
  const std::string target = tmp_ / "restored";
  Result<RestoreReport> restored = RestoreCheckpointFiles(&store_, "mine", target);
  ASSERT_TRUE(restored.ok()) << restored.status().message();
  EXPECT_FALSE(restored->manifest);
  EXPECT_EQ(restored->units, 2);
  EXPECT_EQ(ReadFile(target + "/d/b.pt"), "b");
  restored = RestoreCheckpointFiles(&store_, "nothing/here", target);
  ASSERT_TRUE(restored.ok());
  EXPECT_EQ(restored->units, 0);
}

}  // namespace
}  // namespace trainrun
