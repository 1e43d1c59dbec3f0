// Downloads through DownloadObject with a scripted fetch: an object whose bytes do
// not match the MD5 the store gave is refused and leaves nothing behind.
#include "runtime/store/object_transfer.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <random>
#include <thread>

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

std::string RandomBytes(size_t size, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string out(size, '\0');
  for (char& c : out) c = static_cast<char>(rng());
  return out;
}

TEST(PartReaderTest, EachByteIsReadOnceAndTheWholeMd5ComesFromTheParts) {
  testing::TempDir dir;
  const uint64_t part_size = 1 << 20;
  const std::string content = RandomBytes(10 * part_size + 12345, 1);
  testing::WriteFile(dir / "f", content);
  int fd = open((dir / "f").c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  const PartPlan plan = PlanParts(content.size(), part_size, 10000);
  ASSERT_EQ(plan.count, 11u);
  // Room for two buffers: parts wait for each other's memory, and never deadlock.
  ByteBudget budget(2 * part_size);
  std::vector<std::string> parts(plan.count);
  std::atomic<int> in_flight{0}, most_in_flight{0};
  Md5Stream().Finish();  // OpenSSL reads its configuration once, on first use
  const uint64_t before = testing::BytesReadSoFar();
  PartReader reader(fd, dir / "f", content.size(), plan, /*whole_md5=*/true, &budget);
  Status s = ForEachPart(content.size(), plan, 8, [&](uint64_t index, uint64_t, uint64_t) {
    Result<PartBody> body = reader.Read(index);
    if (!body.ok()) return body.status();
    int now = ++in_flight;
    for (int seen = most_in_flight;
         now > seen && !most_in_flight.compare_exchange_weak(seen, now);) {
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));  // a request
    Result<std::string> bytes = body->Take(Md5(body->bytes()));
    --in_flight;
    if (!bytes.ok()) return bytes.status();
    parts[index] = std::move(bytes).value();
    return Status::Ok();
  });
  ASSERT_TRUE(s.ok()) << s.message();
  Result<std::string> whole = reader.WholeMd5();
  const uint64_t read = testing::BytesReadSoFar() - before;
  close(fd);
  ASSERT_TRUE(whole.ok()) << whole.status().message();
  EXPECT_EQ(HexEncode(*whole), HexEncode(Md5(content)));
  std::string joined;
  for (const std::string& p : parts) joined += p;
  EXPECT_TRUE(joined == content) << "the parts are not the file";
  EXPECT_EQ(read, content.size()) << "bytes read for one upload of the file";
  EXPECT_LE(most_in_flight.load(), 2) << "more buffers than the budget holds";
}

TEST(PartReaderTest, ARetryReadsItsPartAgainAndRefusesChangedBytes) {
  testing::TempDir dir;
  testing::WriteFile(dir / "f", std::string(3000, 'a'));
  int fd = open((dir / "f").c_str(), O_RDWR | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  ByteBudget budget(1 << 20);
  PartReader reader(fd, dir / "f", 3000, PlanParts(3000, 1000, 10000), false, &budget);
  for (uint64_t i = 0; i < 2; ++i) ASSERT_TRUE(reader.Read(i).ok());
  Result<PartBody> body = reader.Read(2);
  ASSERT_TRUE(body.ok());
  const std::string md5 = Md5(body->bytes());
  EXPECT_EQ(*body->Take(md5), std::string(1000, 'a'));
  EXPECT_EQ(*body->Take(md5), std::string(1000, 'a'));  // read again, still the same
  ASSERT_EQ(pwrite(fd, "b", 1, 2500), 1);
  Result<std::string> changed = body->Take(md5);
  ASSERT_FALSE(changed.ok());
  EXPECT_NE(changed.status().message().find("bytes 2000-2999 changed"), std::string::npos)
      << changed.status().message();
  EXPECT_EQ(*reader.WholeMd5(), "");
  close(fd);
}

TEST(PartReaderTest, AFailedReadFailsThePartsAfterIt) {
  testing::TempDir dir;
  testing::WriteFile(dir / "f", std::string(1500, 'a'));  // shorter than the plan says
  int fd = open((dir / "f").c_str(), O_RDONLY | O_CLOEXEC);
  ByteBudget budget(1 << 20);
  const PartPlan plan = PlanParts(3000, 1000, 10000);
  PartReader reader(fd, dir / "f", 3000, plan, true, &budget);
  Status s = ForEachPart(3000, plan, 3, [&](uint64_t index, uint64_t, uint64_t) {
    return reader.Read(index).status();
  });
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("shrank"), std::string::npos) << s.message();
  EXPECT_FALSE(reader.WholeMd5().ok());
  close(fd);
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
