#include "gpu/topology.h"

#include <gtest/gtest.h>

#include "gpu/affinity.h"
#include "tests/gpu/fixtures.h"
#include "tests/test_util.h"

namespace trainrun::gpu::testing {
namespace {

using ::trainrun::testing::TempDir;
using ::trainrun::testing::WriteFile;

TEST(TopologyTest, Dgx2HasSixteenGpusFromNvmlOsDevicesEightPerPackage) {
  NodeTopology t = Xml(Dgx2Xml());
  EXPECT_FALSE(t.this_machine);
  ASSERT_EQ(t.numa_nodes.size(), 2u);
  EXPECT_EQ(t.numa_nodes[0].cpus, (std::vector<int>{0, 1}));
  EXPECT_EQ(t.numa_nodes[1].cpus, (std::vector<int>{24, 25}));
  EXPECT_EQ(t.numa_nodes[1].cores.size(), 2u);
  EXPECT_EQ(t.core_count, 4);
  ASSERT_EQ(t.gpus.size(), 16u);
  EXPECT_EQ(t.gpus[0].place.bus_id, "0000:34:00.0");
  EXPECT_EQ(t.gpus[15].place.bus_id, "0000:e7:00.0");
  EXPECT_EQ(t.gpus[0].uuid, "GPU-d3977428-7a30-086b-2e20-5c1eeed647c6");
  EXPECT_EQ(t.gpus[0].model, "Tesla V100-SXM3-32GB-H");
  EXPECT_EQ(t.gpus[0].os_devices, (std::vector<std::string>{"nvml0"}));
  for (int i = 0; i < 16; ++i) {
    EXPECT_EQ(t.gpus[i].place.numa_nodes, (std::vector<int>{i < 8 ? 0 : 1})) << "GPU " << i;
    EXPECT_FALSE(t.gpus[i].place.bridges.empty());
  }
  // GPUs 0 and 1 sit behind the same PCIe switch, GPUs 0 and 4 do not.
  EXPECT_EQ(t.gpus[0].place.bridges.front(), t.gpus[1].place.bridges.front());
  EXPECT_NE(t.gpus[0].place.host_bridge, t.gpus[4].place.host_bridge);
  EXPECT_TRUE(t.nics.empty());
}

TEST(TopologyTest, Em64tFindsGpusByPciClassAndTheInfinibandHca) {
  NodeTopology t = Xml(Em64tXml());
  ASSERT_EQ(t.gpus.size(), 3u);  // the ATI VGA card is not an NVIDIA GPU
  EXPECT_EQ(t.gpus[0].place.bus_id, "0000:06:00.0");
  EXPECT_EQ(t.gpus[1].place.bus_id, "0000:11:00.0");
  EXPECT_EQ(t.gpus[2].place.bus_id, "0000:14:00.0");
  EXPECT_EQ(t.gpus[0].place.numa_nodes, (std::vector<int>{0}));
  EXPECT_EQ(t.gpus[1].place.numa_nodes, (std::vector<int>{1}));
  EXPECT_TRUE(t.gpus[0].os_devices.empty());
  EXPECT_EQ(t.gpus[0].class_id, 0x0302);
  EXPECT_EQ(t.gpus[0].device_id, 0x06d2);

  ASSERT_EQ(t.nics.size(), 3u);
  EXPECT_EQ(t.nics[2].name, "mlx4_0");
  EXPECT_TRUE(t.nics[2].rdma);
  EXPECT_EQ(t.nics[2].port, 1);
  EXPECT_EQ(t.nics[2].kind, "InfiniBand");
  EXPECT_EQ(t.nics[2].interfaces, (std::vector<std::string>{"eth2", "ib0"}));
  EXPECT_EQ(t.nics[2].place.numa_nodes, (std::vector<int>{0}));
  EXPECT_EQ(t.nics[0].name, "eth0");
  EXPECT_FALSE(t.nics[0].rdma);
  EXPECT_EQ(t.nics[0].kind, "Ethernet");
  // The GPU and the HCA share the host bridge of package 0, not a PCIe switch.
  EXPECT_EQ(t.gpus[0].place.host_bridge, t.nics[2].place.host_bridge);
  EXPECT_NE(t.gpus[0].place.bridges.front(), t.nics[2].place.bridges.front());

  // Whole cores with their SMT siblings, by the kernel's CPU numbers.
  ASSERT_EQ(t.numa_nodes[0].cores.size(), 6u);
  EXPECT_EQ(t.numa_nodes[0].cores[0].cpus, (std::vector<int>{0, 12}));
  EXPECT_EQ(t.numa_nodes[1].cores[0].cpus, (std::vector<int>{1, 13}));
  EXPECT_EQ(FormatIdList(t.cpus), "0-23");
  EXPECT_EQ(NumaNodeOfCpu(t, 13), 1);
}

TEST(TopologyTest, SyntheticDescriptions) {
  NodeTopology t = Synthetic("pack:2 numa:2 core:8 pu:2");
  ASSERT_EQ(t.numa_nodes.size(), 4u);
  EXPECT_EQ(t.core_count, 32);
  EXPECT_EQ(t.cpus.size(), 64u);
  for (const NumaNode& node : t.numa_nodes) EXPECT_EQ(node.cores.size(), 8u);
  EXPECT_TRUE(t.gpus.empty());

  NodeTopology no_cores = Synthetic("numa:2 pu:3");
  ASSERT_EQ(no_cores.numa_nodes.size(), 2u);
  EXPECT_EQ(no_cores.numa_nodes[1].cores.size(), 3u);  // one core per PU

  Result<NodeTopology> bad = LoadTopology({TopologyKind::kSynthetic, "pack:two"});
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("pack:two"), std::string::npos);
}

TEST(TopologyTest, XmlErrorsNameTheFile) {
  TempDir dir;
  Result<NodeTopology> missing = LoadTopology({TopologyKind::kXmlFile, dir / "nope.xml"});
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find(dir / "nope.xml"), std::string::npos);

