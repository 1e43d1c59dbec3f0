#include "gpu/binding_plan.h"

#include <algorithm>
#include <map>
#include <numeric>
#include <set>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "gpu/affinity.h"

namespace trainrun::gpu {
namespace {

// How near a network device is to a GPU or a NUMA node, as a score: smaller is
// nearer. The level times kLevelScore, less the PCI bridges the two devices
// share below the host bridge (behind the same switch, the deeper they meet the
// nearer).
enum Level { kSameSwitch = 0, kSameHostBridge, kSameNuma, kRemote };
constexpr int kLevelScore = 1000;

const char* DistanceName(int score) {
  switch (score <= 0 ? kSameSwitch : score / kLevelScore) {
    case kSameSwitch: return "PCI switch";
    case kSameHostBridge: return "host bridge";
    case kSameNuma: return "NUMA node";
    default: return "remote";
  }
}

bool Intersects(const std::vector<int>& a, const std::vector<int>& b) {
  for (int x : a) {
    if (std::find(b.begin(), b.end(), x) != b.end()) return true;
  }
  return false;
}

int PciDistance(const PciPlace& a, const PciPlace& b, const std::vector<int>& a_nodes) {
  size_t shared = 0;
  while (shared < a.bridges.size() && shared < b.bridges.size() &&
         a.bridges[shared] == b.bridges[shared]) {
    ++shared;
  }
  if (shared > 0) return kSameSwitch * kLevelScore - static_cast<int>(shared);
  if (a.host_bridge != 0 && a.host_bridge == b.host_bridge) {
    return kSameHostBridge * kLevelScore;
  }
  if (!b.numa_nodes.empty() && b.numa_nodes.size() <= a_nodes.size() &&
      Intersects(a_nodes, b.numa_nodes)) {
    return kSameNuma * kLevelScore;
  }
  return kRemote * kLevelScore;
}

class Planner {
 public:
  Planner(const NodeTopology& topology, const GpuInventory& inventory, const PlanOptions& options)
      : topology_(topology), inventory_(inventory), options_(options) {
    for (const NumaNode& node : topology.numa_nodes) {
      if (!node.cores.empty()) cpu_nodes_.push_back(&node);
    }
  }

  BindingPlan Plan();

 private:
  void CountRanks();
  void AssignGpus();
  void PlaceGpuRanks();
  void PlaceCpuRanks();
  void SplitCores();
  void ChooseNics();
  int NodeOfGpu(const Gpu& gpu, std::map<int, int>* gpus_per_node);

