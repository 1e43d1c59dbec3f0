// Counting the node's NVIDIA GPUs from sysfs, without NVML or CUDA. The default
// number of ranks per node is this count (1 when there are none).
#pragma once

#include <string>

namespace trainrun::gpu {

// NVIDIA PCI devices (vendor 0x10de) with a display or 3D controller class under
// `pci_root` (default /sys/bus/pci/devices).
int CountNvidiaGpus(const std::string& pci_root = "/sys/bus/pci/devices");

}  // namespace trainrun::gpu
