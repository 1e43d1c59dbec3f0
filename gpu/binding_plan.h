// The binding plan: which GPUs, CPU cores, NUMA memory and network device each
// local rank gets, planned the way a careful HPC engineer would.
//
// clang-format off
//   - Ranks per node default to the job's GPUs (divided by gpusPerProcess), else 1.
//   - Rank i gets the i-th GPU in PCI bus id order (or gpusPerProcess neighbouring
//     GPUs), so LOCAL_RANK, CUDA's PCI_BUS_ID order and the plan agree.
//   - Each rank runs on the cores of its GPU's NUMA node, split evenly among the
//     ranks placed there: whole cores (SMT siblings together), contiguous blocks,
//     never a core to two ranks while another rank of the node has none. When a
//     node has fewer cores than ranks, its ranks share all of its cores (a warning).
//   - Memory is bound to the rank's NUMA node(s).
//   - Its network device is the nearest: behind the same PCI switch, else the same
//     host bridge, else the same NUMA node, else any; RDMA devices first.
//   - Without GPUs, ranks are spread over the NUMA nodes in contiguous blocks in
//     proportion to their cores.
// clang-format on
// Odd inputs (more ranks than GPUs or cores, GPUs hwloc cannot place) give a plan
// and a warning, never an error.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "gpu/gpu_discovery.h"
#include "gpu/topology.h"

namespace trainrun::gpu {

// The job file's `binding`: "auto" plans as above; "none" binds nothing and
// leaves every GPU visible to every rank.
enum class BindingMode { kAuto, kNone };

struct PlanOptions {
  BindingMode mode = BindingMode::kAuto;
  // Ranks on this node; none: the job's GPUs / gpus_per_process, else 1.
  std::optional<int> process_count;
  // GPUs per rank (0: all of the job's GPUs on the node); none: 1 when the node has GPUs.
  std::optional<int> gpus_per_process;
};

struct RankBinding {
  int local_rank = 0;
  std::vector<int> gpus;          // Gpu::index values (CUDA's numbering), PCI order
  std::vector<int> numa_nodes;    // the NUMA nodes the rank is placed on
  std::vector<int> cpus;          // kernel CPU numbers; empty: not bound
  int cores = 0;                  // whole cores in `cpus`
  bool shared_cores = false;      // its cores are shared with other ranks
  std::vector<int> memory_nodes;  // NUMA nodes for MPOL_BIND; empty: no policy
  std::vector<int> nics;          // positions in NodeTopology::nics, nearest first
  std::string nic_distance;       // "PCI switch", "host bridge", "NUMA node" or "remote"
  int omp_threads = 0;            // OMP_NUM_THREADS; 0: not set
};

struct BindingPlan {
  BindingMode mode = BindingMode::kAuto;
  int process_count = 1;
  std::string process_count_source;  // "job file", "one per GPU", "default (no GPUs)", ...
  int gpus_per_process = 0;          // 0 without GPUs
  std::vector<RankBinding> ranks;    // by local rank
  std::vector<std::string> notes;
  std::vector<std::string> warnings;
};

// Plans `options.process_count` ranks (or the default) on `topology` with the
// job's GPUs from `inventory`. `options.process_count` must be >= 1 when set.
BindingPlan PlanBinding(const NodeTopology& topology, const GpuInventory& inventory,
                        const PlanOptions& options);

// "auto" or "none".
std::string_view BindingModeName(BindingMode mode);

}  // namespace trainrun::gpu