  const NodeTopology& topology_;
  const GpuInventory& inventory_;
  const PlanOptions& options_;
  std::vector<const NumaNode*> cpu_nodes_;  // NUMA nodes that have cores
  std::vector<int> ours_;                   // the job's GPUs (Gpu::index), PCI order
  BindingPlan plan_;
};

BindingPlan Planner::Plan() {
  plan_.mode = options_.mode;
  ours_ = inventory_.Ours();
  CountRanks();
  for (int r = 0; r < plan_.process_count; ++r) {
    RankBinding rank;
    rank.local_rank = r;
    plan_.ranks.push_back(rank);
  }
  if (options_.mode == BindingMode::kNone) {
    plan_.notes.push_back(
        "binding none: ranks are not bound to CPUs or memory and every rank "
        "sees "
        "every GPU");
    return plan_;
  }
  AssignGpus();
  if (cpu_nodes_.empty()) {
    plan_.warnings.push_back(
        fmt::format("the topology ({}) has no NUMA node with cores: ranks are "
                    "not bound to CPUs or memory",
                    topology_.source));
  } else {
    if (ours_.empty()) {
      PlaceCpuRanks();
    } else {
      PlaceGpuRanks();
    }
    SplitCores();
  }
  ChooseNics();
  return plan_;
}

void Planner::CountRanks() {
  const int gpus = static_cast<int>(ours_.size());
  int per = options_.gpus_per_process.value_or(1);
  if (per == 0) per = std::max(gpus, 1);  // 0: all of them
  if (gpus == 0) {
    if (options_.gpus_per_process.value_or(0) > 0) {
      plan_.warnings.push_back(
          fmt::format("gpusPerProcess is {} but this node has no GPUs for the job",
                      *options_.gpus_per_process));
    }
    per = 0;
  } else if (per > gpus) {
    plan_.warnings.push_back(
        fmt::format("gpusPerProcess is {} but this node has {} GPU(s) for the "
                    "job: each rank gets all of them",
                    per, gpus));
    per = gpus;
  }
  plan_.gpus_per_process = per;
  if (options_.process_count) {
    plan_.process_count = std::max(1, *options_.process_count);
    plan_.process_count_source = "job file";
    return;
  }
  if (gpus == 0) {
    plan_.process_count = 1;
    plan_.process_count_source = "default (no GPUs)";
    return;
  }
  plan_.process_count = std::max(1, gpus / per);
  plan_.process_count_source = per == 1 ? "one per GPU" : fmt::format("one per {} GPUs", per);
  if (gpus % per != 0) {
    plan_.warnings.push_back(
        fmt::format("{} GPU(s) are not a multiple of gpusPerProcess {}: {} GPU(s) "
                    "stay unused",
                    gpus, per, gpus % per));
  }
}

void Planner::AssignGpus() {
  const int gpus = static_cast<int>(ours_.size());
  if (gpus == 0) return;
  const int per = plan_.gpus_per_process;
  std::map<int, std::vector<int>> users;  // Gpu::index -> local ranks
  for (RankBinding& rank : plan_.ranks) {
    for (int k = 0; k < per; ++k) {
      int gpu = ours_[(rank.local_rank * per + k) % gpus];
      rank.gpus.push_back(gpu);
      users[gpu].push_back(rank.local_rank);
    }
    std::sort(rank.gpus.begin(), rank.gpus.end());
  }
  const int needed = plan_.process_count * per;
  if (needed > gpus) {
    std::vector<std::string> shared;
    for (const auto& [gpu, ranks] : users) {
      if (ranks.size() > 1)
        shared.push_back(fmt::format("GPU {}: ranks {}", gpu, fmt::join(ranks, ",")));
    }
    plan_.warnings.push_back(
        fmt::format("{} rank(s) x {} GPU(s) but {} GPU(s) for the job: ranks "
                    "share GPUs ({})",
                    plan_.process_count, per, gpus, fmt::join(shared, "; ")));
  } else if (needed < gpus && options_.process_count) {
    std::vector<int> unused(ours_.begin() + needed, ours_.end());
    plan_.notes.push_back(fmt::format("{} rank(s) use {} of {} GPU(s); GPU(s) {} stay unused",
                                      plan_.process_count, needed, gpus, fmt::join(unused, ",")));
  }
}

// The NUMA node a GPU's ranks are placed on: the one hwloc attaches it to, else
// (not in the topology, or attached above several NUMA nodes) the node among
// the candidates with the fewest GPUs so far.
int Planner::NodeOfGpu(const Gpu& gpu, std::map<int, int>* gpus_per_node) {
  std::vector<int> candidates;
  for (const NumaNode* node : cpu_nodes_) {
    if (gpu.in_topology && std::find(gpu.place.numa_nodes.begin(), gpu.place.numa_nodes.end(),
                                     node->os_index) != gpu.place.numa_nodes.end()) {
      candidates.push_back(node->os_index);
    }
  }
  const bool placed = candidates.size() == 1;
  if (candidates.empty()) {
    for (const NumaNode* node : cpu_nodes_) candidates.push_back(node->os_index);
  }
  int best = candidates.front();
  for (int node : candidates) {
    if ((*gpus_per_node)[node] < (*gpus_per_node)[best]) best = node;
  }
  ++(*gpus_per_node)[best];
  if (!placed) {
    plan_.warnings.push_back(fmt::format(
        "hwloc cannot tell which NUMA node GPU {} ({}) is attached to{}: its "
        "rank(s) are placed on "
        "NUMA node {}",
        gpu.index, gpu.bus_id,
        gpu.in_topology ? fmt::format(" (NUMA nodes {} are equally near)", FormatIdList(candidates))
                        : std::string(" (it is not in the topology)"),
        best));
  }
  return best;
}

void Planner::PlaceGpuRanks() {
  std::map<int, int> node_of;  // Gpu::index -> NUMA node
  std::map<int, int> gpus_per_node;
  if (cpu_nodes_.size() == 1) {
    for (int g : ours_) node_of[g] = cpu_nodes_.front()->os_index;
  } else {
    // Placed GPUs first, so an unplaced one balances against them.
    for (int pass = 0; pass < 2; ++pass) {
      for (int g : ours_) {
        const Gpu& gpu = inventory_.gpus[g];
        int local = 0;
        for (const NumaNode* node : cpu_nodes_) {
          if (std::find(gpu.place.numa_nodes.begin(), gpu.place.numa_nodes.end(), node->os_index) !=
              gpu.place.numa_nodes.end()) {
            ++local;
          }
        }
        const bool placed = gpu.in_topology && local == 1;
        if (placed == (pass == 0)) node_of[g] = NodeOfGpu(gpu, &gpus_per_node);
      }
    }
  }
  for (RankBinding& rank : plan_.ranks) {
    std::set<int> nodes;
    for (int g : rank.gpus) nodes.insert(node_of[g]);
    rank.numa_nodes.assign(nodes.begin(), nodes.end());
  }
}

void Planner::PlaceCpuRanks() {
  const int n = plan_.process_count;
  const int d = static_cast<int>(cpu_nodes_.size());
  if (n < d) {
    // Fewer ranks than NUMA nodes: each rank gets a contiguous group of nodes.
    for (int r = 0; r < n; ++r) {
      for (int i = r * d / n; i < (r + 1) * d / n; ++i) {
        plan_.ranks[r].numa_nodes.push_back(cpu_nodes_[i]->os_index);
      }
    }
    return;
  }
  // Ranks per node in proportion to its cores (largest remainder), contiguous.
  int total_cores = 0;
  for (const NumaNode* node : cpu_nodes_) total_cores += static_cast<int>(node->cores.size());
  std::vector<int> count(d);
  std::vector<std::pair<int64_t, int>> remainder;  // (remainder, -node position)
  int given = 0;
  for (int i = 0; i < d; ++i) {
    int64_t share = static_cast<int64_t>(n) * static_cast<int64_t>(cpu_nodes_[i]->cores.size());
    count[i] = static_cast<int>(share / total_cores);
    given += count[i];
    remainder.emplace_back(share % total_cores, -i);
  }
  std::sort(remainder.rbegin(), remainder.rend());
  for (int k = 0; given < n; ++k, ++given) ++count[-remainder[k % d].second];
  int r = 0;
  for (int i = 0; i < d; ++i) {
    for (int k = 0; k < count[i]; ++k)
      plan_.ranks[r++].numa_nodes.push_back(cpu_nodes_[i]->os_index);
  }
}

void Planner::SplitCores() {
  std::map<int, double> threads;  // local rank -> cores' worth of CPU time
  for (const NumaNode* node : cpu_nodes_) {
    std::vector<RankBinding*> here;
    for (RankBinding& rank : plan_.ranks) {
      if (std::find(rank.numa_nodes.begin(), rank.numa_nodes.end(), node->os_index) !=
          rank.numa_nodes.end()) {
        here.push_back(&rank);
      }
    }
    if (here.empty()) continue;
    const int cores = static_cast<int>(node->cores.size());
    const int ranks = static_cast<int>(here.size());
    if (cores < ranks) {
      std::vector<int> ids;
      for (RankBinding* rank : here) ids.push_back(rank->local_rank);
      plan_.warnings.push_back(
          fmt::format("NUMA node {} has {} core(s) for {} ranks ({}): they "
                      "share all of its cores and "
                      "OMP_NUM_THREADS is 1",
                      node->os_index, cores, ranks, FormatIdList(ids)));
      for (RankBinding* rank : here) {
        for (const Core& core : node->cores)
          rank->cpus.insert(rank->cpus.end(), core.cpus.begin(), core.cpus.end());
        rank->cores += cores;
        rank->shared_cores = true;
        threads[rank->local_rank] += static_cast<double>(cores) / ranks;
      }
      continue;
    }
    // Contiguous blocks; the first (cores % ranks) ranks get one core more.
    int next = 0;
    for (int i = 0; i < ranks; ++i) {
      int take = cores / ranks + (i < cores % ranks ? 1 : 0);
      for (int k = 0; k < take; ++k, ++next) {
        const std::vector<int>& pus = node->cores[next].cpus;
        here[i]->cpus.insert(here[i]->cpus.end(), pus.begin(), pus.end());
      }
      here[i]->cores += take;
      threads[here[i]->local_rank] += take;
    }
  }
  for (RankBinding& rank : plan_.ranks) {
    std::sort(rank.cpus.begin(), rank.cpus.end());
    rank.cpus.erase(std::unique(rank.cpus.begin(), rank.cpus.end()), rank.cpus.end());
    rank.memory_nodes = rank.numa_nodes;
    rank.omp_threads = std::max(1, static_cast<int>(threads[rank.local_rank]));
  }
}

void Planner::ChooseNics() {
  const std::vector<Nic>& nics = topology_.nics;
  if (nics.empty()) return;
  const bool any_rdma = std::any_of(nics.begin(), nics.end(), [](const Nic& n) { return n.rdma; });
  std::vector<int> uses(nics.size(), 0);
  // The nearest candidate; among equally near ones the least used, then PCI
  // order.
  auto nearest = [&](auto distance_of, int* best_distance) {
    int best = -1;
    for (size_t i = 0; i < nics.size(); ++i) {
      if (any_rdma && !nics[i].rdma) continue;
      int d = distance_of(nics[i]);
      if (best < 0 || d < *best_distance || (d == *best_distance && uses[i] < uses[best])) {
        best = static_cast<int>(i);
        *best_distance = d;
      }
    }
    return best;
  };
  for (RankBinding& rank : plan_.ranks) {
    std::vector<std::pair<int, int>> chosen;  // (nic, distance)
    if (!rank.gpus.empty()) {
      for (int g : rank.gpus) {
        const Gpu& gpu = inventory_.gpus[g];
        std::vector<int> gpu_nodes = gpu.in_topology ? gpu.place.numa_nodes : rank.numa_nodes;
        int distance = kRemote * kLevelScore;
        int nic = nearest(
            [&](const Nic& n) {
              return gpu.in_topology ? PciDistance(gpu.place, n.place, gpu_nodes)
                                     : PciDistance(PciPlace{}, n.place, rank.numa_nodes);
            },
            &distance);
        if (nic >= 0) chosen.emplace_back(nic, distance);
      }
    } else {
      int distance = kRemote * kLevelScore;
      int nic =
          nearest([&](const Nic& n) { return PciDistance(PciPlace{}, n.place, rank.numa_nodes); },
                  &distance);
      if (nic >= 0) chosen.emplace_back(nic, distance);
    }
    for (const auto& [nic, distance] : chosen) {
      if (std::find(rank.nics.begin(), rank.nics.end(), nic) != rank.nics.end()) continue;
      if (rank.nics.empty()) rank.nic_distance = DistanceName(distance);
      rank.nics.push_back(nic);
      ++uses[nic];
    }
  }
}

}  // namespace

std::string_view BindingModeName(BindingMode mode) {
  return mode == BindingMode::kNone ? "none" : "auto";
}

BindingPlan PlanBinding(const NodeTopology& topology, const GpuInventory& inventory,
                        const PlanOptions& options) {
  Planner planner(topology, inventory, options);
  return planner.Plan();
}

}  // namespace trainrun::gpu
