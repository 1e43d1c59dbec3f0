// The node's hardware as binding needs it: NUMA nodes with their cores, NVIDIA
// GPUs and network devices on PCI, and where each device is attached. Read with
// hwloc from this machine, an hwloc XML file (another machine's, for planning
// and tests) or an hwloc synthetic description ("pack:2 numa:2 core:8 pu:2").
//
// The result is a plain value: hwloc is used only inside LoadTopology(), so the
// planner and its tests work on structs.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/status.h"

namespace trainrun::gpu {

// A core and its hardware threads (SMT siblings), kernel CPU numbers.
struct Core {
  std::vector<int> cpus;
};

struct NumaNode {
  int os_index = 0;           // the kernel's node number
  uint64_t memory_bytes = 0;  // local memory
  std::vector<int> cpus;      // kernel CPU numbers local to the node; empty: a CPU-less node
  std::vector<Core> cores;    // whole cores of the node, in hwloc's (physical) order
};

// Where a PCI device sits, to tell which devices are near each other.
struct PciPlace {
  std::string bus_id;  // "0000:34:00.0", lower-case hex
  // hwloc's persistent index of each PCI bridge above the device, the one below
  // the host bridge first. Two devices that share a bridge are behind the same
  // PCIe switch or root port.
  std::vector<uint64_t> bridges;
  uint64_t host_bridge = 0;  // the host bridge's persistent index; 0 when none
  // The NUMA nodes local to the device: one when hwloc knows where it is
  // attached, several (often all) when it does not.
  std::vector<int> numa_nodes;
};

// An NVIDIA GPU as hwloc sees it.
struct PciGpu {
  PciPlace place;
  uint16_t device_id = 0;  // PCI device id, e.g. 0x1db8
  uint16_t class_id = 0;   // 0x0300 VGA, 0x0302 3D
  std::string model;       // from a GPU OS device or the PCI name database; may be empty
  std::string uuid;        // "GPU-..." from an NVML/CUDA OS device; may be empty
  std::vector<std::string> os_devices;  // hwloc's GPU OS devices: "nvml0", "cuda0", "card1"
};

// A network device: an RDMA (InfiniBand or RoCE verbs) device, or a plain
// network interface.
struct Nic {
  std::string name;  // "mlx5_0" for RDMA devices, else the interface, "eth0"
  bool rdma = false;
  int port = 1;                         // RDMA: the first active port, 1 when hwloc does not say
  std::string kind;                     // from the PCI class: "InfiniBand", "Ethernet", "Network"
  std::vector<std::string> interfaces;  // network interfaces of the same PCI device
  PciPlace place;
};

struct NodeTopology {
  std::string source;                // "this machine", "XML file F" or "synthetic D"
  bool this_machine = false;         // binding may be applied as planned
  std::vector<NumaNode> numa_nodes;  // by node number
  std::vector<PciGpu> gpus;          // in PCI bus id order
  std::vector<Nic> nics;             // in PCI bus id order, then name
  std::vector<int> cpus;             // every CPU in the topology
  int core_count = 0;
  std::vector<std::string> notes;  // e.g. the topology was restricted to our affinity
};

enum class TopologyKind { kThisMachine, kXmlFile, kSynthetic };

struct TopologySource {
  TopologyKind kind = TopologyKind::kThisMachine;
  std::string value;  // the XML file or the synthetic description
};

// Loads the topology. For this machine it covers only the CPUs this process may
// run on (its affinity, e.g. from taskset or the scheduler); devices attached
// to CPUs outside it stay, without a NUMA node of their own. Errors: kNotFound
// / kIoError when the XML file cannot be read, kInvalidArgument when it or the
// synthetic description is not a topology (the message names the file),
// kInternal when hwloc fails on this machine.
//
// With `xml` given, it also receives the loaded topology as hwloc XML (after the
// affinity restriction): what the per-boot cache keeps (gpu/topology_cache.h).
Result<NodeTopology> LoadTopology(const TopologySource& source, std::string* xml = nullptr);

// The NUMA node that holds `cpu`, or -1.
int NumaNodeOfCpu(const NodeTopology& topology, int cpu);

}  // namespace trainrun::gpu
