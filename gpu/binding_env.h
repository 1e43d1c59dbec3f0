// The environment variables a rank gets from its binding:
//
// clang-format off
//   CUDA_VISIBLE_DEVICES  its GPU(s), by CUDA's PCI-order index ("0", "2,3"); by
//                         UUID when CUDA would number the GPUs differently
//   OMP_NUM_THREADS       its core count
//   NCCL_IB_HCA           its nearest RDMA device(s), exact match: "=mlx5_0:1"
//   UCX_NET_DEVICES       the same for UCX (Open MPI, UCX-based NCCL plugins): "mlx5_0:1"
// clang-format on
//
// They are defaults: a value the user set in the job file or the container wins
// (rank_env.h merges them), except that a CUDA_VISIBLE_DEVICES set by the container
// runtime or the scheduler is the pool each rank's own subset comes from.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "gpu/binding_plan.h"

namespace trainrun::gpu {

struct BindingEnvOptions {
  // Name GPUs by UUID in CUDA_VISIBLE_DEVICES (when CUDA_DEVICE_ORDER is not
  // PCI_BUS_ID, CUDA's indices differ from the plan's). GPUs without a known
  // UUID keep their index.
  bool gpus_by_uuid = false;
};

// The variables for `rank`, as (name, value) pairs in a fixed order. Empty for
// binding "none".
std::vector<std::pair<std::string, std::string>> BindingEnvironment(
    const BindingPlan& plan, const RankBinding& rank, const NodeTopology& topology,
    const GpuInventory& inventory, const BindingEnvOptions& options = {});

}  // namespace trainrun::gpu
