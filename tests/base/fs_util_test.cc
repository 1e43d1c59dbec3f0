// File helpers on a real file system.
#include "base/fs_util.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>

#include <gtest/gtest.h>

#include "tests/test_util.h"

namespace trainrun {
namespace {

TEST(FsUtilTest, CopyFileAtomicKeepsASparseFileSparse) {
  testing::TempDir dir;
  const std::string from = dir / "sparse.bin";
  const off_t size = 64 << 20;  // 64 MiB, of which 8 KiB hold data
  int fd = open(from.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0640);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(ftruncate(fd, size), 0);
  const std::string head(4096, 'h');
  const std::string middle(4096, 'm');
  ASSERT_EQ(pwrite(fd, head.data(), head.size(), 0), 4096);
  ASSERT_EQ(pwrite(fd, middle.data(), middle.size(), 32 << 20), 4096);
  close(fd);
  struct stat src {};
  ASSERT_EQ(stat(from.c_str(), &src), 0);
  if (src.st_blocks * 512 >= size) GTEST_SKIP() << "this file system does not keep holes";

  uint64_t bytes = 0;
  Status s = CopyFileAtomic(from, dir / "copy/sparse.bin", &bytes);
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_EQ(bytes, static_cast<uint64_t>(size));
  struct stat dst {};
  ASSERT_EQ(stat((dir / "copy/sparse.bin").c_str(), &dst), 0);
  EXPECT_EQ(dst.st_size, size);
  EXPECT_EQ(dst.st_mode & 07777, 0640u);
  EXPECT_LT(dst.st_blocks * 512, 4 << 20) << "the copy of a sparse file was filled in";
  int copy = open((dir / "copy/sparse.bin").c_str(), O_RDONLY);
  ASSERT_GE(copy, 0);
  auto read_at = [copy](off_t offset, size_t n) {
    std::string out(n, '?');
    out.resize(std::max<ssize_t>(0, pread(copy, out.data(), n, offset)));
    return out;
  };
  EXPECT_EQ(read_at(0, 4096), head);
  EXPECT_EQ(read_at(32 << 20, 4096), middle);
  EXPECT_EQ(read_at(4096, 4096), std::string(4096, '\0'));
  EXPECT_EQ(read_at(size - 10, 10), std::string(10, '\0'));
  close(copy);
}

TEST(FsUtilTest, CopyFileAtomicCopiesAnOrdinaryFileWhole) {
  testing::TempDir dir;
  std::string body;
  for (int i = 0; i < 100000; ++i) body += std::to_string(i) + "\n";
  testing::WriteFile(dir / "a", body);
  ASSERT_TRUE(CopyFileAtomic(dir / "a", dir / "b").ok());
  EXPECT_EQ(testing::ReadFile(dir / "b"), body);
  testing::WriteFile(dir / "empty", "");
  ASSERT_TRUE(CopyFileAtomic(dir / "empty", dir / "empty2").ok());
  EXPECT_EQ(testing::ReadFile(dir / "empty2"), "");
}

}  // namespace
}  // namespace trainrun
