#include "base/fd_limit.h"

#include <sys/resource.h>

#include <gtest/gtest.h>

namespace trainrun {
namespace {

// The test process's own limit is lowered and restored: nothing else in this
// binary opens many files.
TEST(FdLimitTest, RaisesTheSoftLimitToTheHardOne) {
  rlimit original{};
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &original), 0);
  if (original.rlim_max != RLIM_INFINITY && original.rlim_max <= 256) {
    GTEST_SKIP() << "the hard limit (" << original.rlim_max << ") leaves nothing to raise";
  }
  rlimit low = original;
  low.rlim_cur = 256;
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &low), 0);
  EXPECT_EQ(SoftFdLimit(), 256u);

  Result<FdLimit> raised = RaiseFdLimit();
  ASSERT_TRUE(raised.ok()) << raised.status().message();
  EXPECT_EQ(raised->before, 256u);
  EXPECT_GT(raised->soft, 256u);
  EXPECT_EQ(raised->soft, raised->hard);
  EXPECT_EQ(SoftFdLimit(), raised->soft);
  if (original.rlim_max != RLIM_INFINITY) {
    EXPECT_EQ(raised->hard, original.rlim_max);
  }

  // Already at the hard limit: nothing changes.
  Result<FdLimit> again = RaiseFdLimit();
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->before, raised->soft);
  EXPECT_EQ(again->soft, raised->soft);

  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &original), 0);
}

}  // namespace
}  // namespace trainrun
