// SpaceReserve on a real file system, full and not.
#include "base/space_reserve.h"

#include <unistd.h>

#include <gtest/gtest.h>

#include "tests/small_tmpfs.h"
#include "tests/test_util.h"

namespace trainrun {
namespace {

using testing::ReadFile;

TEST(SpaceReserveTest, WritesIntoTheReservedSpaceOnAFullDisk) {
  testing::SmallTmpfs disk("1m");
  if (!disk.skip_reason().empty()) GTEST_SKIP() << disk.skip_reason();
  testing::WriteFile(disk / "run.json", "{\"status\": \"Running\"}\n");
  Result<SpaceReserve> reserve = SpaceReserve::Create(disk / ".run.json.reserve", 64 << 10);
  ASSERT_TRUE(reserve.ok()) << reserve.status().message();
  disk.Fill();
  ASSERT_LT(disk.FreeBytes(), 4096u);
  // An ordinary write fails now...
  testing::WriteFile(disk / "other", std::string(8192, 'x'));
  EXPECT_LT(ReadFile(disk / "other").size(), 8192u);

  const std::string final_record = "{\"status\": \"Failed\", \"exitCode\": 74}\n";
  Status s = reserve->WriteAs(disk / "run.json", final_record);
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_EQ(ReadFile(disk / "run.json"), final_record);
  EXPECT_FALSE(reserve->available());
  EXPECT_NE(access((disk / ".run.json.reserve").c_str(), F_OK), 0);
  EXPECT_FALSE(reserve->WriteAs(disk / "run.json", "{}").ok()) << "a reserve is used once";
}

TEST(SpaceReserveTest, ContentLargerThanTheReserveLeavesTargetAndReserveAsTheyWere) {
  testing::TempDir dir;
  testing::WriteFile(dir / "run.json", "old\n");
  Result<SpaceReserve> reserve = SpaceReserve::Create(dir / ".reserve", 16);
  ASSERT_TRUE(reserve.ok()) << reserve.status().message();
  Status s = reserve->WriteAs(dir / "run.json", std::string(17, 'x'));
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("more than the 16 reserved"), std::string::npos) << s.message();
  EXPECT_EQ(ReadFile(dir / "run.json"), "old\n");
  EXPECT_TRUE(reserve->available());
  EXPECT_TRUE(reserve->WriteAs(dir / "run.json", "new\n").ok());
  EXPECT_EQ(ReadFile(dir / "run.json"), "new\n");
}

TEST(SpaceReserveTest, AnUnusedReserveIsRemovedAndOneThatDoesNotFitIsNotMade) {
  testing::TempDir dir;
  {
    Result<SpaceReserve> reserve = SpaceReserve::Create(dir / ".reserve", 4096);
    ASSERT_TRUE(reserve.ok());
    EXPECT_EQ(access((dir / ".reserve").c_str(), F_OK), 0);
  }
  EXPECT_NE(access((dir / ".reserve").c_str(), F_OK), 0);

  testing::SmallTmpfs disk("1m");
  if (!disk.skip_reason().empty()) GTEST_SKIP() << disk.skip_reason();
  Result<SpaceReserve> too_big = SpaceReserve::Create(disk / ".reserve", 8 << 20);
  ASSERT_FALSE(too_big.ok());
  EXPECT_NE(too_big.status().message().find("No space left on device"), std::string::npos)
      << too_big.status().message();
  EXPECT_NE(access((disk / ".reserve").c_str(), F_OK), 0);
}

}  // namespace
}  // namespace trainrun
