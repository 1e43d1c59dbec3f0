#include "runtime/cluster/hostlist.h"

#include <gtest/gtest.h>

namespace trainrun {
namespace {

std::vector<std::string> Expand(const std::string& list) {
  Result<std::vector<std::string>> hosts = ExpandHostlist(list);
  EXPECT_TRUE(hosts.ok()) << list << ": " << hosts.status().message();
  return hosts.ok() ? *hosts : std::vector<std::string>{};
}

TEST(HostlistTest, PlainNames) {
  EXPECT_EQ(Expand("node1"), (std::vector<std::string>{"node1"}));
  EXPECT_EQ(Expand("a,b, c"), (std::vector<std::string>{"a", "b", "c"}));
}

TEST(HostlistTest, RangesKeepZeroPaddingAndOrder) {
  EXPECT_EQ(
      Expand("gpu-[001-004,010],login1"),
      (std::vector<std::string>{"gpu-001", "gpu-002", "gpu-003", "gpu-004", "gpu-010", "login1"}));
  EXPECT_EQ(Expand("n[8-11]"), (std::vector<std::string>{"n8", "n9", "n10", "n11"}));
  EXPECT_EQ(Expand("n[08-10]"), (std::vector<std::string>{"n08", "n09", "n10"}));
  EXPECT_EQ(Expand("n[3,1]"), (std::vector<std::string>{"n3", "n1"}));
}

TEST(HostlistTest, SeveralGroupsMakeAProductAndSuffixesStay) {
  EXPECT_EQ(Expand("r[1-2]n[1-2]"), (std::vector<std::string>{"r1n1", "r1n2", "r2n1", "r2n2"}));
  EXPECT_EQ(Expand("node[1-2].cluster,gpu[5]-ib"),
            (std::vector<std::string>{"node1.cluster", "node2.cluster", "gpu5-ib"}));
}

TEST(HostlistTest, MistakesAreErrorsThatQuoteTheList) {
  for (const char* bad : {"gpu-[001-004", "gpu-001]", "a,,b", "n[4-2]", "n[a-b]", "n[]",
                          "n[1-2[3]]", "", "n[0-99999999]"}) {
    Result<std::vector<std::string>> hosts = ExpandHostlist(bad);
    EXPECT_FALSE(hosts.ok()) << bad;
    if (!hosts.ok()) {
      EXPECT_NE(hosts.status().message().find(std::string("\"") + bad + "\""), std::string::npos)
          << hosts.status().message();
    }
  }
}

}  // namespace
}  // namespace trainrun
