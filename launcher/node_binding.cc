#include "launcher/node_binding.h"

#include <unistd.h>

#include <algorithm>
#include <map>

#include <fmt/format.h>

#include "gpu/affinity.h"
#include "gpu/plan_report.h"
#include "gpu/topology_cache.h"
#include "runtime/process/rank_env.h"

namespace trainrun {
namespace {

constexpr const char* kCudaVisibleDevices = "CUDA_VISIBLE_DEVICES";
constexpr const char* kNvidiaVisibleDevices = "NVIDIA_VISIBLE_DEVICES";
constexpr const char* kCudaDeviceOrder = "CUDA_DEVICE_ORDER";

template <typename Map>
std::optional<std::string> Lookup(const Map& map, const std::string& name) {
  auto it = map.find(name);
  if (it == map.end()) return std::nullopt;
  return it->second;
}

// Memory binding where the kernel or a seccomp filter refuses it would make
// every rank fail to start; bind CPUs only and say why.
void DropMemoryBindingIfRefused(NodeBinding* binding) {
  const bool wanted =
      std::any_of(binding->plan.ranks.begin(), binding->plan.ranks.end(),
                  [](const gpu::RankBinding& r) { return !r.memory_nodes.empty(); });
  if (!wanted) return;
  Status permitted = gpu::CheckMemoryPolicyPermitted();
  if (permitted.ok()) return;
  for (gpu::RankBinding& rank : binding->plan.ranks) rank.memory_nodes.clear();
  int nodes_with_cpus = 0;
  for (const gpu::NumaNode& node : binding->topology.numa_nodes)
    nodes_with_cpus += node.cores.empty() ? 0 : 1;
  std::string message = fmt::format(
      "ranks' memory is not bound to their NUMA nodes: {} (a container's "
      "default seccomp profile "
      "allows NUMA memory policies only with CAP_SYS_NICE: docker run "
      "--cap-add SYS_NICE)",
      permitted.message());
  // With one NUMA node there is nothing to lose.
  if (nodes_with_cpus > 1) {
    binding->plan.warnings.push_back(message);
  } else {
    binding->plan.notes.push_back(message);
  }
}

}  // namespace

Result<NodeBinding> PlanNodeBinding(const NodeBindingRequest& request) {
  NodeBinding binding;
  const std::map<std::string, std::string> env = EnvironmentMap(request.environment);
  const std::map<std::string, std::string> job_env(request.job_environment.begin(),
                                                   request.job_environment.end());

  // Another machine's XML is planned without this machine's NVML, unless a
  // library is named explicitly.
  gpu::DiscoveryOptions discovery;
  std::optional<std::string> nvml_library = Lookup(env, kNvmlLibraryVariable);
  if (nvml_library && !nvml_library->empty()) discovery.nvml_library = *nvml_library;
  // The job file's CUDA_VISIBLE_DEVICES is the user's choice of GPUs; else the
  // one the container runtime or the scheduler set.
  discovery.cuda_visible_devices = Lookup(job_env, kCudaVisibleDevices);
  const bool cuda_visible_from_container =
      !discovery.cuda_visible_devices.has_value() && Lookup(env, kCudaVisibleDevices).has_value();
  if (cuda_visible_from_container)
    discovery.cuda_visible_devices = Lookup(env, kCudaVisibleDevices);
  discovery.nvidia_visible_devices = Lookup(job_env, kNvidiaVisibleDevices);
  if (!discovery.nvidia_visible_devices)
    discovery.nvidia_visible_devices = Lookup(env, kNvidiaVisibleDevices);

  if (request.topology_xml.empty()) {
    // This machine: through the per-boot cache (topology and NVML's GPU list).
    // A library named by TRAINRUN_NVML_LIBRARY (a test's fake, a driver being tried)
    // may answer differently from run to run: its answer is never cached.
    gpu::TopologyCacheOptions cache;
    cache.dir = nvml_library ? std::string()
                             : gpu::TopologyCacheDir(Lookup(env, gpu::kTopologyCacheVariable),
                                                     Lookup(env, "XDG_RUNTIME_DIR"), geteuid());
    cache.nvml_library = discovery.nvml_library;
    cache.cuda_visible_devices = discovery.cuda_visible_devices;
    cache.nvidia_visible_devices = discovery.nvidia_visible_devices;
    Result<gpu::CachedTopology> cached = gpu::LoadThisMachineCached(cache);
    if (cached.ok()) {
      binding.topology = std::move(cached->topology);
      binding.notes.push_back(cached->note);
      binding.inventory =
          gpu::CombineGpus(binding.topology, cached->nvml ? &*cached->nvml : nullptr, discovery);
    } else {
      binding.warnings.push_back(fmt::format("{}; ranks are not bound", cached.status().message()));
      binding.topology.source = "this machine (unreadable)";
      binding.topology.this_machine = true;
      binding.inventory = gpu::DiscoverGpus(binding.topology, discovery);
    }
  } else {
    Result<gpu::NodeTopology> topology =
        gpu::LoadTopology({gpu::TopologyKind::kXmlFile, request.topology_xml});
    // A flag value that does not work is a usage error, whatever the OS said.
    if (!topology.ok()) {
      return InvalidArgumentError(fmt::format("--topology-xml: {}", topology.status().message()));
    }
    binding.topology = std::move(topology).value();
    discovery.use_nvml = nvml_library.has_value();
    binding.inventory = gpu::DiscoverGpus(binding.topology, discovery);
  }

  gpu::PlanOptions plan_options;
  plan_options.mode = request.mode;
  plan_options.process_count = request.process_count;
  plan_options.gpus_per_process = request.gpus_per_process;
  binding.plan = gpu::PlanBinding(binding.topology, binding.inventory, plan_options);

  if (binding.topology.this_machine) DropMemoryBindingIfRefused(&binding);

  const bool gpus_assigned = std::any_of(binding.plan.ranks.begin(), binding.plan.ranks.end(),
                                         [](const gpu::RankBinding& r) { return !r.gpus.empty(); });
  if (gpus_assigned && cuda_visible_from_container) {
    binding.consumed_variables.push_back(kCudaVisibleDevices);
    binding.notes.push_back(
        fmt::format("{}={} from the environment names this job's GPUs; each "
                    "rank gets its own of them",
                    kCudaVisibleDevices, *discovery.cuda_visible_devices));
  }
  // CUDA numbers GPUs in PCI order only with CUDA_DEVICE_ORDER=PCI_BUS_ID
  // (which trainrun sets unless the user chose otherwise); else name them by
  // UUID.
  std::optional<std::string> order = Lookup(job_env, kCudaDeviceOrder);
  if (!order) order = Lookup(env, kCudaDeviceOrder);
  if (gpus_assigned && order && *order != "PCI_BUS_ID") {
    binding.env_options.gpus_by_uuid = true;
    const bool all_uuids = std::all_of(binding.inventory.gpus.begin(), binding.inventory.gpus.end(),
                                       [](const gpu::Gpu& g) { return !g.uuid.empty(); });
    binding.warnings.push_back(fmt::format(
        "{}={}: CUDA does not number GPUs in PCI order, so {}", kCudaDeviceOrder, *order,
        all_uuids ? "each rank's CUDA_VISIBLE_DEVICES names its GPU(s) by UUID"
                  : "CUDA_VISIBLE_DEVICES may select other GPUs than planned "
                    "(their UUIDs are unknown)"));
  }

  return binding;
}

std::vector<std::string> NodeBinding::AllNotes() const {
  std::vector<std::string> all = notes;
  all.insert(all.end(), topology.notes.begin(), topology.notes.end());
  all.push_back(inventory.gpus.empty()
                    ? std::string("GPUs: none found")
                    : fmt::format("GPUs: {} found by {}", inventory.gpus.size(), inventory.source));
  all.insert(all.end(), inventory.notes.begin(), inventory.notes.end());
  all.insert(all.end(), plan.notes.begin(), plan.notes.end());
  return all;
}

std::vector<std::string> NodeBinding::AllWarnings() const {
  std::vector<std::string> all = warnings;
  all.insert(all.end(), inventory.warnings.begin(), inventory.warnings.end());
  all.insert(all.end(), plan.warnings.begin(), plan.warnings.end());
  return all;
}

std::vector<std::pair<std::string, std::string>> NodeBinding::RankEnvironment(
    int local_rank) const {
  return gpu::BindingEnvironment(plan, plan.ranks.at(local_rank), topology, inventory, env_options);
}

std::vector<std::string> NodeBinding::ContainerEnvironment(
    const std::vector<std::string>& environment) const {
  std::vector<std::string> kept;
  for (const std::string& entry : environment) {
    std::string name = entry.substr(0, entry.find('='));
    if (std::find(consumed_variables.begin(), consumed_variables.end(), name) ==
        consumed_variables.end()) {
      kept.push_back(entry);
    }
  }
  return kept;
}

std::string NodeBinding::Table() const {
  return gpu::FormatTopology(topology, inventory) + "\n" +
         gpu::FormatPlan(plan, topology, inventory);
}

nlohmann::json NodeBinding::Json() const {
  nlohmann::json j = gpu::BindingJson(topology, inventory, plan, env_options);
  j["notes"] = notes;
  j["warnings"] = warnings;
  return j;
}

Status CheckBindingFitsThisMachine(const NodeBinding& binding, const std::string& topology_xml) {
  std::vector<int> cpus, nodes;
  for (const gpu::RankBinding& rank : binding.plan.ranks) {
    cpus.insert(cpus.end(), rank.cpus.begin(), rank.cpus.end());
    nodes.insert(nodes.end(), rank.memory_nodes.begin(), rank.memory_nodes.end());
  }
  const std::string what = topology_xml.empty() ? binding.topology.source
                                                : fmt::format("--topology-xml {}", topology_xml);
  Result<std::vector<int>> allowed_cpus = gpu::ThisProcessCpus();
  if (allowed_cpus.ok()) {
    std::vector<int> missing = gpu::Missing(cpus, *allowed_cpus);
    if (!missing.empty()) {
      return InvalidArgumentError(
          fmt::format("{}: the plan binds ranks to CPUs {} but this process may run only "
                      "on CPUs {}: the topology "
                      "describes another machine (use it with --dry-run or `trainrun "
                      "topology`, or set binding "
                      "\"none\")",
                      what, gpu::FormatIdList(missing), gpu::FormatIdList(*allowed_cpus)));
    }
  }
  Result<std::vector<int>> allowed_nodes = gpu::ThisProcessMemoryNodes();
  if (allowed_nodes.ok()) {
    std::vector<int> missing = gpu::Missing(nodes, *allowed_nodes);
    if (!missing.empty()) {
      return InvalidArgumentError(
          fmt::format("{}: the plan binds memory to NUMA node(s) {} but this process may "
                      "use only {}: the topology "
                      "describes another machine (use it with --dry-run or `trainrun "
                      "topology`, or set binding "
                      "\"none\")",
                      what, gpu::FormatIdList(missing), gpu::FormatIdList(*allowed_nodes)));
    }
  }
  return Status::Ok();
}

}  // namespace trainrun
