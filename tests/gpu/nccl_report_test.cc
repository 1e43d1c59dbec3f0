// The report of trainrun-nccl-check: the nccl-tests-style table, character for
// character, and the JSON lines.
#include <gtest/gtest.h>

#include "gpu/nccl/report.h"

namespace trainrun::nccl {
namespace {

Measurement Make(Collective op, size_t bytes, int ranks, double seconds, uint64_t wrong = 0) {
  Measurement m;
  m.op = op;
  m.shape = ShapeOf(op, bytes, ranks, 4);
  m.seconds = seconds;
  m.bandwidth = BandwidthOf(op, m.shape, ranks, seconds);
  m.wrong = wrong;
  return m;
}

TEST(NcclReportTest, RowsAreFixedWidthWithNcclTestsPrecision) {
  EXPECT_EQ(TableHeader(),
            "#       size         count      type   redop       time    algbw    busbw  #wrong\n"
            "#        (B)    (elements)                         (us)   (GB/s)   (GB/s)        \n");
  // 1 GiB all-reduced on 8 ranks in 12.5 ms: 85.90 GB/s, busbw 150.32.
  EXPECT_EQ(TableRow(Make(Collective::kAllReduce, size_t{1} << 30, 8, 0.0125)),
            "  1073741824     268435456     float     sum      12500    85.90   150.32       0\n");
  EXPECT_EQ(TableRow(Make(Collective::kAllGather, 8388608, 8, 250.25e-6, 3)),
            "     8388608        262144     float    none      250.2    33.52    29.33       3\n");
  EXPECT_EQ(TableRow(Make(Collective::kReduceScatter, 64, 2, 10.5e-6)),
            "          64             8     float     sum      10.50     0.01     0.00       0\n");
}

TEST(NcclReportTest, TableGroupsByOperationWithSummaries) {
  std::vector<Measurement> ms = {Make(Collective::kAllReduce, 1024, 2, 10e-6),
                                 Make(Collective::kAllReduce, 2048, 2, 10e-6),
                                 Make(Collective::kAllGather, 1024, 2, 20e-6, 5)};
  std::string table = FormatTable({"device: test"}, ms);
  EXPECT_EQ(table.rfind("# device: test\n# all_reduce\n#       size", 0), 0u) << table;
  EXPECT_NE(table.find("# all_reduce: avg busbw 0.15 GB/s; peak at 2048 B: algbw 0.20, busbw "
                       "0.20 GB/s; 0 wrong\n# all_gather\n"),
            std::string::npos)
      << table;
  EXPECT_NE(table.find("# all_gather: avg busbw 0.03 GB/s; peak at 1024 B: algbw 0.05, busbw "
                       "0.03 GB/s; 5 wrong\n# wrong: 5\n"),
            std::string::npos)
      << table;
}

TEST(NcclReportTest, OneRankPeaksByAlgorithmBandwidth) {
  std::vector<OpSummary> s = Summarize({Make(Collective::kAllReduce, 8, 1, 4e-6),
                                        Make(Collective::kAllReduce, 1 << 20, 1, 4e-6),
                                        Make(Collective::kAllReduce, 1 << 10, 1, 4e-6)});
  ASSERT_EQ(s.size(), 1u);
  EXPECT_EQ(s[0].sizes, 3);
  EXPECT_EQ(s[0].peak_bytes, size_t{1} << 20);
  EXPECT_DOUBLE_EQ(s[0].peak_algbw_gbps, 1048576 / 4e-6 / 1e9);
  EXPECT_DOUBLE_EQ(s[0].peak_busbw_gbps, 0.0);
}

TEST(NcclReportTest, JsonLinesCarryEveryColumnAndTheSummary) {
  Measurement m = Make(Collective::kReduceScatter, 4096, 4, 2e-6, 1);
  nlohmann::json j = MeasurementJson(m);
  EXPECT_EQ(j["record"], "result");
  EXPECT_EQ(j["op"], "reduce_scatter");
  EXPECT_EQ(j["bytes"], 4096);
  EXPECT_EQ(j["count"], 256);
  EXPECT_EQ(j["type"], "float");
  EXPECT_EQ(j["redop"], "sum");
  EXPECT_DOUBLE_EQ(j["time_us"].get<double>(), 2.0);
  EXPECT_DOUBLE_EQ(j["algbw_gbps"].get<double>(), 2.048);
  EXPECT_DOUBLE_EQ(j["busbw_gbps"].get<double>(), 2.048 * 3 / 4);
  EXPECT_EQ(j["wrong"], 1);

  nlohmann::json s = SummaryJson(4, {m, Make(Collective::kReduceScatter, 8192, 4, 2e-6)});
  EXPECT_EQ(s["record"], "summary");
  EXPECT_EQ(s["ranks"], 4);
  EXPECT_EQ(s["ops"]["reduce_scatter"]["sizes"], 2);
  EXPECT_EQ(s["ops"]["reduce_scatter"]["peak_bytes"], 8192);
  EXPECT_DOUBLE_EQ(s["ops"]["reduce_scatter"]["peak_algbw_gbps"].get<double>(), 4.096);
  EXPECT_DOUBLE_EQ(s["ops"]["reduce_scatter"]["avg_busbw_gbps"].get<double>(),
                   (2.048 + 4.096) * 3 / 4 / 2);
  EXPECT_EQ(s["wrong"], 1);
  EXPECT_EQ(s["ok"], false);
  EXPECT_EQ(SummaryJson(1, {})["ok"], true);
}

}  // namespace
}  // namespace trainrun::nccl
