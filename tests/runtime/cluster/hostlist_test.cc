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

TEST(HostlistTest, LongNamesAndHugeExpansionsAreRefusedBeforeBuildingThem) {
  Result<std::vector<std::string>> long_name = ExpandHostlist(std::string(300, 'x'));
  ASSERT_FALSE(long_name.ok());
  EXPECT_NE(long_name.status().message().find("longer than 255"), std::string::npos);
  // Found by the hostlist fuzzer: a million 4 KB names (4 GB) from a short list.
  Result<std::vector<std::string>> huge = ExpandHostlist(std::string(4000, 'x') + "[0-999999]");
  ASSERT_FALSE(huge.ok());
  EXPECT_NE(huge.status().message().find("longer than 255"), std::string::npos);
  Result<std::vector<std::string>> bytes =
      ExpandHostlist(std::string(200, 'x') + "[0-999]" + "y[0-999]");
  ASSERT_FALSE(bytes.ok());
  EXPECT_NE(bytes.status().message().find("MiB"), std::string::npos);
  // A big but sane cluster still expands.
  Result<std::vector<std::string>> many = ExpandHostlist("gpu[0000-9999]");
  ASSERT_TRUE(many.ok()) << many.status().message();
  EXPECT_EQ(many->size(), 10000u);
}

}  // namespace
}  // namespace trainrun
