// Merging the files every node would upload to the same run (outputs/, logs/ and
// watched folders) so that nothing is silently overwritten.
//
// For each key (e.g. "outputs/model.pt"):
// clang-format off
//   - one node has it: that node uploads it;
//   - several nodes have identical content: the lowest node rank uploads it once;
//   - contents differ: the lowest node's version keeps the key, every other
//     distinct version is uploaded next to it as "model.node<N>.pt" (N = the lowest
//     node holding that version), and the key is reported as a conflict.
// clang-format on
// Content is compared by size first and by SHA-256 only where sizes are equal, so
// digests are computed just for keys two nodes share (DigestsNeeded).
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "runtime/run/history.h"

namespace trainrun {

struct ManifestEntry {
  std::string key;  // relative to the run, e.g. "outputs/model.pt"
  uint64_t size = 0;
  std::string sha256;  // empty until asked for
};

struct NodeManifest {
  int node_rank = 0;
  std::vector<ManifestEntry> files;
};

struct OutputConflict {
  std::string key;
  // node rank -> the key its version was kept as.
  std::map<int, std::string> kept_as;
};

struct MergePlan {
  // node rank -> (key in its manifest -> key to upload it as). Keys a node
  // should not upload (another node uploads the same content) are absent.
  std::map<int, std::map<std::string, std::string>> uploads;
  std::vector<OutputConflict> conflicts;
};

// Node rank -> keys whose SHA-256 that node must add before PlanMerge (keys
// held by several nodes with equal sizes and no digest yet).
std::map<int, std::set<std::string>> DigestsNeeded(const std::vector<NodeManifest>& manifests);

// The SHA-256 (hex) of each of this node's `items` whose key below `run_prefix` is
// in `keys`. A file that cannot be read is left out: without a digest it never
// passes for another node's copy.
std::map<std::string, std::string> DigestsOf(const std::vector<TransferItem>& items,
                                             const std::string& run_prefix,
                                             const std::set<std::string>& keys);

// The plan; keys that need a digest and lack one are treated as different.
MergePlan PlanMerge(const std::vector<NodeManifest>& manifests);

// "outputs/dir/model.pt", 1 -> "outputs/dir/model.node1.pt"; "outputs/README"
// -> "outputs/README.node1"; ".env" -> ".env.node1".
std::string ConflictKey(const std::string& key, int node_rank);

nlohmann::json ConflictsToJson(const std::vector<OutputConflict>& conflicts);

}  // namespace trainrun
