// HistoryUploader and LiveUploader against a file store that fails on command:
// retries in rounds until the finalize deadline (on a fake clock), permanent
// failures reported at once, files already sent live skipped, and only changed
// files sent again by the live uploader.
#include "runtime/run/history_uploader.h"

#include <filesystem>
#include <mutex>

#include <gtest/gtest.h>

#include "runtime/run/live_uploader.h"
#include "runtime/store/file_store.h"
#include "tests/fakes/fake_clock.h"
#include "tests/test_util.h"

namespace trainrun {
namespace {

using std::chrono::seconds;

// A FileStore whose PutFile fails with `failure` while `down` is true, and counts
// the uploads that got through.
class FlakyStore : public FileStore {
 public:
  using FileStore::FileStore;
  Status PutFile(const std::string& key, const std::string& local_path) override {
    std::lock_guard lock(mu_);
    if (down) return failure;
    ++puts[key];
    return FileStore::PutFile(key, local_path);
  }
  std::mutex mu_;
  bool down = false;
  Status failure = UnavailableError("store unreachable");
  std::map<std::string, int> puts;
};

// Advances the clock; after `heal_after` sleeps the store comes back.
class HealingSleeper : public Sleeper {
 public:
  HealingSleeper(testing::FakeClock* clock, FlakyStore* store, int heal_after)
      : clock_(clock), store_(store), heal_after_(heal_after) {}
  void Sleep(Duration d) override {
    clock_->Advance(d);
    if (++sleeps == heal_after_) {
      std::lock_guard lock(store_->mu_);
      store_->down = false;
    }
  }
  int sleeps = 0;

 private:
  testing::FakeClock* clock_;
  FlakyStore* store_;
  int heal_after_;
};

class HistoryUploaderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (int i = 0; i < 5; ++i) {
      std::string path = dir_ / ("spool/f" + std::to_string(i));
      testing::WriteFile(path, "data" + std::to_string(i));
      items_.push_back({path, "run/outputs/f" + std::to_string(i), 5});
    }
  }
  HistoryUploaderOptions Options(Sleeper* sleeper) {
    HistoryUploaderOptions o;
    o.finalize_timeout = seconds(60);
    o.round_backoff = {seconds(1), seconds(8), 2.0, false};
    o.clock = &clock_;
    o.sleeper = sleeper;
    return o;
  }
  testing::TempDir dir_;
  testing::FakeClock clock_;
  WarningCollector reporter_;
  std::vector<TransferItem> items_;
};

TEST_F(HistoryUploaderTest, RetriesInRoundsUntilTheStoreComesBack) {
  FlakyStore store(dir_ / "store");
  store.down = true;
  HealingSleeper sleeper(&clock_, &store, 3);
  HistoryUploader uploader(&store, &reporter_, Options(&sleeper));
  uploader.StartDeadline();
  UploadReport report = uploader.Upload(items_, "outputs");
  EXPECT_TRUE(report.errors.empty()) << report.errors.front();
  EXPECT_EQ(report.files, 5u);
  EXPECT_EQ(sleeper.sleeps, 3);
  EXPECT_EQ(clock_.Elapsed(), seconds(1 + 2 + 4));
  for (const TransferItem& item : items_)
    EXPECT_EQ(testing::ReadFile(dir_ / ("store/" + item.key)), testing::ReadFile(item.local_path));
  ASSERT_EQ(reporter_.warnings().size(), 1u);  // one warning, then quiet retries
  EXPECT_NE(reporter_.warnings()[0].find("stay on local disk"), std::string::npos);
}

TEST_F(HistoryUploaderTest, GivesUpAtTheDeadlineNamingEveryLocalFile) {
  FlakyStore store(dir_ / "store");
  store.down = true;
  HealingSleeper sleeper(&clock_, &store, 1000);
  HistoryUploader uploader(&store, &reporter_, Options(&sleeper));
  uploader.StartDeadline();
  UploadReport report = uploader.Upload(items_, "outputs");
  EXPECT_EQ(report.files, 0u);
  ASSERT_EQ(report.failed_paths.size(), 5u);
  for (size_t i = 0; i < items_.size(); ++i) {
    EXPECT_NE(
        std::find(report.failed_paths.begin(), report.failed_paths.end(), items_[i].local_path),
        report.failed_paths.end());
  }
  // Backoff 1, 2, 4, 8, 8, ... capped by the 60 s deadline, never past it.
  EXPECT_EQ(clock_.Elapsed(), seconds(60));
  EXPECT_TRUE(uploader.Expired());
}

TEST_F(HistoryUploaderTest, PermanentFailuresAreNotRetried) {
  FlakyStore store(dir_ / "store");
  store.down = true;
  store.failure = Status(StatusCode::kPermissionDenied, "access denied");
  HealingSleeper sleeper(&clock_, &store, 1);
  HistoryUploader uploader(&store, &reporter_, Options(&sleeper));
  uploader.StartDeadline();
  UploadReport report = uploader.Upload(items_, "outputs");
  EXPECT_EQ(report.failed_paths.size(), 5u);
  EXPECT_EQ(sleeper.sleeps, 0);
  EXPECT_EQ(report.failures[0].code(), StatusCode::kPermissionDenied);
}

TEST_F(HistoryUploaderTest, WithoutADeadlineThereIsOneRound) {
  FlakyStore store(dir_ / "store");
  store.down = true;
  HealingSleeper sleeper(&clock_, &store, 1);
  HistoryUploader uploader(&store, &reporter_, Options(&sleeper));
  EXPECT_EQ(uploader.Upload(items_, "outputs").failed_paths.size(), 5u);
  EXPECT_EQ(sleeper.sleeps, 0);
}

TEST_F(HistoryUploaderTest, LiveUploadsSendOnlyChangesAndFinalizeSkipsWhatArrived) {
  FlakyStore store(dir_ / "store");
  LiveUploader live(&store, &reporter_, {{dir_ / "spool", "run/outputs"}}, dir_.path());
  live.PassOnce();
  EXPECT_EQ(store.puts.size(), 5u);
  live.PassOnce();  // nothing changed: nothing sent
  for (const auto& [key, n] : store.puts) EXPECT_EQ(n, 1) << key;
  testing::WriteFile(items_[2].local_path, "grown data2");
  live.PassOnce();
  EXPECT_EQ(store.puts["run/outputs/f2"], 2);
  EXPECT_EQ(store.puts["run/outputs/f1"], 1);
  EXPECT_EQ(live.passes(), 3);

  // An outage: a warning, nothing marked sent; the next pass catches up.
  testing::WriteFile(items_[3].local_path, "changed during outage");
  store.down = true;
  live.PassOnce();
  EXPECT_EQ(reporter_.warnings().size(), 1u);
  store.down = false;
  live.PassOnce();
  EXPECT_EQ(store.puts["run/outputs/f3"], 2);
  EXPECT_EQ(testing::ReadFile(dir_ / "store/run/outputs/f3"), "changed during outage");

  // Finalizing sends only what changed after the last live pass.
  testing::WriteFile(items_[4].local_path, "last words");
  HealingSleeper sleeper(&clock_, &store, 1);
  HistoryUploader uploader(&store, &reporter_, Options(&sleeper));
  uploader.SetAlreadyUploaded(live.uploaded());
  items_[4].size = 10;
  UploadReport report = uploader.Upload(items_, "outputs");
  EXPECT_EQ(report.files, 5u);
  EXPECT_EQ(store.puts["run/outputs/f4"], 2);
  EXPECT_EQ(store.puts["run/outputs/f0"], 1);
}

}  // namespace
}  // namespace trainrun
