#include "gpu/binding_plan.h"

#include <algorithm>
#include <map>
#include <set>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "gpu/affinity.h"
#include "gpu/binding_env.h"
#include "gpu/plan_report.h"
#include "tests/gpu/fixtures.h"

namespace trainrun::gpu::testing {
namespace {

GpuInventory Gpus(const NodeTopology& topology) {
  DiscoveryOptions options;
  options.use_nvml = false;
  return DiscoverGpus(topology, options);
}

BindingPlan Plan(const NodeTopology& topology, std::optional<int> ranks = std::nullopt,
                 std::optional<int> gpus_per_process = std::nullopt) {
  PlanOptions options;
  options.process_count = ranks;
  options.gpus_per_process = gpus_per_process;
  return PlanBinding(topology, Gpus(topology), options);
}

std::map<std::string, std::string> Env(const BindingPlan& plan, int rank,
                                       const NodeTopology& topology) {
  std::map<std::string, std::string> env;
  for (auto& [name, value] : BindingEnvironment(plan, plan.ranks[rank], topology, Gpus(topology))) {
    env[name] = value;
  }
  return env;
}

bool Contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

bool AnyWarning(const BindingPlan& plan, const std::string& needle) {
  return std::any_of(plan.warnings.begin(), plan.warnings.end(),
                     [&](const std::string& w) { return Contains(w, needle); });
}

// Every CPU of the plan, and how many ranks have it.
std::map<int, int> CpuUse(const BindingPlan& plan) {
  std::map<int, int> use;
  for (const RankBinding& rank : plan.ranks) {
    for (int cpu : rank.cpus) ++use[cpu];
  }
  return use;
}

// The DGX-2 with its real 24 cores x 2 threads per package: package p's core c
// has CPUs p*24+c and 48+p*24+c, as Linux numbers a 2-socket Xeon 8174.
NodeTopology FullDgx2() {
  NodeTopology t = Xml(Dgx2Xml());
  t.cpus.clear();
  t.core_count = 48;
  for (NumaNode& node : t.numa_nodes) {
    const int p = node.os_index;
    node.cores.clear();
    node.cpus.clear();
    for (int c = 0; c < 24; ++c) {
      node.cores.push_back({{p * 24 + c, 48 + p * 24 + c}});
      node.cpus.push_back(p * 24 + c);
      node.cpus.push_back(48 + p * 24 + c);
    }
    std::sort(node.cpus.begin(), node.cpus.end());
    t.cpus.insert(t.cpus.end(), node.cpus.begin(), node.cpus.end());
  }
  return t;
}

TEST(BindingPlanTest, Dgx2SixteenRanksOnePerGpuEachPackageItsOwnCores) {
  NodeTopology dgx = Xml(Dgx2Xml());
  BindingPlan plan = Plan(dgx);
  ASSERT_EQ(plan.process_count, 16);
  EXPECT_EQ(plan.process_count_source, "one per GPU");
  std::set<int> package0, package1;
  for (const RankBinding& rank : plan.ranks) {
    const int r = rank.local_rank;
    EXPECT_EQ(rank.gpus, (std::vector<int>{r}));
    const int node = r < 8 ? 0 : 1;
    EXPECT_EQ(rank.numa_nodes, (std::vector<int>{node}));
    EXPECT_EQ(rank.memory_nodes, (std::vector<int>{node}));
    EXPECT_EQ(rank.cpus, (node == 0 ? std::vector<int>{0, 1} : std::vector<int>{24, 25})) << r;
    (node == 0 ? package0 : package1).insert(rank.cpus.begin(), rank.cpus.end());
    EXPECT_EQ(Env(plan, r, dgx)["CUDA_VISIBLE_DEVICES"], std::to_string(r));
  }
  for (int cpu : package0)
    EXPECT_EQ(package1.count(cpu), 0u) << "CPU " << cpu << " in both packages";
  // The fixture keeps only 2 cores per package: 8 ranks share them, with a
  // warning.
  EXPECT_TRUE(plan.ranks[0].shared_cores);
  EXPECT_EQ(plan.ranks[0].omp_threads, 1);
  EXPECT_TRUE(AnyWarning(plan, "NUMA node 0 has 2 core(s) for 8 ranks (0-7)"));
}

TEST(BindingPlanTest, FullSizeDgx2SixteenRanksGetThreeWholeCoresEachNoCoreShared) {
  NodeTopology dgx = FullDgx2();
  BindingPlan plan = Plan(dgx);
  ASSERT_EQ(plan.ranks.size(), 16u);
  for (const auto& [cpu, ranks] : CpuUse(plan)) EXPECT_EQ(ranks, 1) << "CPU " << cpu;
  EXPECT_EQ(CpuUse(plan).size(), 96u);  // every CPU used
  EXPECT_TRUE(plan.warnings.empty());
  // Rank 0: package 0's first 3 cores with their SMT siblings; rank 8 package
  // 1's.
  EXPECT_EQ(FormatIdList(plan.ranks[0].cpus), "0-2,48-50");
  EXPECT_EQ(FormatIdList(plan.ranks[7].cpus), "21-23,69-71");
  EXPECT_EQ(FormatIdList(plan.ranks[8].cpus), "24-26,72-74");
  for (const RankBinding& rank : plan.ranks) {
    EXPECT_EQ(rank.cores, 3);
    EXPECT_EQ(rank.omp_threads, 3);
    EXPECT_FALSE(rank.shared_cores);
    for (int cpu : rank.cpus) EXPECT_EQ(NumaNodeOfCpu(dgx, cpu), rank.local_rank < 8 ? 0 : 1);
  }
}

TEST(BindingPlanTest, Dgx2EightRanksWithTwoGpusEach) {
  NodeTopology dgx = FullDgx2();
  BindingPlan plan = Plan(dgx, std::nullopt, 2);
  ASSERT_EQ(plan.process_count, 8);
  EXPECT_EQ(plan.process_count_source, "one per 2 GPUs");
  EXPECT_EQ(plan.gpus_per_process, 2);
  for (const RankBinding& rank : plan.ranks) {
    const int r = rank.local_rank;
    EXPECT_EQ(rank.gpus, (std::vector<int>{2 * r, 2 * r + 1}));
    EXPECT_EQ(rank.numa_nodes, (std::vector<int>{r < 4 ? 0 : 1}));
    EXPECT_EQ(rank.cores, 6);
    EXPECT_EQ(Env(plan, r, dgx)["CUDA_VISIBLE_DEVICES"], fmt::format("{},{}", 2 * r, 2 * r + 1));
  }
  for (const auto& [cpu, ranks] : CpuUse(plan)) EXPECT_EQ(ranks, 1) << "CPU " << cpu;
  // The same on the trimmed fixture: 4 ranks per package share its 2 cores.
  BindingPlan trimmed = Plan(Xml(Dgx2Xml()), 8, 2);
  EXPECT_EQ(trimmed.ranks[3].cpus, (std::vector<int>{0, 1}));
  EXPECT_EQ(trimmed.ranks[4].cpus, (std::vector<int>{24, 25}));
}

// gpusPerProcess 0 (a job written for Azure ML): one rank gets every GPU, no warning.
TEST(BindingPlanTest, Dgx2OneRankWithAllGpus) {
  NodeTopology dgx = FullDgx2();
  BindingPlan plan = Plan(dgx, 1, 0);
  ASSERT_EQ(plan.process_count, 1);
  EXPECT_EQ(plan.gpus_per_process, 16);
  EXPECT_EQ(Env(plan, 0, dgx)["CUDA_VISIBLE_DEVICES"], "0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15");
  EXPECT_FALSE(AnyWarning(plan, "gpusPerProcess"))
      << fmt::format("{}", fmt::join(plan.warnings, "\n"));
}

TEST(BindingPlanTest, Em64tGpuNumaAndNicMapping) {
  NodeTopology t = Xml(Em64tXml());
  BindingPlan plan = Plan(t);
  ASSERT_EQ(plan.process_count, 3);
  // GPU 0 (0000:06:00.0) is on package 0 with the InfiniBand HCA; GPUs 1 and 2
  // on package 1, whose 6 cores they split.
  EXPECT_EQ(plan.ranks[0].numa_nodes, (std::vector<int>{0}));
  EXPECT_EQ(FormatIdList(plan.ranks[0].cpus), "0,2,4,6,8,10,12,14,16,18,20,22");
  EXPECT_EQ(plan.ranks[0].cores, 6);
  EXPECT_EQ(plan.ranks[1].numa_nodes, (std::vector<int>{1}));
  EXPECT_EQ(FormatIdList(plan.ranks[1].cpus),
            "1,3,5,13,15,17");  // cores 0, 8, 2 of package 1
  EXPECT_EQ(FormatIdList(plan.ranks[2].cpus), "7,9,11,19,21,23");
  EXPECT_EQ(plan.ranks[2].memory_nodes, (std::vector<int>{1}));
  for (const RankBinding& rank : plan.ranks) {
    ASSERT_EQ(rank.nics.size(), 1u);
    EXPECT_EQ(t.nics[rank.nics[0]].name,
              "mlx4_0");  // RDMA first, even when remote
  }
  EXPECT_EQ(plan.ranks[0].nic_distance, "host bridge");
  EXPECT_EQ(plan.ranks[1].nic_distance, "remote");
  std::map<std::string, std::string> env = Env(plan, 0, t);
  EXPECT_EQ(env["CUDA_VISIBLE_DEVICES"], "0");
  EXPECT_EQ(env["OMP_NUM_THREADS"], "6");
  EXPECT_EQ(env["NCCL_IB_HCA"], "=mlx4_0:1");
  EXPECT_EQ(env["UCX_NET_DEVICES"], "mlx4_0:1");
  EXPECT_EQ(Env(plan, 2, t)["OMP_NUM_THREADS"], "3");
}

// DGX-2-style: one HCA behind each PCIe switch pair. Each GPU gets the HCA
// behind its own switch, not merely one under the same root port.
TEST(BindingPlanTest, EachGpuGetsTheHcaBehindItsOwnPcieSwitch) {
  NodeTopology dgx = FullDgx2();
  auto hca = [&](const std::string& name, const PciGpu& near) {
    Nic nic;
    nic.name = name;
    nic.rdma = true;
    nic.kind = "InfiniBand";
    nic.place.bus_id = "0000:ff:00." + name.substr(name.size() - 1);
    nic.place.bridges.assign(near.place.bridges.begin(), near.place.bridges.begin() + 3);
    nic.place.host_bridge = near.place.host_bridge;
    nic.place.numa_nodes = near.place.numa_nodes;
    return nic;
  };
  ASSERT_GE(dgx.gpus[0].place.bridges.size(), 4u);
  dgx.nics = {hca("mlx5_0", dgx.gpus[0]), hca("mlx5_1", dgx.gpus[2])};
  BindingPlan plan = Plan(dgx);
  auto nic_of = [&](int rank) { return dgx.nics[plan.ranks[rank].nics.at(0)].name; };
  EXPECT_EQ(nic_of(0), "mlx5_0");
  EXPECT_EQ(nic_of(1), "mlx5_0");
  EXPECT_EQ(nic_of(2), "mlx5_1");
  EXPECT_EQ(nic_of(3), "mlx5_1");
  EXPECT_EQ(plan.ranks[1].nic_distance, "PCI switch");
  // GPUs 4-7 sit under package 0's other host bridge: same NUMA node, spread.
  EXPECT_EQ(plan.ranks[4].nic_distance, "NUMA node");
  EXPECT_NE(nic_of(4), nic_of(5));
  EXPECT_EQ(plan.ranks[8].nic_distance, "remote");
  EXPECT_EQ(Env(plan, 2, dgx)["NCCL_IB_HCA"], "=mlx5_1:1");
}

TEST(BindingPlanTest, WithoutInfinibandTheNearestEthernetIsShownButNoIbVariables) {
  NodeTopology t = Xml(Em64tXml());
  t.nics.erase(std::remove_if(t.nics.begin(), t.nics.end(), [](const Nic& n) { return n.rdma; }),
               t.nics.end());
  BindingPlan plan = Plan(t);
  EXPECT_EQ(t.nics[plan.ranks[0].nics.at(0)].name, "eth0");
  EXPECT_EQ(t.nics[plan.ranks[1].nics.at(0)].name,
            "eth1");  // equally near: spread
  EXPECT_EQ(Env(plan, 0, t).count("NCCL_IB_HCA"), 0u);
  EXPECT_EQ(Env(plan, 0, t).count("UCX_NET_DEVICES"), 0u);
}

TEST(BindingPlanTest, MoreRanksThanGpusShareGpusWithAWarning) {
  NodeTopology t = Xml(Em64tXml());
  BindingPlan plan = Plan(t, 4);
  ASSERT_EQ(plan.ranks.size(), 4u);
  EXPECT_EQ(plan.ranks[3].gpus, (std::vector<int>{0}));
  EXPECT_EQ(plan.ranks[3].numa_nodes, (std::vector<int>{0}));
  EXPECT_TRUE(AnyWarning(plan, "ranks share GPUs (GPU 0: ranks 0,3)"));
  // Ranks 0 and 3 split package 0's 6 cores.
  EXPECT_EQ(plan.ranks[0].cores, 3);
  EXPECT_EQ(plan.ranks[3].cores, 3);
  for (const auto& [cpu, ranks] : CpuUse(plan)) EXPECT_EQ(ranks, 1) << "CPU " << cpu;
}

TEST(BindingPlanTest, AGpuHwlocCannotPlaceGoesToTheLessLoadedNode) {
  NodeTopology t = Xml(Em64tXml());
  t.gpus[2].place.numa_nodes = {0, 1};  // attached above both NUMA nodes
  BindingPlan plan = Plan(t);
  // GPU 0 is on node 0 and GPU 1 on node 1; GPU 2 balances to node 0 (first of
  // the equally loaded ones).
  EXPECT_EQ(plan.ranks[2].numa_nodes, (std::vector<int>{0}));
  EXPECT_TRUE(AnyWarning(plan, "hwloc cannot tell which NUMA node GPU 2 (0000:14:00.0)"));
  for (const auto& [cpu, ranks] : CpuUse(plan)) EXPECT_EQ(ranks, 1) << "CPU " << cpu;
}

TEST(BindingPlanTest, NoGpusRanksSpreadOverNumaNodes) {
  NodeTopology t = Synthetic("pack:2 numa:2 core:8 pu:2");
  BindingPlan four = Plan(t, 4);
  for (const RankBinding& rank : four.ranks) {
    EXPECT_EQ(rank.numa_nodes, (std::vector<int>{rank.local_rank}));
    EXPECT_EQ(rank.memory_nodes, (std::vector<int>{rank.local_rank}));
    EXPECT_EQ(rank.cores, 8);
    EXPECT_EQ(rank.cpus.size(), 16u);
    EXPECT_TRUE(rank.gpus.empty());
    EXPECT_EQ(Env(four, rank.local_rank, t).count("CUDA_VISIBLE_DEVICES"), 0u);
  }
  BindingPlan eight = Plan(t, 8);
  for (const RankBinding& rank : eight.ranks) {
    EXPECT_EQ(rank.numa_nodes, (std::vector<int>{rank.local_rank / 2}));
    EXPECT_EQ(rank.cores, 4);
  }
  for (const auto& [cpu, ranks] : CpuUse(eight)) EXPECT_EQ(ranks, 1);
  EXPECT_EQ(CpuUse(eight).size(), 64u);
  // One rank spans every node; two take one package each.
  EXPECT_EQ(Plan(t, 1).ranks[0].numa_nodes, (std::vector<int>{0, 1, 2, 3}));
  BindingPlan two = Plan(t, 2);
  EXPECT_EQ(two.ranks[1].numa_nodes, (std::vector<int>{2, 3}));
  EXPECT_EQ(two.ranks[1].cores, 16);
  EXPECT_EQ(Plan(t).process_count_source, "default (no GPUs)");
}

TEST(BindingPlanTest, UnevenSplitsGiveWholeCoresToEveryRank) {
  NodeTopology t = Synthetic("numa:2 core:5 pu:2");
  BindingPlan plan = Plan(t, 3);
  // 3 ranks on 2 nodes of 5 cores: 2 on node 0 (3 + 2 cores), 1 on node 1 (5).
  EXPECT_EQ(plan.ranks[0].numa_nodes, (std::vector<int>{0}));
  EXPECT_EQ(plan.ranks[1].numa_nodes, (std::vector<int>{0}));
  EXPECT_EQ(plan.ranks[2].numa_nodes, (std::vector<int>{1}));
  EXPECT_EQ(plan.ranks[0].cores, 3);
  EXPECT_EQ(plan.ranks[1].cores, 2);
  EXPECT_EQ(plan.ranks[2].cores, 5);
  for (const auto& [cpu, ranks] : CpuUse(plan)) EXPECT_EQ(ranks, 1);
  EXPECT_EQ(CpuUse(plan).size(), 20u);
  // SMT siblings stay together: each rank's CPU count is twice its cores.
  for (const RankBinding& rank : plan.ranks) EXPECT_EQ(rank.cpus.size(), 2u * rank.cores);

  BindingPlan seven = Plan(Synthetic("numa:1 core:10 pu:1"), 7);
  std::vector<int> cores;
  for (const RankBinding& rank : seven.ranks) cores.push_back(rank.cores);
  EXPECT_EQ(cores, (std::vector<int>{2, 2, 2, 1, 1, 1, 1}));
}

TEST(BindingPlanTest, OversubscriptionSharesTheNodesCoresWithAWarning) {
  NodeTopology t = Synthetic("numa:2 core:2 pu:2");
  BindingPlan plan = Plan(t, 6);
  ASSERT_EQ(plan.ranks.size(), 6u);
  for (const RankBinding& rank : plan.ranks) {
    const int node = rank.local_rank / 3;
    EXPECT_EQ(rank.numa_nodes, (std::vector<int>{node}));
    EXPECT_EQ(rank.cpus, t.numa_nodes[node].cpus);
    EXPECT_TRUE(rank.shared_cores);
    EXPECT_EQ(rank.omp_threads, 1);
  }
  EXPECT_TRUE(AnyWarning(plan, "NUMA node 1 has 2 core(s) for 3 ranks (3-5)"));
  std::string table = FormatPlan(plan, t, Gpus(t));
  EXPECT_TRUE(Contains(table, "* cores shared with other ranks")) << table;
}

TEST(BindingPlanTest, BindingNoneBindsNothing) {
  NodeTopology dgx = Xml(Dgx2Xml());
  PlanOptions options;
  options.mode = BindingMode::kNone;
  BindingPlan plan = PlanBinding(dgx, Gpus(dgx), options);
  EXPECT_EQ(plan.process_count, 16);  // still one per GPU
  for (const RankBinding& rank : plan.ranks) {
    EXPECT_TRUE(rank.cpus.empty());
    EXPECT_TRUE(rank.memory_nodes.empty());
    EXPECT_TRUE(rank.gpus.empty());
    EXPECT_TRUE(BindingEnvironment(plan, rank, dgx, Gpus(dgx)).empty());
  }
}

TEST(BindingPlanTest, GpusPerProcessEdgeCases) {
  NodeTopology t = Xml(Em64tXml());
  BindingPlan two = Plan(t, std::nullopt, 2);
  EXPECT_EQ(two.process_count, 1);
  EXPECT_EQ(two.ranks[0].gpus, (std::vector<int>{0, 1}));
  EXPECT_EQ(two.ranks[0].numa_nodes, (std::vector<int>{0, 1}));  // its GPUs' nodes
  EXPECT_TRUE(AnyWarning(two, "not a multiple of gpusPerProcess 2: 1 GPU(s) stay unused"));
  BindingPlan four = Plan(t, std::nullopt, 4);
  EXPECT_EQ(four.ranks[0].gpus, (std::vector<int>{0, 1, 2}));
  EXPECT_TRUE(AnyWarning(four, "each rank gets all of them"));
  BindingPlan none = Plan(Synthetic("numa:1 core:2 pu:1"), std::nullopt, 2);
  EXPECT_TRUE(AnyWarning(none, "no GPUs"));
  EXPECT_EQ(none.process_count, 1);
}

TEST(BindingPlanTest, ReportsAsTablesAndJson) {
  NodeTopology t = Xml(Em64tXml());
  GpuInventory gpus = Gpus(t);
  BindingPlan plan = PlanBinding(t, gpus, {});
  std::string topology = FormatTopology(t, gpus);
  EXPECT_TRUE(Contains(topology, "GPUs: 3 found by PCI vendor and class")) << topology;
  EXPECT_TRUE(Contains(topology, "mlx4_0  InfiniBand  port 1  0000:05:00.0  0     eth2,ib0"))
      << topology;
  std::string table = FormatPlan(plan, t, gpus);
  EXPECT_TRUE(Contains(table, "binding auto: 3 rank(s), one per GPU")) << table;
  EXPECT_TRUE(Contains(table, "1     1    0000:11:00.0  1     3      1,3,5,13,15,17")) << table;
  nlohmann::json j = BindingJson(t, gpus, plan);
  EXPECT_EQ(j["plan"]["ranks"][1]["cpus"], "1,3,5,13,15,17");
  EXPECT_EQ(j["plan"]["ranks"][1]["cpuList"], (std::vector<int>{1, 3, 5, 13, 15, 17}));
  EXPECT_EQ(j["plan"]["ranks"][0]["environment"]["NCCL_IB_HCA"], "=mlx4_0:1");
  EXPECT_EQ(j["plan"]["ranks"][2]["gpuBusIds"][0], "0000:14:00.0");
  EXPECT_EQ(j["gpus"]["devices"][0]["nvmlIndex"], nullptr);
  EXPECT_EQ(j["topology"]["nics"][2]["name"], "mlx4_0");
}

}  // namespace
}  // namespace trainrun::gpu::testing