  WriteFile(dir / "bad.xml", "<topology><object type=\"Machine\"");
  Result<NodeTopology> bad = LoadTopology({TopologyKind::kXmlFile, dir / "bad.xml"});
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find(dir / "bad.xml"), std::string::npos);

  Result<NodeTopology> directory = LoadTopology({TopologyKind::kXmlFile, dir.path()});
  ASSERT_FALSE(directory.ok());
  EXPECT_NE(directory.status().message().find("not a file"), std::string::npos);
}

TEST(TopologyTest, ThisMachineCoversExactlyTheCpusThisProcessMayUse) {
  Result<NodeTopology> t = LoadTopology({});
  ASSERT_TRUE(t.ok()) << t.status().message();
  EXPECT_TRUE(t->this_machine);
  Result<std::vector<int>> cpus = ThisProcessCpus();
  ASSERT_TRUE(cpus.ok());
  EXPECT_EQ(t->cpus, *cpus);
  int cpus_in_cores = 0;
  for (const NumaNode& node : t->numa_nodes) {
    for (const Core& core : node.cores) cpus_in_cores += static_cast<int>(core.cpus.size());
  }
  EXPECT_EQ(cpus_in_cores, static_cast<int>(cpus->size()));
}

TEST(AffinityTest, IdListsRoundTrip) {
  EXPECT_EQ(FormatIdList({3, 0, 1, 2, 8, 10, 11, 2}), "0-3,8,10-11");
  EXPECT_EQ(FormatIdList({}), "");
  EXPECT_EQ(FormatIdList({5}), "5");
  Result<std::vector<int>> parsed = ParseIdList(" 0-3,8,10-11\n");
  ASSERT_TRUE(parsed.ok());
  EXPECT_EQ(*parsed, (std::vector<int>{0, 1, 2, 3, 8, 10, 11}));
  EXPECT_TRUE(ParseIdList("").ok());
  Result<std::vector<int>> bad = ParseIdList("0-x", "CPU list");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message(), "CPU list \"0-x\": \"x\" is not a number");
  EXPECT_FALSE(ParseIdList("5-2").ok());
  EXPECT_EQ(Missing({1, 2, 3, 3}, {2}), (std::vector<int>{1, 3}));
}

}  // namespace
}  // namespace trainrun::gpu::testing
