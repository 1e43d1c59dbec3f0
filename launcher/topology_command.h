// `trainrun topology [--topology-xml F] [--nproc N] [--gpus-per-process G]
// [--json]`: this node's GPUs, NUMA nodes and network devices, and the binding
// plan a run would use for N ranks, with the environment of this shell
// (CUDA_VISIBLE_DEVICES, NVIDIA_VISIBLE_DEVICES, TRAINRUN_NVML_LIBRARY) taken
// into account as a run would.
#pragma once

#include <optional>
#include <string>

#include "runtime/report/console.h"

namespace trainrun {

struct TopologyOptions {
  std::string topology_xml;             // empty: this machine
  std::optional<int> nproc;             // ranks; none: one per GPU, else 1
  std::optional<int> gpus_per_process;  // GPUs per rank; none: 1
  bool json = false;                    // JSON instead of tables
};

// Prints the tables (or JSON) to `out`; returns 0, or 64 when the XML file
// cannot be used (the message on `err` names it).
int ShowTopology(const TopologyOptions& options, Console* out, Console* err);

}  // namespace trainrun
