// The topology and the binding plan for people (fixed-width tables, as
// `trainrun topology` and `trainrun run --dry-run` print them and
// system_logs/binding_node_<n>.txt keeps them) and for machines (JSON, in the
// run record's details.binding and `trainrun topology --json`).
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "gpu/binding_env.h"
#include "gpu/binding_plan.h"
#include "gpu/gpu_discovery.h"
#include "gpu/topology.h"

namespace trainrun::gpu {

// Tables of the GPUs (CUDA index, NVML index, PCI bus id, NUMA node, model,
// UUID), the NUMA nodes (memory, cores, CPUs) and the network devices.
std::string FormatTopology(const NodeTopology& topology, const GpuInventory& inventory);

// The per-rank table (GPUs, NUMA node, cores, CPUs, memory node, NIC,
// OMP_NUM_THREADS), then the plan's warnings and notes.
std::string FormatPlan(const BindingPlan& plan, const NodeTopology& topology,
                       const GpuInventory& inventory);

// {"topology": {...}, "gpus": {...}, "plan": {"ranks": [...], ...}}; each rank
// lists its CPUs both as the kernel's list text and as numbers, and the
// variables its binding sets.
nlohmann::json BindingJson(const NodeTopology& topology, const GpuInventory& inventory,
                           const BindingPlan& plan, const BindingEnvOptions& env_options = {});

}  // namespace trainrun::gpu
