#include "gpu/gpu_discovery.h"

#include <algorithm>

#include <fmt/format.h>

#include "gpu/visible_devices.h"

namespace trainrun::gpu {
namespace {

const PciGpu* FindInTopology(const NodeTopology& topology, const std::string& bus_id) {
  for (const PciGpu& gpu : topology.gpus) {
    if (gpu.place.bus_id == bus_id) return &gpu;
  }
  return nullptr;
}

std::string ModelOf(const PciGpu& gpu) {
  if (!gpu.model.empty()) return gpu.model;
  return fmt::format("NVIDIA {:04x} ({})", gpu.device_id, gpu.class_id == 0x0300 ? "VGA" : "3D");
}

Gpu FromTopology(const PciGpu& pci) {
  Gpu gpu;
  gpu.bus_id = pci.place.bus_id;
  gpu.uuid = pci.uuid;
  gpu.model = ModelOf(pci);
  gpu.in_topology = true;
  gpu.place = pci.place;
  return gpu;
}

std::vector<std::string> Uuids(const std::vector<Gpu>& gpus) {
  std::vector<std::string> uuids;
  for (const Gpu& gpu : gpus) uuids.push_back(gpu.uuid);
  return uuids;
}

void Renumber(std::vector<Gpu>* gpus) {
  std::stable_sort(gpus->begin(), gpus->end(),
                   [](const Gpu& a, const Gpu& b) { return a.bus_id < b.bus_id; });
  for (size_t i = 0; i < gpus->size(); ++i) (*gpus)[i].index = static_cast<int>(i);
}

}  // namespace

std::vector<int> GpuInventory::Ours() const {
  std::vector<int> ours;
  for (const Gpu& gpu : gpus) {
    if (gpu.ours) ours.push_back(gpu.index);
  }
  return ours;
}

GpuInventory DiscoverGpus(const NodeTopology& topology, const DiscoveryOptions& options) {
  if (!options.use_nvml) return CombineGpus(topology, nullptr, options);
  NvmlReport nvml = QueryNvml(options.nvml_library);
  return CombineGpus(topology, &nvml, options);
}

GpuInventory CombineGpus(const NodeTopology& topology, const NvmlReport* nvml,
                         const DiscoveryOptions& options) {
  GpuInventory inventory;
  bool from_nvml = false;
  if (nvml != nullptr && nvml->available && !nvml->gpus.empty()) {
    from_nvml = true;
    inventory.source = fmt::format("NVML ({})", nvml->library);
    for (const NvmlGpu& n : nvml->gpus) {
      Gpu gpu;
      if (const PciGpu* pci = FindInTopology(topology, n.bus_id)) gpu = FromTopology(*pci);
      gpu.bus_id = n.bus_id;
      gpu.place.bus_id = n.bus_id;
      gpu.nvml_index = n.index;
      if (!n.uuid.empty()) gpu.uuid = n.uuid;
      if (!n.name.empty()) gpu.model = n.name;
      if (!gpu.in_topology) {
        inventory.warnings.push_back(
            fmt::format("GPU {} ({}, NVML index {}) is not in the hwloc "
                        "topology ({}): trainrun cannot tell "
                        "which NUMA node it is attached to",
                        n.bus_id, n.name, n.index, topology.source));
      }
      inventory.gpus.push_back(std::move(gpu));
    }
    if (!nvml->problem.empty()) inventory.warnings.push_back("NVML: " + nvml->problem);
  } else {
    if (nvml != nullptr) {
      inventory.notes.push_back(nvml->available
                                    ? fmt::format("NVML ({}) reports no GPUs{}", nvml->library,
                                                  nvml->problem.empty() ? "" : ": " + nvml->problem)
                                    : fmt::format("NVML not used: {}", nvml->problem));
    }
    bool any_osdev = false;
    for (const PciGpu& pci : topology.gpus) {
      inventory.gpus.push_back(FromTopology(pci));
      any_osdev = any_osdev || !pci.os_devices.empty();
    }
    inventory.source = inventory.gpus.empty() ? "none"
                       : any_osdev            ? "hwloc GPU OS devices"
                                              : "PCI vendor and class";
  }
  Renumber(&inventory.gpus);

  // NVML inside a container already sees only the container's GPUs; otherwise
  // the toolkit's variable tells which of the host's GPUs (all visible in
  // sysfs) are.
  if (!from_nvml && options.nvidia_visible_devices) {
    std::optional<DeviceSelection> selection =
        SelectNvidiaVisibleDevices(*options.nvidia_visible_devices, Uuids(inventory.gpus));
    if (selection) {
      for (std::string& w : selection->warnings) inventory.warnings.push_back(std::move(w));
      std::vector<Gpu> kept;
      for (const Gpu& gpu : inventory.gpus) {
        if (std::find(selection->positions.begin(), selection->positions.end(), gpu.index) !=
            selection->positions.end()) {
          kept.push_back(gpu);
        }
      }
      if (kept.size() != inventory.gpus.size()) {
        inventory.notes.push_back(
            fmt::format("NVIDIA_VISIBLE_DEVICES={}: {} of {} GPU(s) are this container's",
                        *options.nvidia_visible_devices, kept.size(), inventory.gpus.size()));
      }
      inventory.gpus = std::move(kept);
      Renumber(&inventory.gpus);
    }
  }

  if (options.cuda_visible_devices) {
    DeviceSelection selection =
        SelectCudaVisibleDevices(*options.cuda_visible_devices, Uuids(inventory.gpus));
    for (std::string& w : selection.warnings) inventory.warnings.push_back(std::move(w));
    for (Gpu& gpu : inventory.gpus) {
      gpu.ours = std::find(selection.positions.begin(), selection.positions.end(), gpu.index) !=
                 selection.positions.end();
    }
    inventory.notes.push_back(fmt::format("CUDA_VISIBLE_DEVICES={}: {} of {} GPU(s) are this job's",
                                          *options.cuda_visible_devices, selection.positions.size(),
                                          inventory.gpus.size()));
  }
  return inventory;
}

}  // namespace trainrun::gpu
