// What an upload of a folder plans to send: real folders win over symlinks to them.
#include "runtime/run/history.h"

#include <unistd.h>

#include <algorithm>
#include <filesystem>

#include <gtest/gtest.h>

#include "tests/test_util.h"

namespace trainrun {
namespace {

std::vector<std::string> Keys(const std::vector<TransferItem>& items) {
  std::vector<std::string> keys;
  for (const TransferItem& item : items) keys.push_back(item.key);
  std::sort(keys.begin(), keys.end());
  return keys;
}

TEST(PlanUploadTest, RealFoldersWinOverSymlinksThatSortFirst) {
  testing::TempDir wd;
  testing::WriteFile(wd / "outputs/sub/f.txt", "f");
  testing::WriteFile(wd / "outputs/run_a/model.pt", "m");
  // Both links sort before the folders they point to.
  ASSERT_EQ(symlink("sub", (wd / "outputs/loop_inside").c_str()), 0);
  ASSERT_EQ(symlink("run_a", (wd / "outputs/latest").c_str()), 0);
  ASSERT_EQ(symlink("/etc", (wd / "outputs/etc_link").c_str()), 0);

  std::vector<TransferItem> items;
  std::vector<SkippedSymlink> skipped;
  Status s = PlanUpload(wd / "outputs", "exp/run/outputs", wd.path(), "exp/run/", &items, &skipped);
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_EQ(Keys(items), (std::vector<std::string>{"exp/run/outputs/run_a/model.pt",
                                                   "exp/run/outputs/sub/f.txt"}));
  ASSERT_EQ(skipped.size(), 3u);
  std::sort(skipped.begin(), skipped.end(),
            [](const SkippedSymlink& a, const SkippedSymlink& b) { return a.path < b.path; });
  EXPECT_EQ(skipped[0].path, "outputs/etc_link");
  EXPECT_EQ(skipped[0].reason, SkippedSymlink::kOutsideWorkdir);
  EXPECT_EQ(skipped[1].path, "outputs/latest");
  EXPECT_EQ(skipped[1].target, "run_a");
  EXPECT_EQ(skipped[1].reason, SkippedSymlink::kAlreadyUploaded);
  EXPECT_EQ(skipped[2].path, "outputs/loop_inside");
  EXPECT_EQ(skipped[2].reason, SkippedSymlink::kAlreadyUploaded);
}

TEST(PlanUploadTest, ALinkToAFolderNotOtherwiseUploadedIsFollowed) {
  testing::TempDir wd;
  testing::WriteFile(wd / "elsewhere/ckpt/a.bin", "a");
  std::filesystem::create_directories(wd / "outputs");
  ASSERT_EQ(symlink("../elsewhere/ckpt", (wd / "outputs/ckpt").c_str()), 0);
  std::vector<TransferItem> items;
  std::vector<SkippedSymlink> skipped;
  ASSERT_TRUE(PlanUpload(wd / "outputs", "o", wd.path(), "", &items, &skipped).ok());
  EXPECT_EQ(items.size(), 1u);
  EXPECT_TRUE(skipped.empty());
}

}  // namespace
}  // namespace trainrun
