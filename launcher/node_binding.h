// The binding step of a run and of `trainrun topology`: read the topology (this
// machine or --topology-xml), find the GPUs (NVML, hwloc, PCI), honour the GPUs
// the container runtime or scheduler gave us, plan, and hand each rank its
// CPUs, NUMA memory and variables. The logic lives in gpu/; this is where the
// job file, the flags and the environment meet it.
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/status.h"
#include "gpu/binding_env.h"
#include "gpu/binding_plan.h"
#include "gpu/gpu_discovery.h"
#include "gpu/topology.h"

namespace trainrun {

// Names the NVML library to load instead of libnvidia-ml.so.1. Setting it also
// makes trainrun ask that NVML about an XML topology (the tests' fake NVML).
constexpr const char* kNvmlLibraryVariable = "TRAINRUN_NVML_LIBRARY";

struct NodeBindingRequest {
  std::string topology_xml;  // empty: this machine
  gpu::BindingMode mode = gpu::BindingMode::kAuto;
  std::optional<int> process_count;  // none: one per GPU (or per gpus_per_process)
  std::optional<int> gpus_per_process;
  std::vector<std::string> environment;  // trainrun's own ("NAME=value")
  std::vector<std::pair<std::string, std::string>> job_environment;  // the job file's
};

struct NodeBinding {
  gpu::NodeTopology topology;
  gpu::GpuInventory inventory;
  gpu::BindingPlan plan;
  gpu::BindingEnvOptions env_options;
  // trainrun's environment variables the plan took over (a container's
  // CUDA_VISIBLE_DEVICES: each rank gets its own subset instead).
  std::vector<std::string> consumed_variables;
  // The binding's own decisions and concerns; the topology, the inventory and the
  // plan keep theirs.
  std::vector<std::string> notes;
  std::vector<std::string> warnings;

  // Every part's notes (decisions, for the system log) and warnings (everything
  // the user should look at), the binding's own first.
  std::vector<std::string> AllNotes() const;
  std::vector<std::string> AllWarnings() const;

  // The variables rank `local_rank`'s binding sets (defaults, see
  // gpu/binding_env.h).
  std::vector<std::pair<std::string, std::string>> RankEnvironment(int local_rank) const;
  // `environment` without the consumed variables.
  std::vector<std::string> ContainerEnvironment(const std::vector<std::string>& environment) const;
  // The tables of `trainrun topology` (topology, then plan).
  std::string Table() const;
  // For the run record's details.binding and `trainrun topology --json`.
  nlohmann::json Json() const;
};

// Plans the node. Errors: a --topology-xml that cannot be read or is not a
// topology (kInvalidArgument / kNotFound naming the file). A failure to read
// this machine's topology is a warning and a plan without CPU binding.
Result<NodeBinding> PlanNodeBinding(const NodeBindingRequest& request);

// Before starting ranks with `binding`: every planned CPU and NUMA node must be
// one this process may use, else the XML topology describes another machine
// (kInvalidArgument naming `topology_xml`).
Status CheckBindingFitsThisMachine(const NodeBinding& binding, const std::string& topology_xml);

}  // namespace trainrun
