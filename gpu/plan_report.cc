#include "gpu/plan_report.h"

#include <algorithm>

#include <fmt/format.h>

#include "gpu/affinity.h"

namespace trainrun::gpu {
namespace {

using nlohmann::json;

// Left-aligned columns separated by two spaces; the last column is not padded.
class Table {
 public:
  explicit Table(std::vector<std::string> header) { rows_.push_back(std::move(header)); }
  void Add(std::vector<std::string> row) { rows_.push_back(std::move(row)); }
  std::string Render() const {
    std::vector<size_t> width;
    for (const auto& row : rows_) {
      if (width.size() < row.size()) width.resize(row.size(), 0);
      for (size_t i = 0; i < row.size(); ++i) width[i] = std::max(width[i], row[i].size());
    }
    std::string out;
    for (const auto& row : rows_) {
      std::string line;
      for (size_t i = 0; i < row.size(); ++i) {
        line += i + 1 < row.size() ? fmt::format("{:<{}}  ", row[i], width[i]) : row[i];
      }
      while (!line.empty() && line.back() == ' ') line.pop_back();
      out += line + "\n";
    }
    return out;
  }

 private:
  std::vector<std::vector<std::string>> rows_;
};

std::string Bytes(uint64_t bytes) {
  if (bytes == 0) return "-";
  const double gib = static_cast<double>(bytes) / (1024.0 * 1024 * 1024);
  if (gib >= 1) return fmt::format("{:.1f} GiB", gib);
  return fmt::format("{:.0f} MiB", static_cast<double>(bytes) / (1024.0 * 1024));
}

std::string OrDash(const std::string& s) { return s.empty() ? "-" : s; }

std::string NicNames(const RankBinding& rank, const NodeTopology& topology) {
  std::vector<std::string> names;
  for (int n : rank.nics) names.push_back(topology.nics[n].name);
  if (names.empty()) return "-";
  return fmt::format("{} ({})", fmt::join(names, ","), rank.nic_distance);
}

std::string GpuNumaNodes(const Gpu& gpu) {
  return gpu.in_topology ? OrDash(FormatIdList(gpu.place.numa_nodes)) : "?";
}

}  // namespace

std::string FormatTopology(const NodeTopology& topology, const GpuInventory& inventory) {
  std::string out = fmt::format("topology: {}\n", topology.source);
  for (const std::string& note : topology.notes) out += fmt::format("  {}\n", note);

  out += inventory.gpus.empty()
             ? std::string("\nGPUs: none found\n")
             : fmt::format("\nGPUs: {} found by {}\n", inventory.gpus.size(), inventory.source);
  if (!inventory.gpus.empty()) {
    Table gpus({"GPU", "NVML", "PCI bus id", "NUMA", "job's", "model", "UUID"});
    for (const Gpu& gpu : inventory.gpus) {
      gpus.Add({std::to_string(gpu.index),
                gpu.nvml_index < 0 ? "-" : std::to_string(gpu.nvml_index), gpu.bus_id,
                GpuNumaNodes(gpu), gpu.ours ? "yes" : "no", gpu.model, OrDash(gpu.uuid)});
    }
    out += gpus.Render();
  }

  out += fmt::format("\nNUMA nodes: {}, {} core(s), {} CPU(s)\n", topology.numa_nodes.size(),
                     topology.core_count, topology.cpus.size());
  Table numa({"NUMA", "memory", "cores", "CPUs"});
  for (const NumaNode& node : topology.numa_nodes) {
    numa.Add({std::to_string(node.os_index), Bytes(node.memory_bytes),
              std::to_string(node.cores.size()), OrDash(FormatIdList(node.cpus))});
  }
  out += numa.Render();

  out += fmt::format("\nnetwork devices: {}\n", topology.nics.size());
  if (!topology.nics.empty()) {
    Table nics({"NIC", "kind", "RDMA", "PCI bus id", "NUMA", "interfaces"});
    for (const Nic& nic : topology.nics) {
      nics.Add({nic.name, nic.kind, nic.rdma ? fmt::format("port {}", nic.port) : "no",
                nic.place.bus_id, OrDash(FormatIdList(nic.place.numa_nodes)),
                OrDash(fmt::format("{}", fmt::join(nic.interfaces, ",")))});
    }
    out += nics.Render();
  }
  for (const std::string& note : inventory.notes) out += fmt::format("note: {}\n", note);
  for (const std::string& warning : inventory.warnings)
    out += fmt::format("warning: {}\n", warning);
  return out;
}

std::string FormatPlan(const BindingPlan& plan, const NodeTopology& topology,
                       const GpuInventory& inventory) {
  std::string out = fmt::format("binding {}: {} rank(s), {}", BindingModeName(plan.mode),
                                plan.process_count, plan.process_count_source);
  if (plan.gpus_per_process > 1) out += fmt::format(", {} GPUs per rank", plan.gpus_per_process);
  out += "\n";
  if (plan.mode == BindingMode::kAuto) {
    Table ranks({"rank", "GPU", "PCI bus id", "NUMA", "cores", "CPUs", "memory", "NIC", "OMP"});
    bool any_shared = false;
    for (const RankBinding& rank : plan.ranks) {
      std::vector<std::string> bus_ids;
      for (int g : rank.gpus) bus_ids.push_back(inventory.gpus[g].bus_id);
      any_shared = any_shared || rank.shared_cores;
      ranks.Add(
          {std::to_string(rank.local_rank), OrDash(fmt::format("{}", fmt::join(rank.gpus, ","))),
           OrDash(fmt::format("{}", fmt::join(bus_ids, ","))),
           OrDash(FormatIdList(rank.numa_nodes)),
           rank.cpus.empty() ? "-" : fmt::format("{}{}", rank.cores, rank.shared_cores ? "*" : ""),
           OrDash(FormatIdList(rank.cpus)), OrDash(FormatIdList(rank.memory_nodes)),
           NicNames(rank, topology),
           rank.omp_threads > 0 ? std::to_string(rank.omp_threads) : "-"});
    }
    out += ranks.Render();
    if (any_shared) out += "* cores shared with other ranks\n";
  }
  for (const std::string& warning : plan.warnings) out += fmt::format("warning: {}\n", warning);
  for (const std::string& note : plan.notes) out += fmt::format("note: {}\n", note);
  return out;
}

json BindingJson(const NodeTopology& topology, const GpuInventory& inventory,
                 const BindingPlan& plan, const BindingEnvOptions& env_options) {
  json numa = json::array();
  for (const NumaNode& node : topology.numa_nodes) {
    numa.push_back({{"node", node.os_index},
                    {"memoryBytes", node.memory_bytes},
                    {"cores", node.cores.size()},
                    {"cpus", FormatIdList(node.cpus)}});
  }
  json nics = json::array();
  for (const Nic& nic : topology.nics) {
    nics.push_back({{"name", nic.name},
                    {"kind", nic.kind},
                    {"rdma", nic.rdma},
                    {"port", nic.port},
                    {"busId", nic.place.bus_id},
                    {"numaNodes", nic.place.numa_nodes},
                    {"interfaces", nic.interfaces}});
  }
  json gpus = json::array();
  for (const Gpu& gpu : inventory.gpus) {
    json entry = {{"index", gpu.index},
                  {"busId", gpu.bus_id},
                  {"model", gpu.model},
                  {"uuid", gpu.uuid},
                  {"numaNodes", gpu.in_topology ? json(gpu.place.numa_nodes) : json(nullptr)},
                  {"selected", gpu.ours}};
    entry["nvmlIndex"] = gpu.nvml_index < 0 ? json(nullptr) : json(gpu.nvml_index);
    gpus.push_back(std::move(entry));
  }
  json ranks = json::array();
  for (const RankBinding& rank : plan.ranks) {
    json env = json::object();
    for (const auto& [name, value] :
         BindingEnvironment(plan, rank, topology, inventory, env_options)) {
      env[name] = value;
    }
    std::vector<std::string> bus_ids, nic_names;
    for (int g : rank.gpus) bus_ids.push_back(inventory.gpus[g].bus_id);
    for (int n : rank.nics) nic_names.push_back(topology.nics[n].name);
    ranks.push_back({{"localRank", rank.local_rank},
                     {"gpus", rank.gpus},
                     {"gpuBusIds", bus_ids},
                     {"numaNodes", rank.numa_nodes},
                     {"cpus", FormatIdList(rank.cpus)},
                     {"cpuList", rank.cpus},
                     {"cores", rank.cores},
                     {"sharedCores", rank.shared_cores},
                     {"memoryNodes", rank.memory_nodes},
                     {"nics", nic_names},
                     {"nicDistance", rank.nic_distance},
                     {"environment", env}});
  }
  return {{"topology",
           {{"source", topology.source},
            {"thisMachine", topology.this_machine},
            {"cores", topology.core_count},
            {"cpus", FormatIdList(topology.cpus)},
            {"numaNodes", numa},
            {"nics", nics},
            {"notes", topology.notes}}},
          {"gpus",
           {{"source", inventory.source},
            {"devices", gpus},
            {"notes", inventory.notes},
            {"warnings", inventory.warnings}}},
          {"plan",
           {{"binding", BindingModeName(plan.mode)},
            {"processCount", plan.process_count},
            {"processCountSource", plan.process_count_source},
            {"gpusPerProcess", plan.gpus_per_process},
            {"ranks", ranks},
            {"notes", plan.notes},
            {"warnings", plan.warnings}}}};
}

}  // namespace trainrun::gpu
