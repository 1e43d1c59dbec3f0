// NVML through the real dlopen path, with a fake libnvidia-ml built by the
// tests whose indices are deliberately not in PCI order.
#include "gpu/nvml_loader.h"

#include <stdlib.h>

#include <gtest/gtest.h>

#include "gpu/binding_env.h"
#include "gpu/binding_plan.h"
#include "gpu/gpu_discovery.h"
#include "tests/gpu/fixtures.h"
#include "tests/test_util.h"

namespace trainrun::gpu::testing {
namespace {

using ::trainrun::testing::TempDir;
using ::trainrun::testing::WriteFile;

// The DGX-2's GPUs as NVML would list them if its indices were not in PCI
// order: NVML index i is the GPU at PCI position kNvmlOrder[i].
constexpr int kNvmlOrder[16] = {9, 3, 14, 0, 7, 12, 1, 5, 15, 10, 2, 8, 4, 13, 6, 11};

class FakeNvmlTest : public ::testing::Test {
 protected:
  void SetUp() override {
    NodeTopology dgx = Xml(Dgx2Xml());
    ASSERT_EQ(dgx.gpus.size(), 16u);
    std::string lines;
    for (int position : kNvmlOrder) {
      const PciGpu& gpu = dgx.gpus[position];
      // NVML writes an 8-digit domain; upper case to check normalisation.
      std::string bus = "0000" + gpu.place.bus_id;
      for (char& c : bus) c = static_cast<char>(toupper(c));
      lines += bus + " GPU-fake-" + std::to_string(position) + " Fake V100 number " +
               std::to_string(position) + "\n";
    }
    WriteFile(dir_ / "devices", lines);
    setenv("FAKE_NVML_DEVICES", (dir_ / "devices").c_str(), 1);
    unsetenv("FAKE_NVML_INIT_ERROR");
  }
  void TearDown() override {
    unsetenv("FAKE_NVML_DEVICES");
    unsetenv("FAKE_NVML_INIT_ERROR");
  }
  TempDir dir_;
};

TEST_F(FakeNvmlTest, ListsGpusInNvmlOrderWithNormalisedBusIds) {
  NvmlReport report = QueryNvml(FAKE_NVML_LIBRARY);
  ASSERT_TRUE(report.available) << report.problem;
  EXPECT_EQ(report.problem, "");
  ASSERT_EQ(report.gpus.size(), 16u);
  EXPECT_EQ(report.gpus[0].index, 0);
  EXPECT_EQ(report.gpus[0].bus_id, "0000:b9:00.0");  // PCI position 9
  EXPECT_EQ(report.gpus[0].uuid, "GPU-fake-9");
  EXPECT_EQ(report.gpus[0].name, "Fake V100 number 9");
  EXPECT_EQ(report.gpus[3].bus_id, "0000:34:00.0");  // PCI position 0
}

TEST_F(FakeNvmlTest, ThePlanFollowsPciBusIdsNotNvmlIndices) {
  NodeTopology dgx = Xml(Dgx2Xml());
  DiscoveryOptions options;
  options.nvml_library = FAKE_NVML_LIBRARY;
  GpuInventory inventory = DiscoverGpus(dgx, options);
  EXPECT_EQ(inventory.source, std::string("NVML (") + FAKE_NVML_LIBRARY + ")");
  ASSERT_EQ(inventory.gpus.size(), 16u);
  for (int i = 0; i < 16; ++i) {
    const Gpu& gpu = inventory.gpus[i];
    EXPECT_EQ(gpu.index, i);
    EXPECT_EQ(gpu.bus_id, dgx.gpus[i].place.bus_id);
    EXPECT_EQ(kNvmlOrder[gpu.nvml_index], i) << "GPU " << i;
    EXPECT_EQ(gpu.uuid, "GPU-fake-" + std::to_string(i));  // NVML's data wins
    EXPECT_EQ(gpu.model, "Fake V100 number " + std::to_string(i));
    EXPECT_TRUE(gpu.in_topology);
  }
  BindingPlan plan = PlanBinding(dgx, inventory, {});
  ASSERT_EQ(plan.ranks.size(), 16u);
  for (const RankBinding& rank : plan.ranks) {
    const int r = rank.local_rank;
    ASSERT_EQ(rank.gpus, (std::vector<int>{r}));
    // Rank 0 gets the GPU at 0000:34:00.0 (NVML index 3), on NUMA node 0, and
    // CUDA sees it as device 0 with CUDA_DEVICE_ORDER=PCI_BUS_ID.
    EXPECT_EQ(rank.numa_nodes, (std::vector<int>{r < 8 ? 0 : 1}));
    auto env = BindingEnvironment(plan, rank, dgx, inventory);
    ASSERT_FALSE(env.empty());
    EXPECT_EQ(env[0],
              (std::pair<std::string, std::string>{"CUDA_VISIBLE_DEVICES", std::to_string(r)}));
  }
  EXPECT_EQ(inventory.gpus[plan.ranks[0].gpus[0]].nvml_index, 3);
}

TEST_F(FakeNvmlTest, NvmlGpusMissingFromTheTopologyAreWarnedAboutAndStillPlanned) {
  WriteFile(dir_ / "devices", "00000000:34:00.0 GPU-a Fake A\n00000000:99:00.0 GPU-b Fake B\n");
  NodeTopology dgx = Xml(Dgx2Xml());
  DiscoveryOptions options;
  options.nvml_library = FAKE_NVML_LIBRARY;
  GpuInventory inventory = DiscoverGpus(dgx, options);
  ASSERT_EQ(inventory.gpus.size(), 2u);
  EXPECT_FALSE(inventory.gpus[1].in_topology);
  ASSERT_EQ(inventory.warnings.size(), 1u);
  EXPECT_NE(inventory.warnings[0].find("0000:99:00.0"), std::string::npos);
  BindingPlan plan = PlanBinding(dgx, inventory, {});
  ASSERT_EQ(plan.ranks.size(), 2u);
  EXPECT_EQ(plan.ranks[0].numa_nodes, (std::vector<int>{0}));
  // The unplaced GPU goes to the NUMA node with fewer GPUs, with a warning.
  EXPECT_EQ(plan.ranks[1].numa_nodes, (std::vector<int>{1}));
  bool warned = false;
  for (const std::string& w : plan.warnings) warned |= w.find("0000:99:00.0") != std::string::npos;
  EXPECT_TRUE(warned);
}

TEST_F(FakeNvmlTest, InitFailureFallsBackToHwloc) {
  setenv("FAKE_NVML_INIT_ERROR", "9", 1);
  NvmlReport report = QueryNvml(FAKE_NVML_LIBRARY);
  EXPECT_FALSE(report.available);
  EXPECT_NE(report.problem.find("Driver Not Loaded"), std::string::npos) << report.problem;
  DiscoveryOptions options;
  options.nvml_library = FAKE_NVML_LIBRARY;
  GpuInventory inventory = DiscoverGpus(Xml(Dgx2Xml()), options);
  EXPECT_EQ(inventory.source, "hwloc GPU OS devices");
  EXPECT_EQ(inventory.gpus.size(), 16u);
  EXPECT_EQ(inventory.gpus[0].nvml_index, -1);
}

TEST(NvmlLoaderTest, AMissingLibraryIsNotAnError) {
  NvmlReport report = QueryNvml("libnvidia-ml-does-not-exist.so.1");
  EXPECT_FALSE(report.available);
  EXPECT_NE(report.problem.find("libnvidia-ml-does-not-exist.so.1"), std::string::npos);
  DiscoveryOptions options;
  options.nvml_library = "libnvidia-ml-does-not-exist.so.1";
  GpuInventory inventory = DiscoverGpus(Xml(Em64tXml()), options);
  EXPECT_EQ(inventory.source, "PCI vendor and class");
  EXPECT_EQ(inventory.gpus.size(), 3u);
}

TEST(NvmlLoaderTest, ALibraryWithoutNvmlIsNotAnError) {
  NvmlReport report = QueryNvml("libm.so.6");
  EXPECT_FALSE(report.available);
  EXPECT_NE(report.problem.find("not an NVML library"), std::string::npos) << report.problem;
}

TEST(NvmlLoaderTest, NormalizesBusIds) {
  EXPECT_EQ(NormalizeBusId("00000000:3B:00.0"), "0000:3b:00.0");
  EXPECT_EQ(NormalizeBusId("0001:b7:1f.7"), "0001:b7:1f.7");
  EXPECT_EQ(NormalizeBusId("3b:00.0"), "");
  EXPECT_EQ(NormalizeBusId("0000:3b:00.0x"), "");
  EXPECT_EQ(NormalizeBusId(""), "");
}

}  // namespace
}  // namespace trainrun::gpu::testing
