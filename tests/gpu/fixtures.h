// The topologies the gpu tests plan on: real machines' hwloc XML files from
// tests/fixtures/topologies/ and hwloc synthetic descriptions.
#pragma once

#include <string>

#include <gtest/gtest.h>

#include "gpu/topology.h"

namespace trainrun::gpu::testing {

// NVIDIA DGX-2H: 16 V100s (NVML OS devices nvml0..15), 2 packages trimmed to 2
// cores each, one NUMA node per package.
inline std::string Dgx2Xml() {
  return std::string(TRAINRUN_SOURCE_DIR) + "/tests/fixtures/topologies/nvidiaDGX2.xml";
}
// 2 packages x 6 cores x 2 threads, 3 NVIDIA GPUs seen only as PCI class 0302,
// Ethernet and an InfiniBand HCA mlx4_0 on package 0.
inline std::string Em64tXml() {
  return std::string(TRAINRUN_SOURCE_DIR) + "/tests/fixtures/topologies/24em64t-2n6c2t-pci.xml";
}

inline NodeTopology Load(TopologyKind kind, const std::string& value) {
  Result<NodeTopology> topology = LoadTopology({kind, value});
  EXPECT_TRUE(topology.ok()) << topology.status().message();
  return topology.ok() ? *topology : NodeTopology{};
}
inline NodeTopology Xml(const std::string& path) { return Load(TopologyKind::kXmlFile, path); }
inline NodeTopology Synthetic(const std::string& description) {
  return Load(TopologyKind::kSynthetic, description);
}

}  // namespace trainrun::gpu::testing
