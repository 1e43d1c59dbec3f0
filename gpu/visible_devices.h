// Which GPUs are this job's, when the container runtime or the scheduler
// already said so: CUDA_VISIBLE_DEVICES (Slurm, a user, another launcher) and
// NVIDIA_VISIBLE_DEVICES (the NVIDIA container toolkit, Kubernetes' device
// plugin).
//
// Both hold comma-separated indices or UUIDs. trainrun plans only with the GPUs
// they name, and each rank's own CUDA_VISIBLE_DEVICES is then a subset of them.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace trainrun::gpu {

struct DeviceSelection {
  // Positions in the candidate list, in the order the variable names them,
  // without duplicates. Empty: no GPUs.
  std::vector<int> positions;
  std::vector<std::string> warnings;  // entries that name nothing, MIG instances...
};

// Reads CUDA_VISIBLE_DEVICES as CUDA does: an index is a position in `uuids`
// (the GPUs CUDA can see, in PCI bus id order, as CUDA_DEVICE_ORDER=PCI_BUS_ID
// numbers them); "GPU-..." is a UUID or a unique prefix of one. Like CUDA, the
// first entry that names no GPU ends the list ("", "-1" and Slurm's
// "NoDevFiles" select none). `uuids[i]` may be empty when the UUID is unknown.
DeviceSelection SelectCudaVisibleDevices(std::string_view value,
                                         const std::vector<std::string>& uuids);

// Reads NVIDIA_VISIBLE_DEVICES as the container toolkit does: "all" selects
// every GPU, "none" none, indices are the host's NVML indices (positions in
// `uuids`, the host's GPUs in PCI order) and "GPU-..." UUIDs. Returns nothing
// for "void" or "", which leave the GPUs as they are.
std::optional<DeviceSelection> SelectNvidiaVisibleDevices(std::string_view value,
                                                          const std::vector<std::string>& uuids);

}  // namespace trainrun::gpu
