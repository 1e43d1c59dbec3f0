// The node's GPUs, identified by PCI bus id, and which of them are this job's.
//
// Sources, first that finds GPUs wins: NVML (index, bus id, UUID, name; it sees
// exactly the GPUs the container was given), else hwloc's GPU OS devices, else
// PCI devices with NVIDIA's vendor id and a display or 3D class. Where each GPU
// is attached (its NUMA node, its PCI switch) always comes from the hwloc
// topology, matched by bus id.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "gpu/nvml_loader.h"
#include "gpu/topology.h"

namespace trainrun::gpu {

struct Gpu {
  // CUDA's index when CUDA_DEVICE_ORDER=PCI_BUS_ID: the position among the GPUs
  // CUDA can see, in PCI bus id order. What CUDA_VISIBLE_DEVICES holds.
  int index = 0;
  int nvml_index = -1;  // NVML's own index (nvidia-smi's); -1 without NVML
  std::string bus_id;   // "0000:34:00.0"
  std::string uuid;     // empty when unknown
  std::string model;
  bool in_topology = false;  // hwloc has the device (else: no locality)
  PciPlace place;            // from hwloc; bus_id only when !in_topology
  bool ours = true;          // selected by CUDA_VISIBLE_DEVICES (or no selection)
};

struct GpuInventory {
  // "NVML (libnvidia-ml.so.1)", "hwloc GPU OS devices", "PCI vendor and class"
  // or "none".
  std::string source;
  std::vector<Gpu> gpus;  // every GPU CUDA can see, in PCI bus id order
  std::vector<std::string> notes;
  std::vector<std::string> warnings;

  // The positions in `gpus` of the job's GPUs, in PCI order.
  std::vector<int> Ours() const;
};

struct DiscoveryOptions {
  // Ask NVML (dlopen `nvml_library`). Off for another machine's XML topology
  // unless asked for explicitly.
  bool use_nvml = true;
  std::string nvml_library = kDefaultNvmlLibrary;
  // The values in trainrun's environment, when set.
  std::optional<std::string> cuda_visible_devices;
  std::optional<std::string> nvidia_visible_devices;
};

// Finds the GPUs (querying NVML when options.use_nvml). Never fails: problems
// are notes or warnings and the inventory may be empty.
GpuInventory DiscoverGpus(const NodeTopology& topology, const DiscoveryOptions& options);

// The same with NVML's answer given (nullptr: NVML not asked), for tests.
GpuInventory CombineGpus(const NodeTopology& topology, const NvmlReport* nvml,
                         const DiscoveryOptions& options);

}  // namespace trainrun::gpu
