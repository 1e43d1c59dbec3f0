// CUDA_VISIBLE_DEVICES / NVIDIA_VISIBLE_DEVICES: only the GPUs they name are
// the job's, by index or by UUID.
#include "gpu/visible_devices.h"

#include <gtest/gtest.h>

#include "gpu/binding_env.h"
#include "gpu/binding_plan.h"
#include "gpu/gpu_discovery.h"
#include "tests/gpu/fixtures.h"

namespace trainrun::gpu::testing {
namespace {

const std::vector<std::string> kUuids = {"GPU-aaaa-1111", "GPU-bbbb-2222", "GPU-bbbc-3333", ""};

TEST(VisibleDevicesTest, CudaIndicesAndUuids) {
  EXPECT_EQ(SelectCudaVisibleDevices("2,0", kUuids).positions, (std::vector<int>{2, 0}));
  EXPECT_EQ(SelectCudaVisibleDevices(" 1 ", kUuids).positions, (std::vector<int>{1}));
  EXPECT_EQ(SelectCudaVisibleDevices("GPU-bbbb-2222,GPU-aaaa", kUuids).positions,
            (std::vector<int>{1, 0}));
  EXPECT_EQ(SelectCudaVisibleDevices("3,GPU-bbbc", kUuids).positions, (std::vector<int>{3, 2}));
}

TEST(VisibleDevicesTest, CudaStopsAtTheFirstEntryThatNamesNoGpu) {
  DeviceSelection s = SelectCudaVisibleDevices("1,7,0", kUuids);
  EXPECT_EQ(s.positions, (std::vector<int>{1}));
  ASSERT_EQ(s.warnings.size(), 1u);
  EXPECT_NE(s.warnings[0].find("\"7\" names none of the 4 GPU(s)"), std::string::npos)
      << s.warnings[0];

  DeviceSelection ambiguous = SelectCudaVisibleDevices("GPU-bbb", kUuids);
  EXPECT_TRUE(ambiguous.positions.empty());
  EXPECT_NE(ambiguous.warnings.at(0).find("more than one"), std::string::npos);

  EXPECT_TRUE(SelectCudaVisibleDevices("", kUuids).positions.empty());
  EXPECT_TRUE(SelectCudaVisibleDevices("NoDevFiles", kUuids).positions.empty());
  DeviceSelection minus_one = SelectCudaVisibleDevices("-1", kUuids);
  EXPECT_TRUE(minus_one.positions.empty());
  EXPECT_TRUE(minus_one.warnings.empty());
}

TEST(VisibleDevicesTest, CudaDuplicatesAndMigInstances) {
  DeviceSelection s = SelectCudaVisibleDevices("0,0,MIG-1234,1", kUuids);
  EXPECT_EQ(s.positions, (std::vector<int>{0, 1}));
  ASSERT_EQ(s.warnings.size(), 2u);
  EXPECT_NE(s.warnings[0].find("already listed"), std::string::npos);
  EXPECT_NE(s.warnings[1].find("MIG"), std::string::npos);
}

TEST(VisibleDevicesTest, NvidiaContainerToolkitValues) {
  EXPECT_FALSE(SelectNvidiaVisibleDevices("void", kUuids).has_value());
  EXPECT_FALSE(SelectNvidiaVisibleDevices("", kUuids).has_value());
  EXPECT_EQ(SelectNvidiaVisibleDevices("all", kUuids)->positions, (std::vector<int>{0, 1, 2, 3}));
  EXPECT_TRUE(SelectNvidiaVisibleDevices("none", kUuids)->positions.empty());
  std::optional<DeviceSelection> s = SelectNvidiaVisibleDevices("GPU-bbbc-3333,0,9", kUuids);
  ASSERT_TRUE(s.has_value());
  EXPECT_EQ(s->positions, (std::vector<int>{2, 0}));
  ASSERT_EQ(s->warnings.size(),
            1u);  // unlike CUDA, the toolkit skips a bad entry
  EXPECT_NE(s->warnings[0].find("\"9\""), std::string::npos);
}

// On the DGX-2: the job's GPUs are a subset; ranks default to one per GPU of
// the subset and each rank's CUDA_VISIBLE_DEVICES names its own GPU in CUDA's
// numbering.
TEST(VisibleDevicesTest, Dgx2SubsetByIndex) {
  NodeTopology dgx = Xml(Dgx2Xml());
  DiscoveryOptions options;
  options.use_nvml = false;
  options.cuda_visible_devices = "9,2";
  GpuInventory inventory = DiscoverGpus(dgx, options);
  EXPECT_EQ(inventory.Ours(), (std::vector<int>{2, 9}));
  BindingPlan plan = PlanBinding(dgx, inventory, {});
  ASSERT_EQ(plan.process_count, 2);
  EXPECT_EQ(plan.process_count_source, "one per GPU");
  EXPECT_EQ(plan.ranks[0].gpus, (std::vector<int>{2}));
  EXPECT_EQ(plan.ranks[0].numa_nodes, (std::vector<int>{0}));
  EXPECT_EQ(plan.ranks[1].gpus, (std::vector<int>{9}));
  EXPECT_EQ(plan.ranks[1].numa_nodes, (std::vector<int>{1}));
  // Alone on their NUMA nodes, each rank gets all of its node's cores.
  EXPECT_EQ(plan.ranks[0].cpus, (std::vector<int>{0, 1}));
  EXPECT_FALSE(plan.ranks[0].shared_cores);
  auto env = BindingEnvironment(plan, plan.ranks[1], dgx, inventory);
  EXPECT_EQ(env.at(0).second, "9");
  EXPECT_EQ(env.at(1), (std::pair<std::string, std::string>{"OMP_NUM_THREADS", "2"}));
}

TEST(VisibleDevicesTest, Dgx2SubsetByUuid) {
  NodeTopology dgx = Xml(Dgx2Xml());
  DiscoveryOptions options;
  options.use_nvml = false;
  // GPUs 8 and 15, the second by a UUID prefix.
  options.cuda_visible_devices = "GPU-27ce06e8-97e8-a3d3-f1e7-f81e0dff7929,GPU-bb4648d3";
  GpuInventory inventory = DiscoverGpus(dgx, options);
  EXPECT_EQ(inventory.Ours(), (std::vector<int>{8, 15}));
  BindingPlan plan = PlanBinding(dgx, inventory, {});
  ASSERT_EQ(plan.ranks.size(), 2u);
  EXPECT_EQ(plan.ranks[0].gpus, (std::vector<int>{8}));
  EXPECT_EQ(plan.ranks[1].gpus, (std::vector<int>{15}));
  // Both on package 1: its two cores split, one each.
  EXPECT_EQ(plan.ranks[0].cpus, (std::vector<int>{24}));
  EXPECT_EQ(plan.ranks[1].cpus, (std::vector<int>{25}));
  BindingEnvOptions by_uuid;
  by_uuid.gpus_by_uuid = true;
  EXPECT_EQ(BindingEnvironment(plan, plan.ranks[1], dgx, inventory, by_uuid).at(0).second,
            "GPU-bb4648d3-e72b-4bac-a32f-4c9f3e4eb547");
}

TEST(VisibleDevicesTest, NoneOfTheGpusIsTheJobs) {
  NodeTopology dgx = Xml(Dgx2Xml());
  DiscoveryOptions options;
  options.use_nvml = false;
  options.cuda_visible_devices = "";
  GpuInventory inventory = DiscoverGpus(dgx, options);
  EXPECT_TRUE(inventory.Ours().empty());
  BindingPlan plan = PlanBinding(dgx, inventory, {});
  EXPECT_EQ(plan.process_count, 1);
  EXPECT_EQ(plan.process_count_source, "default (no GPUs)");
  EXPECT_TRUE(plan.ranks[0].gpus.empty());
  // A CPU rank on a 2-node machine spans both nodes.
  EXPECT_EQ(plan.ranks[0].numa_nodes, (std::vector<int>{0, 1}));
  EXPECT_EQ(plan.ranks[0].cpus, (std::vector<int>{0, 1, 24, 25}));
}

TEST(VisibleDevicesTest, NvidiaVisibleDevicesAppliesWithoutNvml) {
  NodeTopology dgx = Xml(Dgx2Xml());
  DiscoveryOptions options;
  options.use_nvml = false;
  options.nvidia_visible_devices = "4,5,6,7";
  options.cuda_visible_devices = "1,2";  // positions among the container's 4 GPUs
  GpuInventory inventory = DiscoverGpus(dgx, options);
  ASSERT_EQ(inventory.gpus.size(), 4u);
  EXPECT_EQ(inventory.gpus[0].bus_id, "0000:57:00.0");
  EXPECT_EQ(inventory.gpus[0].index,
            0);  // CUDA in the container numbers from 0
  EXPECT_EQ(inventory.Ours(), (std::vector<int>{1, 2}));
  EXPECT_EQ(inventory.gpus[1].bus_id, "0000:59:00.0");
}

}  // namespace
}  // namespace trainrun::gpu::testing
