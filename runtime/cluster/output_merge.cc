#include "runtime/cluster/output_merge.h"

#include <algorithm>

#include <fmt/format.h>

#include "base/digest.h"

namespace trainrun {
namespace {

struct Holder {
  int node_rank;
  const ManifestEntry* entry;
};

std::map<std::string, std::vector<Holder>> ByKey(const std::vector<NodeManifest>& manifests) {
  std::map<std::string, std::vector<Holder>> keys;
  for (const NodeManifest& m : manifests) {
    for (const ManifestEntry& e : m.files) keys[e.key].push_back({m.node_rank, &e});
  }
  for (auto& [key, holders] : keys) {
    std::sort(holders.begin(), holders.end(),
              [](const Holder& a, const Holder& b) { return a.node_rank < b.node_rank; });
  }
  return keys;
}

bool Same(const ManifestEntry& a, const ManifestEntry& b) {
  return a.size == b.size && !a.sha256.empty() && a.sha256 == b.sha256;
}

}  // namespace

std::string ConflictKey(const std::string& key, int node_rank) {
  size_t slash = key.rfind('/');
  size_t name_start = slash == std::string::npos ? 0 : slash + 1;
  size_t dot = key.rfind('.');
  std::string tag = fmt::format(".node{}", node_rank);
  if (dot == std::string::npos || dot <= name_start) return key + tag;  // no extension, or ".env"
  return key.substr(0, dot) + tag + key.substr(dot);
}

std::map<int, std::set<std::string>> DigestsNeeded(const std::vector<NodeManifest>& manifests) {
  std::map<int, std::set<std::string>> needed;
  for (const auto& [key, holders] : ByKey(manifests)) {
    if (holders.size() < 2) continue;
    for (size_t i = 0; i < holders.size(); ++i) {
      bool shares_size = false;
      for (size_t j = 0; j < holders.size(); ++j) {
        if (i != j && holders[i].entry->size == holders[j].entry->size) shares_size = true;
      }
      if (shares_size && holders[i].entry->sha256.empty()) needed[holders[i].node_rank].insert(key);
    }
  }
  return needed;
}

std::map<std::string, std::string> DigestsOf(const std::vector<TransferItem>& items,
                                             const std::string& run_prefix,
                                             const std::set<std::string>& keys) {
  std::map<std::string, std::string> digests;
  for (const TransferItem& item : items) {
    std::string key = item.key.substr(run_prefix.size());
    if (keys.count(key) == 0) continue;
    Result<std::string> digest = Sha256FileHex(item.local_path);
    if (digest.ok()) digests[key] = *digest;
  }
  return digests;
}

MergePlan PlanMerge(const std::vector<NodeManifest>& manifests) {
  MergePlan plan;
  auto keys = ByKey(manifests);
  std::set<std::string> taken;
  for (const auto& [key, holders] : keys) taken.insert(key);
  for (const auto& [key, holders] : keys) {
    // Distinct versions, in node order; the first keeps the key.
    std::vector<std::pair<int, const ManifestEntry*>> versions;  // uploading node, entry
    OutputConflict conflict;
    conflict.key = key;
    for (const Holder& h : holders) {
      auto same = std::find_if(versions.begin(), versions.end(),
                               [&](const auto& v) { return Same(*v.second, *h.entry); });
      if (same != versions.end()) {
        conflict.kept_as[h.node_rank] = plan.uploads[same->first][key];
        continue;
      }
      std::string as = key;
      if (!versions.empty()) {
        as = ConflictKey(key, h.node_rank);
        for (int n = 2; taken.count(as) != 0; ++n) {
          as = ConflictKey(key, h.node_rank) + fmt::format("~{}", n);
        }
        taken.insert(as);
      }
      versions.emplace_back(h.node_rank, h.entry);
      plan.uploads[h.node_rank][key] = as;
      conflict.kept_as[h.node_rank] = as;
    }
    if (versions.size() > 1) plan.conflicts.push_back(std::move(conflict));
  }
  return plan;
}

nlohmann::json ConflictsToJson(const std::vector<OutputConflict>& conflicts) {
  nlohmann::json out = nlohmann::json::array();
  for (const OutputConflict& c : conflicts) {
    nlohmann::json versions = nlohmann::json::array();
    for (const auto& [node, as] : c.kept_as)
      versions.push_back({{"nodeRank", node}, {"keptAs", as}});
    out.push_back({{"path", c.key}, {"versions", versions}});
  }
  return out;
}

}  // namespace trainrun
