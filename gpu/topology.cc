#include "gpu/topology.h"

#include <hwloc.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <memory>

#include <fmt/format.h>

#include "gpu/affinity.h"

namespace trainrun::gpu {
namespace {

constexpr uint16_t kNvidiaVendorId = 0x10de;

struct TopologyDeleter {
  void operator()(hwloc_topology* t) const { hwloc_topology_destroy(t); }
};
using TopologyPtr = std::unique_ptr<hwloc_topology, TopologyDeleter>;

struct BitmapDeleter {
  void operator()(hwloc_bitmap_s* b) const { hwloc_bitmap_free(b); }
};
using BitmapPtr = std::unique_ptr<hwloc_bitmap_s, BitmapDeleter>;

std::vector<int> BitmapIds(hwloc_const_bitmap_t bitmap) {
  std::vector<int> ids;
  if (bitmap == nullptr || hwloc_bitmap_iszero(bitmap)) return ids;
  if (hwloc_bitmap_weight(bitmap) < 0) return ids;  // infinite
  int id;
  hwloc_bitmap_foreach_begin(id, bitmap) { ids.push_back(id); }
  hwloc_bitmap_foreach_end();
  return ids;
}

std::string Info(hwloc_obj_t obj, const char* name) {
  const char* value = hwloc_obj_get_info_by_name(obj, name);
  return value == nullptr ? "" : value;
}

std::string BusId(hwloc_obj_t pci) {
  const hwloc_obj_attr_u::hwloc_pcidev_attr_s& a = pci->attr->pcidev;
  return fmt::format("{:04x}:{:02x}:{:02x}.{:x}", a.domain, a.bus, a.dev, a.func);
}

PciPlace PlaceOf(hwloc_topology_t topology, hwloc_obj_t pci) {
  PciPlace place;
  place.bus_id = BusId(pci);
  for (hwloc_obj_t up = pci->parent; up != nullptr && up->type == HWLOC_OBJ_BRIDGE;
       up = up->parent) {
    if (up->attr->bridge.upstream_type == HWLOC_OBJ_BRIDGE_HOST) {
      place.host_bridge = up->gp_index;
    } else {
      place.bridges.insert(place.bridges.begin(), up->gp_index);
    }
  }
  hwloc_obj_t local = hwloc_get_non_io_ancestor_obj(topology, pci);
  if (local != nullptr) place.numa_nodes = BitmapIds(local->nodeset);
  return place;
}

bool IsNvidiaGpuOsDevice(hwloc_obj_t osdev) {
  hwloc_obj_osdev_type_e type = osdev->attr->osdev.type;
  if (type != HWLOC_OBJ_OSDEV_GPU && type != HWLOC_OBJ_OSDEV_COPROC) return false;
  std::string backend = Info(osdev, "Backend");
  std::string vendor = Info(osdev, "GPUVendor");
  return backend == "NVML" || backend == "CUDA" || vendor.find("NVIDIA") != std::string::npos ||
         (osdev->name != nullptr && (std::string_view(osdev->name).starts_with("nvml") ||
                                     std::string_view(osdev->name).starts_with("cuda")));
}

std::string NicKind(uint16_t class_id) {
  switch (class_id) {
    case 0x0200: return "Ethernet";
    case 0x0207: return "InfiniBand";
    case 0x0c06: return "InfiniBand";
    default: return "Network";
  }
}

// The first port whose state is 4 (ACTIVE), from hwloc's "Port<N>State" infos.
int ActivePort(hwloc_obj_t osdev) {
  for (unsigned i = 0; i < osdev->infos_count; ++i) {
    std::string_view name = osdev->infos[i].name;
    if (name.starts_with("Port") && name.ends_with("State") &&
        std::string_view(osdev->infos[i].value) == "4") {
      std::string_view number = name.substr(4, name.size() - 9);
      int port = 0;
      for (char c : number) {
        if (c < '0' || c > '9') return 1;
        port = port * 10 + (c - '0');
      }
      return port > 0 ? port : 1;
    }
  }
  return 1;
}

void ReadPciDevices(hwloc_topology_t topology, NodeTopology* out) {
  for (hwloc_obj_t pci = hwloc_get_next_pcidev(topology, nullptr); pci != nullptr;
       pci = hwloc_get_next_pcidev(topology, pci)) {
    const hwloc_obj_attr_u::hwloc_pcidev_attr_s& attr = pci->attr->pcidev;
    std::vector<hwloc_obj_t> gpu_osdevs, rdma_osdevs;
    std::vector<std::string> interfaces;
    for (hwloc_obj_t child = pci->io_first_child; child != nullptr; child = child->next_sibling) {
      if (child->type != HWLOC_OBJ_OS_DEVICE) continue;
      if (IsNvidiaGpuOsDevice(child)) gpu_osdevs.push_back(child);
      if (child->attr->osdev.type == HWLOC_OBJ_OSDEV_OPENFABRICS) rdma_osdevs.push_back(child);
      if (child->attr->osdev.type == HWLOC_OBJ_OSDEV_NETWORK && child->name != nullptr) {
        interfaces.push_back(child->name);
      }
    }
    // An NVIDIA GPU: hwloc gave it a GPU OS device, or it has NVIDIA's vendor
    // id and a display (VGA 0x0300) or 3D controller (0x0302) class.
    const bool nvidia_display =
        attr.vendor_id == kNvidiaVendorId && (attr.class_id == 0x0300 || attr.class_id == 0x0302);
    if (!gpu_osdevs.empty() || nvidia_display) {
      PciGpu gpu;
      gpu.place = PlaceOf(topology, pci);
      gpu.device_id = attr.device_id;
      gpu.class_id = attr.class_id;
      gpu.model = Info(pci, "PCIDevice");
      for (hwloc_obj_t osdev : gpu_osdevs) {
        if (osdev->name != nullptr) gpu.os_devices.push_back(osdev->name);
        if (std::string model = Info(osdev, "GPUModel"); !model.empty()) gpu.model = model;
        if (std::string uuid = Info(osdev, "NVIDIAUUID"); !uuid.empty()) gpu.uuid = uuid;
      }
      out->gpus.push_back(std::move(gpu));
    }
    const uint16_t base_class = attr.class_id >> 8;
    const bool network_class = base_class == 0x02 || attr.class_id == 0x0c06;
    for (hwloc_obj_t osdev : rdma_osdevs) {
      Nic nic;
      nic.name = osdev->name != nullptr ? osdev->name : BusId(pci);
      nic.rdma = true;
      nic.port = ActivePort(osdev);
      nic.kind = NicKind(attr.class_id);
      nic.interfaces = interfaces;
      nic.place = PlaceOf(topology, pci);
      out->nics.push_back(std::move(nic));
    }
    if (rdma_osdevs.empty() && network_class && !interfaces.empty()) {
      Nic nic;
      nic.name = interfaces.front();
      nic.kind = NicKind(attr.class_id);
      nic.interfaces = interfaces;
      nic.place = PlaceOf(topology, pci);
      out->nics.push_back(std::move(nic));
    }
  }
  auto by_bus = [](const auto& a, const auto& b) { return a.place.bus_id < b.place.bus_id; };
  std::stable_sort(out->gpus.begin(), out->gpus.end(), by_bus);
  std::stable_sort(out->nics.begin(), out->nics.end(), [](const Nic& a, const Nic& b) {
    return a.place.bus_id != b.place.bus_id ? a.place.bus_id < b.place.bus_id : a.name < b.name;
  });
}

void ReadCpusAndMemory(hwloc_topology_t topology, NodeTopology* out) {
  std::vector<hwloc_obj_t> numa_objs;
  for (hwloc_obj_t numa = hwloc_get_next_obj_by_type(topology, HWLOC_OBJ_NUMANODE, nullptr);
       numa != nullptr; numa = hwloc_get_next_obj_by_type(topology, HWLOC_OBJ_NUMANODE, numa)) {
    NumaNode node;
    node.os_index = static_cast<int>(numa->os_index);
    node.memory_bytes = numa->attr->numanode.local_memory;
    node.cpus = BitmapIds(numa->cpuset);
    out->numa_nodes.push_back(std::move(node));
    numa_objs.push_back(numa);
  }
  out->cpus = BitmapIds(hwloc_topology_get_topology_cpuset(topology));

  // Whole cores; a topology without Core objects (some synthetic ones) has one
  // core per PU.
  hwloc_obj_type_t core_type =
      hwloc_get_nbobjs_by_type(topology, HWLOC_OBJ_CORE) > 0 ? HWLOC_OBJ_CORE : HWLOC_OBJ_PU;
  for (hwloc_obj_t core = hwloc_get_next_obj_by_type(topology, core_type, nullptr); core != nullptr;
       core = hwloc_get_next_obj_by_type(topology, core_type, core)) {
    Core c;
    c.cpus = BitmapIds(core->cpuset);
    if (c.cpus.empty()) continue;
    ++out->core_count;
    // The first NUMA node that holds the whole core (a memory-only node with
    // the same CPUs, like KNL's MCDRAM, gets none), else the first that holds
    // any of it.
    size_t chosen = numa_objs.size();
    for (size_t i = 0; i < numa_objs.size() && chosen == numa_objs.size(); ++i) {
      if (hwloc_bitmap_isincluded(core->cpuset, numa_objs[i]->cpuset)) chosen = i;
    }
    for (size_t i = 0; i < numa_objs.size() && chosen == numa_objs.size(); ++i) {
      if (hwloc_bitmap_intersects(core->cpuset, numa_objs[i]->cpuset)) chosen = i;
    }
    if (chosen < numa_objs.size()) out->numa_nodes[chosen].cores.push_back(std::move(c));
  }
  std::sort(out->numa_nodes.begin(), out->numa_nodes.end(),
            [](const NumaNode& a, const NumaNode& b) { return a.os_index < b.os_index; });
}

// For this machine: plan only within the CPUs we may run on. hwloc already
// leaves out what the cgroup forbids; taskset or a scheduler's affinity is
// narrower.
void RestrictToAffinity(hwloc_topology_t topology, NodeTopology* out) {
  Result<std::vector<int>> cpus = ThisProcessCpus();
  if (!cpus.ok() || cpus->empty()) return;
  BitmapPtr set(hwloc_bitmap_alloc());
  for (int cpu : *cpus) hwloc_bitmap_set(set.get(), static_cast<unsigned>(cpu));
  hwloc_const_cpuset_t all = hwloc_topology_get_topology_cpuset(topology);
  if (hwloc_bitmap_isincluded(all, set.get())) return;
  if (!hwloc_bitmap_intersects(all, set.get())) return;
  if (hwloc_topology_restrict(topology, set.get(), HWLOC_RESTRICT_FLAG_ADAPT_IO) == 0) {
    out->notes.push_back(
        fmt::format("planned within this process's CPU affinity {}", FormatIdList(*cpus)));
  }
}

}  // namespace

Result<NodeTopology> LoadTopology(const TopologySource& source, std::string* xml) {
  hwloc_topology_t raw = nullptr;
  if (hwloc_topology_init(&raw) != 0) return InternalError("hwloc_topology_init failed");
  TopologyPtr topology(raw);
  hwloc_topology_set_io_types_filter(raw, HWLOC_TYPE_FILTER_KEEP_IMPORTANT);

  NodeTopology out;
  switch (source.kind) {
    case TopologyKind::kThisMachine:
      out.source = "this machine";
      out.this_machine = true;
      break;
    case TopologyKind::kXmlFile: {
      out.source = fmt::format("XML file {}", source.value);
      struct stat st {};
      if (stat(source.value.c_str(), &st) != 0) {
        return ErrnoStatus(errno, fmt::format("hwloc topology {}", source.value));
      }
      if (!S_ISREG(st.st_mode)) {
        return InvalidArgumentError(fmt::format("hwloc topology {}: not a file", source.value));
      }
      if (hwloc_topology_set_xml(raw, source.value.c_str()) != 0) {
        return InvalidArgumentError(
            fmt::format("hwloc topology {}: not an hwloc XML file", source.value));
      }
      break;
    }
    case TopologyKind::kSynthetic:
      out.source = fmt::format("synthetic \"{}\"", source.value);
      if (hwloc_topology_set_synthetic(raw, source.value.c_str()) != 0) {
        return InvalidArgumentError(
            fmt::format("synthetic topology \"{}\": hwloc cannot read it", source.value));
      }
      break;
  }
  if (hwloc_topology_load(raw) != 0) {
    if (source.kind == TopologyKind::kThisMachine) {
      return ErrnoStatus(errno, "hwloc could not read this machine's topology");
    }
    return InvalidArgumentError(
        fmt::format("{}: hwloc cannot load it (not a valid topology?)", out.source));
  }
  if (source.kind == TopologyKind::kThisMachine) RestrictToAffinity(raw, &out);
  if (xml != nullptr) {
    char* buffer = nullptr;
    int length = 0;
    if (hwloc_topology_export_xmlbuffer(raw, &buffer, &length, 0) != 0) {
      return InternalError(fmt::format("{}: hwloc could not export it as XML", out.source));
    }
    // The length counts the terminating NUL.
    xml->assign(buffer, length > 0 ? static_cast<size_t>(length - 1) : 0);
    hwloc_free_xmlbuffer(raw, buffer);
  }
  ReadCpusAndMemory(raw, &out);
  ReadPciDevices(raw, &out);
  if (out.cpus.empty()) {
    return InvalidArgumentError(fmt::format("{}: the topology has no CPUs", out.source));
  }
  return out;
}

int NumaNodeOfCpu(const NodeTopology& topology, int cpu) {
  for (const NumaNode& node : topology.numa_nodes) {
    if (std::binary_search(node.cpus.begin(), node.cpus.end(), cpu)) return node.os_index;
  }
  return -1;
}

}  // namespace trainrun::gpu
