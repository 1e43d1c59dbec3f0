// NVML, loaded at run time with dlopen, for each GPU's index, PCI bus id, UUID
// and name. trainrun has no build or link dependency on the NVIDIA driver: on a
// machine without it (or in a container without the driver's libraries) the
// library is simply absent and discovery falls back to hwloc.
#pragma once

#include <string>
#include <vector>

namespace trainrun::gpu {

// The driver's library, as the NVIDIA container toolkit mounts it.
constexpr const char* kDefaultNvmlLibrary = "libnvidia-ml.so.1";

struct NvmlGpu {
  int index = 0;       // NVML's index (the order nvidia-smi shows)
  std::string bus_id;  // normalised like hwloc's: "0000:34:00.0", lower-case
  std::string uuid;    // "GPU-..."
  std::string name;    // "Tesla V100-SXM3-32GB-H"
};

struct NvmlReport {
  bool available = false;  // the library loaded and nvmlInit succeeded
  std::string library;     // what was dlopen'ed
  // Why NVML was not used ("libnvidia-ml.so.1: cannot open shared object
  // file"), or a problem with one device; never fatal.
  std::string problem;
  std::vector<NvmlGpu> gpus;  // in NVML's index order
};

// Loads `library` (a file name searched like dlopen does, or a path),
// initialises NVML, lists the GPUs and shuts NVML down and unloads the library
// again. Never fails: what went wrong is in `problem`. Not thread-safe against
// other NVML users in the process (trainrun has none).
NvmlReport QueryNvml(const std::string& library = kDefaultNvmlLibrary);

// "00000000:34:00.0" (NVML) or "0000:34:00.0" (hwloc) -> "0000:34:00.0";
// returns "" when `bus_id` is not a PCI address.
std::string NormalizeBusId(const std::string& bus_id);

}  // namespace trainrun::gpu
