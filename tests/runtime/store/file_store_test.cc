#include "runtime/store/file_store.h"

#include <sys/stat.h>

#include <atomic>
#include <filesystem>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "runtime/run/history.h"
#include "runtime/store/store_factory.h"
#include "tests/test_util.h"

namespace trainrun {
namespace {

using testing::ReadFile;
using testing::TempDir;
using testing::WriteFile;

TEST(FileStoreTest, PutGetStatListRangesAndKeys) {
  TempDir dir;
  FileStore file_store(dir / "root");
  Store& store = file_store;  // the interface, with its default arguments
  ASSERT_TRUE(store.PutBytes("e/r/run.json", "{}").ok());
  WriteFile(dir / "local/model.bin", "0123456789");
  ASSERT_TRUE(store.PutFile("e/r/outputs/model.bin", dir / "local/model.bin").ok());
  EXPECT_EQ(ReadFile(dir / "root/e/r/outputs/model.bin"), "0123456789");
  EXPECT_EQ(*store.GetBytes("e/r/outputs/model.bin", 3, 4), "3456");
  EXPECT_EQ(*store.GetBytes("e/r/outputs/model.bin", 8), "89");
  EXPECT_EQ(*store.GetBytes("e/r/outputs/model.bin", 20), "");
  EXPECT_EQ(store.Stat("e/r/outputs/model.bin")->size, 10u);
  EXPECT_EQ(store.Stat("e/r/nope").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(store.GetBytes("e/r/nope").status().code(), StatusCode::kNotFound);

  auto all = store.List("e/r/");
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 2u);
  EXPECT_EQ((*all)[0].key, "e/r/outputs/model.bin");
  EXPECT_EQ((*all)[1].key, "e/r/run.json");
  EXPECT_EQ(store.List("e/r/out")->size(), 1u);
  EXPECT_EQ(*store.ListChildren("e/r/"), (std::vector<std::string>{"outputs/", "run.json"}));

  ASSERT_TRUE(store.GetFile("e/r/outputs/model.bin", dir / "down/m.bin").ok());
  EXPECT_EQ(ReadFile(dir / "down/m.bin"), "0123456789");

  for (const char* bad : {"../x", "/abs", "a//b", "a/./b", ""}) {
    EXPECT_EQ(store.PutBytes(bad, "x").code(), StatusCode::kInvalidArgument) << bad;
  }
  ASSERT_TRUE(store.Delete("e/r/run.json").ok());
  EXPECT_TRUE(store.Delete("e/r/run.json").ok());
}

// Of 16 writers creating one key at once, exactly one succeeds; the others are told
// it exists and change nothing; no temporary file is left behind.
TEST(FileStoreTest, CreateBytesIsExclusive) {
  TempDir dir;
  FileStore file_store(dir / "root");
  Store& store = file_store;  // the interface, with its default arguments
  std::vector<Status> results(16);
  std::vector<std::thread> writers;
  for (size_t i = 0; i < results.size(); ++i) {
    writers.emplace_back(
        [&, i] { results[i] = store.CreateBytes("e/r/run.json", "writer " + std::to_string(i)); });
  }
  for (std::thread& t : writers) t.join();
  int winners = 0;
  std::string winner;
  for (size_t i = 0; i < results.size(); ++i) {
    if (results[i].ok()) {
      ++winners;
      winner = "writer " + std::to_string(i);
      continue;
    }
    EXPECT_EQ(results[i].code(), StatusCode::kAlreadyExists) << results[i].message();
    EXPECT_NE(results[i].message().find(store.Uri() + "/e/r/run.json"), std::string::npos)
        << results[i].message();
  }
  EXPECT_EQ(winners, 1);
  EXPECT_EQ(*store.GetBytes("e/r/run.json"), winner);
  EXPECT_EQ(store.CreateBytes("e/r/run.json", "late").code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(*store.GetBytes("e/r/run.json"), winner);
  size_t entries = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir / "root/e/r")) {
    (void)entry;
    ++entries;
  }
  EXPECT_EQ(entries, 1u) << "temporary files were left behind";
}

TEST(FileStoreTest, OpenStoreUris) {
  EXPECT_EQ((*OpenStore("file:///tmp/h"))->Uri(), "file:///tmp/h");
  EXPECT_EQ((*OpenStore("/tmp/h/"))->Uri(), "file:///tmp/h");
  EXPECT_EQ(OpenStore("gs://b").status().code(), StatusCode::kInvalidArgument);
}

TEST(PlanUploadTest, SymlinksInsideAreFollowedOutsideRecorded) {
  TempDir dir;
  std::string wd = dir / "wd";
  WriteFile(wd + "/outputs/a.txt", "a");
  WriteFile(wd + "/outputs/sub/b.txt", "bb");
  WriteFile(wd + "/ckpt/c.pt", "ccc");
  WriteFile(dir / "outside/secret", "s");
  symlink((wd + "/ckpt/c.pt").c_str(), (wd + "/outputs/c.pt").c_str());
  symlink((dir / "outside/secret").c_str(), (wd + "/outputs/secret").c_str());
  symlink((dir / "nowhere").c_str(), (wd + "/outputs/dangling").c_str());
  symlink((wd + "/outputs").c_str(), (wd + "/outputs/sub/loop").c_str());

  std::vector<TransferItem> items;
  std::vector<SkippedSymlink> skipped;
  ASSERT_TRUE(PlanUpload(wd + "/outputs", "e/r/outputs", wd, "e/r/", &items, &skipped).ok());
  std::vector<std::string> keys;
  for (const TransferItem& i : items) keys.push_back(i.key);
  EXPECT_EQ(keys, (std::vector<std::string>{"e/r/outputs/a.txt", "e/r/outputs/c.pt",
                                            "e/r/outputs/sub/b.txt"}));
  ASSERT_EQ(skipped.size(), 3u);
  EXPECT_EQ(skipped[0].path, "outputs/dangling");
  EXPECT_EQ(skipped[0].reason, SkippedSymlink::kOutsideWorkdir);
  EXPECT_EQ(skipped[1].path, "outputs/secret");
  EXPECT_EQ(skipped[1].target, dir / "outside/secret");
  // The loop back to outputs/ is a link to a folder uploaded under its own name.
  EXPECT_EQ(skipped[2].path, "outputs/sub/loop");
  EXPECT_EQ(skipped[2].reason, SkippedSymlink::kAlreadyUploaded);

  FileStore store(dir / "h");
  UploadReport report = UploadItems(&store, items, 4, {});
  EXPECT_EQ(report.files, 3u);
  EXPECT_EQ(report.bytes, 6u);
  EXPECT_TRUE(report.errors.empty());
  EXPECT_EQ(ReadFile(dir / "h/e/r/outputs/c.pt"), "ccc");
}

TEST(PlanUploadTest, FailuresAreListedAndDoNotStopTheRest) {
  TempDir dir;
  WriteFile(dir / "wd/logs/a.txt", "a");
  WriteFile(dir / "wd/logs/b.txt", "b");
  std::vector<TransferItem> items;
  std::vector<SkippedSymlink> skipped;
  ASSERT_TRUE(PlanUpload(dir / "wd/logs", "e/r/logs", dir / "wd", "e/r/", &items, &skipped).ok());
  ASSERT_EQ(items.size(), 2u);
  ::unlink((dir / "wd/logs/a.txt").c_str());  // vanishes before the upload
  FileStore store(dir / "h");
  UploadReport report = UploadItems(&store, items, 2, {});
  EXPECT_EQ(report.files, 1u);
  ASSERT_EQ(report.failed_paths.size(), 1u);
  EXPECT_EQ(report.failed_paths[0], dir / "wd/logs/a.txt");
}

TEST(RunHistoryTest, ListFindAndRead) {
  TempDir dir;
  FileStore store(dir / "h");
  RunHistory history(&store);
  WallTime t0 = WallTime(std::chrono::seconds(1'800'000'000));
  for (int i = 0; i < 3; ++i) {
    RunRecord r;
    r.experiment = i == 2 ? "other" : "mnist";
    r.run_id = "run" + std::to_string(i);
    r.SetStatus(RunStatus::kPreparing, t0 + std::chrono::seconds(i));
    ASSERT_TRUE(history.WriteRecord(r).ok());
  }
  auto runs = history.ListRuns();
  ASSERT_TRUE(runs.ok());
  ASSERT_EQ(runs->size(), 3u);
  EXPECT_EQ((*runs)[0].run_id, "run2");  // newest first
  EXPECT_EQ(history.ListRuns("mnist")->size(), 2u);
  EXPECT_EQ(history.FindRun("run1")->experiment, "mnist");
  EXPECT_EQ(history.FindRun("nope").status().code(), StatusCode::kNotFound);

  RunRecord dup;
  dup.experiment = "other";
  dup.run_id = "run1";
  dup.SetStatus(RunStatus::kPreparing, t0);
  ASSERT_TRUE(history.WriteRecord(dup).ok());
  Result<RunKey> ambiguous = history.FindRun("run1");
  EXPECT_EQ(ambiguous.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(ambiguous.status().message().find("mnist, other"), std::string::npos);
  EXPECT_TRUE(history.FindRun("run1", "other").ok());
}

}  // namespace
}  // namespace trainrun
