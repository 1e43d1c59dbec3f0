// The per-boot topology cache: this machine's hwloc topology (as XML) and NVML's GPU
// list, saved on the first run after boot and reused by every later run on the node,
// so a run neither re-reads /sys nor initialises NVML again (seconds on large nodes
// without persistence mode).
//
// Layout: <dir>/<boot id>/topology-<key>.xml and gpus-<key>.json, where <key> hashes
// what changes the answer: CUDA_VISIBLE_DEVICES, NVIDIA_VISIBLE_DEVICES, the set of
// /dev/nvidia* devices, this process's CPU affinity, the NVML library, and the cache's
// format. Another boot id (a reboot) or another key is a miss; directories of other
// boots are removed when a new entry is written. Files are written atomically
// (rename), so concurrent runs on a node at worst both write the same entry.
//
// README "Install" (lean start) documents it; an --topology-xml run never uses it.
#pragma once

#include <optional>
#include <string>

#include "base/status.h"
#include "gpu/nvml_loader.h"
#include "gpu/topology.h"

namespace trainrun::gpu {

// Where the cache lives unless TRAINRUN_TOPOLOGY_CACHE says otherwise (root only; other
// users use $XDG_RUNTIME_DIR/trainrun when set, else no cache).
inline constexpr const char* kDefaultTopologyCacheDir = "/run/trainrun";
inline constexpr const char* kTopologyCacheVariable = "TRAINRUN_TOPOLOGY_CACHE";
inline constexpr const char* kBootIdFile = "/proc/sys/kernel/random/boot_id";

struct TopologyCacheOptions {
  std::string dir;  // the cache's root; empty: no cache (read this machine every time)
  std::string boot_id_file = kBootIdFile;
  std::string dev_dir = "/dev";  // where /dev/nvidia* are looked for
  // Ask NVML for the GPU list (dlopen `nvml_library`), as DiscoveryOptions says.
  bool use_nvml = true;
  std::string nvml_library = kDefaultNvmlLibrary;
  std::optional<std::string> cuda_visible_devices;
  std::optional<std::string> nvidia_visible_devices;
};

struct CachedTopology {
  NodeTopology topology;           // this machine's (this_machine is true)
  std::optional<NvmlReport> nvml;  // NVML's answer, when options.use_nvml
  // What the cache did, for the system log: "... from the per-boot cache F", "... saved
  // to the per-boot cache F", or why no cache was used.
  std::string note;
  bool from_cache = false;
};

// The cache's root for a process with `euid` and these environment values:
// TRAINRUN_TOPOLOGY_CACHE (a directory, or "off"), else /run/trainrun for root, else
// $XDG_RUNTIME_DIR/trainrun, else "" (no cache).
std::string TopologyCacheDir(const std::optional<std::string>& variable,
                             const std::optional<std::string>& xdg_runtime_dir, unsigned euid);

// This machine's topology and GPU list, from the cache when it holds an entry for this
// boot and key, else read (LoadTopology, QueryNvml) and saved. A cache that cannot be
// read or written is never an error: the note says why and the machine is read.
// Errors: those of LoadTopology for this machine.
Result<CachedTopology> LoadThisMachineCached(const TopologyCacheOptions& options);

}  // namespace trainrun::gpu
