#include "runtime/run/snapshot.h"

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

#include <gtest/gtest.h>

#include "tests/test_util.h"

namespace trainrun {
namespace {

using testing::ReadFile;
using testing::TempDir;
using testing::WriteFile;
namespace fs = std::filesystem;

TEST(SnapshotTest, CopiesHonouringAmlignoreOverGitignore) {
  TempDir dir;
  std::string src = dir / "src";
  WriteFile(src + "/train.py", "print(1)");
  WriteFile(src + "/run.sh", "#!/bin/sh\n");
  chmod((src + "/run.sh").c_str(), 0755);
  WriteFile(src + "/.gitignore", "*.py\n");  // ignored: .amlignore wins
  WriteFile(src + "/.amlignore", "data/\n*.ckpt\n");
  WriteFile(src + "/data/big.bin", "x");
  WriteFile(src + "/m.ckpt", "x");
  WriteFile(src + "/pkg/.gitignore", "secret.txt\n");
  WriteFile(src + "/pkg/secret.txt", "x");
  WriteFile(src + "/pkg/mod.py", "x");
  WriteFile(src + "/.git/HEAD", "ref");
  symlink("train.py", (src + "/link.py").c_str());

  Result<SnapshotStats> stats = CopySnapshot(src, dir / "wd");
  ASSERT_TRUE(stats.ok()) << stats.status().message();
  EXPECT_EQ(stats->ignore_file, ".amlignore");
  EXPECT_EQ(ReadFile(dir / "wd/train.py"), "print(1)");
  EXPECT_TRUE(fs::exists(dir / "wd/pkg/mod.py"));
  EXPECT_FALSE(fs::exists(dir / "wd/pkg/secret.txt"));
  EXPECT_FALSE(fs::exists(dir / "wd/data"));
  EXPECT_FALSE(fs::exists(dir / "wd/m.ckpt"));
  EXPECT_FALSE(fs::exists(dir / "wd/.git"));
  EXPECT_TRUE(fs::is_symlink(dir / "wd/link.py"));
  EXPECT_EQ(access((dir / "wd/run.sh").c_str(), X_OK), 0);
  EXPECT_EQ(stats->ignored, 4u);  // data/, m.ckpt, pkg/secret.txt, .git
}

TEST(SnapshotTest, SkipsTheRunDirectoryInsideTheSource) {
  TempDir dir;
  WriteFile(dir / "src/a.py", "a");
  WriteFile(dir / "src/runs/old/x", "x");
  Result<SnapshotStats> stats =
      CopySnapshot(dir / "src", dir / "src/runs/new/wd", {dir / "src/runs"});
  ASSERT_TRUE(stats.ok()) << stats.status().message();
  EXPECT_EQ(stats->files, 1u);
}

TEST(SnapshotTest, StopsBeforeTheNextFileOnceCanceled) {
  TempDir dir;
  for (int i = 0; i < 20; ++i) WriteFile(dir / ("src/f" + std::to_string(i)), "x");
  CancelToken cancel;
  cancel.Cancel("SIGTERM");
  Result<SnapshotStats> stats = CopySnapshot(dir / "src", dir / "wd", {}, &cancel);
  ASSERT_FALSE(stats.ok());
  EXPECT_EQ(stats.status().code(), StatusCode::kCanceled);
  EXPECT_NE(stats.status().message().find("canceled (SIGTERM)"), std::string::npos)
      << stats.status().message();
  EXPECT_TRUE(fs::is_empty(dir / "wd"));
}

TEST(SnapshotTest, GitInfoOfACheckout) {
  TempDir dir;
  std::string repo = dir / "repo";
  WriteFile(repo + "/a.py", "a");
  std::string cmd = "cd " + repo +
                    " && git init -q -b main && git -c user.email=t@t -c user.name=t add . && "
                    "git -c user.email=t@t -c user.name=t commit -qm init && "
                    "git remote add origin https://user:secret@example.com/r.git";
  ASSERT_EQ(system(cmd.c_str()), 0);
  std::optional<GitInfo> git = ReadGitInfo(repo);
  ASSERT_TRUE(git);
  EXPECT_EQ(git->commit.size(), 40u);
  EXPECT_EQ(git->branch, "main");
  EXPECT_EQ(git->remote, "https://example.com/r.git");
  EXPECT_FALSE(git->dirty);
  WriteFile(repo + "/b.py", "b");
  EXPECT_TRUE(ReadGitInfo(repo)->dirty);
  EXPECT_FALSE(ReadGitInfo(dir / "repo/../"));  // not a checkout
}

}  // namespace
}  // namespace trainrun
