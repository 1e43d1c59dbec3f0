#include "runtime/cluster/refusal_tally.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

namespace trainrun {
namespace {

using std::chrono::seconds;

TEST(RefusalTallyTest, TheFirstFewInFullThenOneNoticeThenSilence) {
  RefusalTally tally;
  const TimePoint t0{};
  for (size_t i = 0; i < kRefusalsInFull; ++i) {
    std::optional<std::string> line =
        tally.Add(fmt::format("10.0.0.{}:4000{}", i, i), "bad magic", t0);
    ASSERT_TRUE(line.has_value());
    EXPECT_EQ(*line,
              fmt::format("refused a control connection from 10.0.0.{}:4000{}: bad magic", i, i));
  }
  std::optional<std::string> notice = tally.Add("10.0.0.9:1", "bad magic", t0);
  ASSERT_TRUE(notice.has_value());
  EXPECT_NE(notice->find("counted by address and reason"), std::string::npos) << *notice;
  for (int i = 0; i < 100'000; ++i) {
    EXPECT_FALSE(tally.Add(fmt::format("10.0.0.9:{}", i), "bad magic", t0).has_value());
  }
  EXPECT_EQ(tally.total(), kRefusalsInFull + 100'001);
  EXPECT_EQ(tally.counted(), 100'001u);
  EXPECT_EQ(tally.first().size(), kRefusalsInFull);
  // One address, one reason, whatever the ports.
  EXPECT_EQ(tally.Summary(),
            "100006 control connection(s) refused in all; after the first 5, by address: "
            "10.0.0.9 (bad magic) 100001 times");
}

TEST(RefusalTallyTest, DistinctSourcesAreBoundedAndTheRestCounted) {
  RefusalTally tally;
  const TimePoint t0{};
  for (size_t i = 0; i < kRefusalsInFull; ++i) tally.Add("192.168.1.1:1", "first", t0);
  // 1,000 addresses x 2 reasons; address 7 is the busiest.
  for (int round = 0; round < 3; ++round) {
    for (int a = 0; a < 1000; ++a) {
      for (const char* reason : {"did not authenticate in time", "wrong job token"}) {
        tally.Add(fmt::format("10.1.{}.{}:5555", a / 256, a % 256), reason, t0);
      }
    }
  }
  for (int i = 0; i < 50; ++i) tally.Add("10.1.0.7:9", "wrong job token", t0);
  const std::string summary = tally.Summary();
  EXPECT_EQ(summary.rfind("6055 control connection(s) refused in all; after the first 5, by "
                          "address: 10.1.0.7 (wrong job token) 53 times; ",
                          0),
            0u)
      << summary;
  size_t sources = 0;
  for (size_t at = summary.find(" times"); at != std::string::npos;
       at = summary.find(" times", at + 1)) {
    ++sources;
  }
  EXPECT_EQ(sources, kMaxRefusalSources) << summary;
  // 6,050 counted; the 16 kept pairs hold 3 each and the busiest 50 more.
  EXPECT_NE(summary.find(
                fmt::format("; and {} more from other addresses or reasons", 6050 - 16 * 3 - 50)),
            std::string::npos)
      << summary;
  EXPECT_LT(summary.size(), 2048u);
}

TEST(RefusalTallyTest, SummariesComeLessAndLessOftenAndOnlyWithNews) {
  RefusalTally tally;
  const TimePoint t0{};
  EXPECT_FALSE(tally.DueSummary(t0 + seconds(3600)).has_value());  // nothing refused
  for (size_t i = 0; i <= kRefusalsInFull + 2; ++i) tally.Add("10.0.0.1:1", "x", t0);
  EXPECT_FALSE(tally.DueSummary(t0 + kFirstRefusalSummaryAfter - seconds(1)).has_value());
  std::optional<std::string> first = tally.DueSummary(t0 + kFirstRefusalSummaryAfter);
  ASSERT_TRUE(first.has_value());
  EXPECT_NE(first->find("8 control connection(s) refused in all"), std::string::npos) << *first;
  // Twice as long until the next one, and only if something new was refused.
  const TimePoint t1 = t0 + kFirstRefusalSummaryAfter;
  EXPECT_FALSE(tally.DueSummary(t1 + 2 * kFirstRefusalSummaryAfter).has_value());
  tally.Add("10.0.0.1:2", "x", t1 + seconds(1));
  EXPECT_FALSE(tally.DueSummary(t1 + 2 * kFirstRefusalSummaryAfter - seconds(1)).has_value());
  EXPECT_TRUE(tally.DueSummary(t1 + 2 * kFirstRefusalSummaryAfter).has_value());
  // A week of a steady flood, checked every second: a few dozen lines.
  RefusalTally week;
  int lines = 0;
  for (int64_t ms = 0; ms < int64_t{7} * 86400 * 1000; ms += 1000) {
    const TimePoint now = t0 + std::chrono::milliseconds(ms);
    if (week.Add("10.0.0.1:1", "x", now)) ++lines;
    if (week.DueSummary(now)) ++lines;
  }
  EXPECT_LE(lines, static_cast<int>(kRefusalsInFull) + 1 + 14);
}

}  // namespace
}  // namespace trainrun
