#include "gpu/binding_env.h"

#include <fmt/format.h>

namespace trainrun::gpu {

std::vector<std::pair<std::string, std::string>> BindingEnvironment(
    const BindingPlan& plan, const RankBinding& rank, const NodeTopology& topology,
    const GpuInventory& inventory, const BindingEnvOptions& options) {
  std::vector<std::pair<std::string, std::string>> vars;
  if (plan.mode == BindingMode::kNone) return vars;
  if (!rank.gpus.empty()) {
    std::vector<std::string> names;
    for (int g : rank.gpus) {
      const Gpu& gpu = inventory.gpus[g];
      names.push_back(options.gpus_by_uuid && !gpu.uuid.empty() ? gpu.uuid
                                                                : std::to_string(gpu.index));
    }
    vars.emplace_back("CUDA_VISIBLE_DEVICES", fmt::format("{}", fmt::join(names, ",")));
  }
  if (rank.omp_threads > 0) vars.emplace_back("OMP_NUM_THREADS", std::to_string(rank.omp_threads));
  std::vector<std::string> hcas;
  for (int n : rank.nics) {
    const Nic& nic = topology.nics[n];
    if (nic.rdma) hcas.push_back(fmt::format("{}:{}", nic.name, nic.port));
  }
  if (!hcas.empty()) {
    // "=" makes NCCL match the names exactly: "mlx5_1" alone would also pick
    // mlx5_10.
    vars.emplace_back("NCCL_IB_HCA", fmt::format("={}", fmt::join(hcas, ",")));
    vars.emplace_back("UCX_NET_DEVICES", fmt::format("{}", fmt::join(hcas, ",")));
  }
  return vars;
}

}  // namespace trainrun::gpu
