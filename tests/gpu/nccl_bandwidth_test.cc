// The arithmetic of trainrun-nccl-check on known inputs: the buffer shapes and byte
// conventions of nccl-tests, the size ladder, algbw/busbw, and the fill pattern whose
// reduced values are known.
#include <gtest/gtest.h>

#include "gpu/nccl/bandwidth.h"

namespace trainrun::nccl {
namespace {

TEST(NcclBandwidthTest, ShapesFollowNcclTestsByteConventions) {
  CollectiveShape ar = ShapeOf(Collective::kAllReduce, 1024, 8, 4);
  EXPECT_EQ(ar.count, 256u);
  EXPECT_EQ(ar.send_count, 256u);
  EXPECT_EQ(ar.recv_count, 256u);
  EXPECT_EQ(ar.bytes, 1024u);

  // nccl-tests' all_gather_perf at 8388608 B on 8 ranks prints count 262144.
  CollectiveShape ag = ShapeOf(Collective::kAllGather, 8388608, 8, 4);
  EXPECT_EQ(ag.count, 262144u);
  EXPECT_EQ(ag.send_count, 262144u);
  EXPECT_EQ(ag.recv_count, 2097152u);
  EXPECT_EQ(ag.bytes, 8388608u);

  CollectiveShape rs = ShapeOf(Collective::kReduceScatter, 8388608, 8, 4);
  EXPECT_EQ(rs.count, 262144u);
  EXPECT_EQ(rs.send_count, 2097152u);
  EXPECT_EQ(rs.recv_count, 262144u);
  EXPECT_EQ(rs.bytes, 8388608u);

  // 1024 B over 3 ranks: 256 floats split in 85 each, the size shrinks to 1020 B.
  CollectiveShape odd = ShapeOf(Collective::kAllGather, 1024, 3, 4);
  EXPECT_EQ(odd.count, 85u);
  EXPECT_EQ(odd.bytes, 1020u);
  // 8 B cannot be split over 4 ranks of floats.
  EXPECT_EQ(ShapeOf(Collective::kReduceScatter, 8, 4, 4).count, 0u);
  EXPECT_EQ(ShapeOf(Collective::kAllReduce, 6, 4, 4).bytes, 4u);
}

TEST(NcclBandwidthTest, SizeLadderDoublesUpToTheLargest) {
  std::vector<size_t> sizes = SizeLadder(8, size_t{1} << 30);
  ASSERT_EQ(sizes.size(), 28u);
  EXPECT_EQ(sizes.front(), 8u);
  EXPECT_EQ(sizes[1], 16u);
  EXPECT_EQ(sizes.back(), size_t{1} << 30);
  EXPECT_EQ(SizeLadder(8, 100), (std::vector<size_t>{8, 16, 32, 64, 100}));
  EXPECT_EQ(SizeLadder(64, 64), (std::vector<size_t>{64}));
  EXPECT_TRUE(SizeLadder(0, 64).empty());
  EXPECT_TRUE(SizeLadder(128, 64).empty());
  EXPECT_EQ(SizeLadder(SIZE_MAX / 2 + 1, SIZE_MAX).size(), 2u);  // no overflow
}

TEST(NcclBandwidthTest, BandwidthUsesTheBusFactors) {
  // 1 GB all-reduced in 10 ms on 8 ranks: algbw 100 GB/s, busbw 100 * 2*7/8 = 175.
  CollectiveShape ar{
      .count = 250000000, .send_count = 250000000, .recv_count = 250000000, .bytes = 1000000000};
  Bandwidth bw = BandwidthOf(Collective::kAllReduce, ar, 8, 0.01);
  EXPECT_DOUBLE_EQ(bw.algbw_gbps, 100.0);
  EXPECT_DOUBLE_EQ(bw.busbw_gbps, 175.0);

  // An all-gather of 8388608 B in 100 us on 8 ranks: 83.88608 GB/s, busbw * 7/8.
  CollectiveShape ag = ShapeOf(Collective::kAllGather, 8388608, 8, 4);
  Bandwidth gather = BandwidthOf(Collective::kAllGather, ag, 8, 100e-6);
  EXPECT_DOUBLE_EQ(gather.algbw_gbps, 83.88608);
  EXPECT_DOUBLE_EQ(gather.busbw_gbps, 83.88608 * 7 / 8);
  Bandwidth scatter = BandwidthOf(Collective::kReduceScatter, ag, 2, 100e-6);
  EXPECT_DOUBLE_EQ(scatter.busbw_gbps, 83.88608 / 2);

  // One rank moves nothing over a bus; a time that is not positive gives zeros.
  EXPECT_DOUBLE_EQ(BandwidthOf(Collective::kAllReduce, ar, 1, 0.01).busbw_gbps, 0.0);
  EXPECT_DOUBLE_EQ(BandwidthOf(Collective::kAllReduce, ar, 8, 0).algbw_gbps, 0.0);
  EXPECT_DOUBLE_EQ(BusFactor(Collective::kAllReduce, 2), 1.0);
  EXPECT_DOUBLE_EQ(BusFactor(Collective::kReduceScatter, 4), 0.75);
}

TEST(NcclBandwidthTest, ParsesSizesAndNames) {
  EXPECT_EQ(ParseByteSize("8"), size_t{8});
  EXPECT_EQ(ParseByteSize("128K"), size_t{131072});
  EXPECT_EQ(ParseByteSize("4m"), size_t{4} << 20);
  EXPECT_EQ(ParseByteSize("1G"), size_t{1} << 30);
  EXPECT_FALSE(ParseByteSize(""));
  EXPECT_FALSE(ParseByteSize("0"));
  EXPECT_FALSE(ParseByteSize("1T"));
  EXPECT_FALSE(ParseByteSize("1GB"));
  EXPECT_FALSE(ParseByteSize("-8"));
  EXPECT_FALSE(ParseByteSize("99999999999999999999"));
  EXPECT_EQ(ParseCollective("reduce_scatter"), Collective::kReduceScatter);
  EXPECT_FALSE(ParseCollective("allreduce"));
  EXPECT_EQ(CollectiveName(Collective::kAllGather), "all_gather");
}

// Simulates the collectives on the host from every rank's filled input, and checks
// that ExpectedValue agrees and CountWrong counts exactly the corrupted elements.
TEST(NcclBandwidthTest, ExpectedValuesMatchASimulatedCollective) {
  const int ranks = 3;
  for (Collective op : AllCollectives()) {
    CollectiveShape shape = ShapeOf(op, 40 * 4 * ranks, ranks, 4);
    ASSERT_EQ(shape.count, op == Collective::kAllReduce ? 120u : 40u);
    std::vector<std::vector<float>> inputs(ranks, std::vector<float>(shape.send_count));
    for (int r = 0; r < ranks; ++r) FillInput(op, r, shape, inputs[r].data());
    for (int r = 0; r < ranks; ++r) {
      std::vector<float> out(shape.recv_count);
      for (size_t i = 0; i < shape.recv_count; ++i) {
        if (op == Collective::kAllGather) {
          out[i] = inputs[i / shape.count][i % shape.count];
        } else {
          const size_t at = op == Collective::kReduceScatter ? r * shape.count + i : i;
          for (int from = 0; from < ranks; ++from) out[i] += inputs[from][at];
        }
      }
      SCOPED_TRACE(std::string(CollectiveName(op)) + " rank " + std::to_string(r));
      EXPECT_EQ(CountWrong(op, r, ranks, shape, out.data()), 0u);
      out[0] += 1;
      out[shape.recv_count - 1] = std::numeric_limits<float>::quiet_NaN();
      EXPECT_EQ(CountWrong(op, r, ranks, shape, out.data()), 2u);
    }
  }
  // Rank-dependent: element 0 of rank 2 is 3, of rank 0 is 1; the all-reduced
  // element 14 over 4 ranks is 4*(14 mod 13) + 1+2+3+4 = 14.
  EXPECT_EQ(InputValue(2, 0), 3.0f);
  EXPECT_EQ(InputValue(0, 0), 1.0f);
  EXPECT_EQ(ExpectedValue(Collective::kAllReduce, 0, 4, 20, 14), 14.0f);
}

}  // namespace
}  // namespace trainrun::nccl
