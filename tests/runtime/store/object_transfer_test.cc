// Downloads through DownloadObject with a scripted fetch: an object whose bytes do
// not match the MD5 the store gave is refused and leaves nothing behind.
#include "runtime/store/object_transfer.h"

#include <unistd.h>

#include <filesystem>

#include <gtest/gtest.h>

#include "base/hashing.h"
#include "tests/test_util.h"

namespace trainrun {
namespace {

// A fetch that serves `body` with the given MD5 (raw bytes), in ranges.
auto Serve(const std::string& body, const std::string& md5) {
  return [body, md5](int fd, uint64_t offset, uint64_t length,
                     const std::string&) -> Result<RangeResult> {
    RangeResult r;
    r.total_size = body.size();
    r.etag = "\"v1\"";
    r.md5 = md5;
    if (offset < body.size()) {
      std::string part = body.substr(offset, length);
      if (pwrite(fd, part.data(), part.size(), static_cast<off_t>(offset)) !=
          static_cast<ssize_t>(part.size())) {
        return ErrnoStatus(errno, "pwrite");
      }
      r.bytes = part.size();
    }
    return r;
  };
}

TEST(ObjectTransferTest, ADownloadWhoseMd5MatchesLandsWhole) {
  testing::TempDir dir;
  const std::string body(100'000, 'x');
  Status s = DownloadObject(dir / "out", 4096, 4, Serve(body, Md5(body)));
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_EQ(testing::ReadFile(dir / "out"), body);
}

TEST(ObjectTransferTest, ADigestMismatchIsAnErrorAndLeavesNothingBehind) {
  testing::TempDir dir;
  const std::string body(100'000, 'x');
  for (uint64_t part_size : {uint64_t{4096}, uint64_t{1} << 20}) {  // many parts, one
    Status s = DownloadObject(dir / "out", part_size, 4, Serve(body, Md5("something else")));
    ASSERT_FALSE(s.ok()) << "a corrupt download was accepted (part size " << part_size << ")";
    EXPECT_EQ(s.code(), StatusCode::kUnavailable);
    EXPECT_NE(s.message().find("MD5"), std::string::npos) << s.message();
    EXPECT_NE(s.message().find(dir / "out"), std::string::npos) << s.message();
    EXPECT_TRUE(std::filesystem::is_empty(dir.path())) << "a partial file was left behind";
  }
}

TEST(ObjectTransferTest, VerifyFileMd5NamesTheFileOnMismatch) {
  testing::TempDir dir;
  testing::WriteFile(dir / "f", "hello");
  EXPECT_TRUE(VerifyFileMd5(dir / "f", Md5("hello"), "f").ok());
  Status s = VerifyFileMd5(dir / "f", Md5("hullo"), "data/f");
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("data/f"), std::string::npos) << s.message();
}

}  // namespace
}  // namespace trainrun
