#include "gpu/topology_cache.h"

#include <algorithm>
#include <filesystem>
#include <system_error>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "base/fs_util.h"
#include "base/hashing.h"
#include "base/text.h"
#include "gpu/affinity.h"

namespace trainrun::gpu {
namespace {

namespace fs = std::filesystem;

// Bumped when what is saved changes shape, so an old entry is a miss.
constexpr int kCacheFormat = 1;

std::string Optional(const std::optional<std::string>& value) {
  return value ? "=" + *value : "(unset)";
}

// The /dev/nvidia* names, sorted: a GPU added to or taken from the container.
std::vector<std::string> NvidiaDevices(const std::string& dev_dir) {
  std::vector<std::string> names;
  std::error_code ec;
  for (fs::directory_iterator it(dev_dir, ec), end; !ec && it != end; it.increment(ec)) {
    std::string name = it->path().filename().string();
    if (name.rfind("nvidia", 0) == 0) names.push_back(name);
  }
  std::sort(names.begin(), names.end());
  return names;
}

std::string CacheKey(const TopologyCacheOptions& options) {
  Result<std::vector<int>> cpus = ThisProcessCpus();
  std::string text = fmt::format(
      "format {}\nCUDA_VISIBLE_DEVICES{}\nNVIDIA_VISIBLE_DEVICES{}\ndevices {}\naffinity {}\n"
      "nvml {}\n",
      kCacheFormat, Optional(options.cuda_visible_devices),
      Optional(options.nvidia_visible_devices), fmt::join(NvidiaDevices(options.dev_dir), ","),
      cpus.ok() ? fmt::format("{}", fmt::join(*cpus, ",")) : std::string("unknown"),
      options.use_nvml ? options.nvml_library : std::string("off"));
  return fmt::format("{:016x}", Fnv1a64(text));
}

nlohmann::json NvmlToJson(const NvmlReport& nvml) {
  nlohmann::json gpus = nlohmann::json::array();
  for (const NvmlGpu& g : nvml.gpus) {
    gpus.push_back({{"index", g.index}, {"busId", g.bus_id}, {"uuid", g.uuid}, {"name", g.name}});
  }
  return {{"available", nvml.available},
          {"library", nvml.library},
          {"problem", nvml.problem},
          {"gpus", gpus}};
}

NvmlReport NvmlFromJson(const nlohmann::json& json) {
  NvmlReport nvml;
  nvml.available = json.at("available").get<bool>();
  nvml.library = json.at("library").get<std::string>();
  nvml.problem = json.at("problem").get<std::string>();
  for (const nlohmann::json& g : json.at("gpus")) {
    NvmlGpu gpu;
    gpu.index = g.at("index").get<int>();
    gpu.bus_id = g.at("busId").get<std::string>();
    gpu.uuid = g.at("uuid").get<std::string>();
    gpu.name = g.at("name").get<std::string>();
    nvml.gpus.push_back(std::move(gpu));
  }
  return nvml;
}

// The entry for this boot and key, or nullopt (a miss, or an entry that does not load).
std::optional<CachedTopology> ReadEntry(const std::string& xml_path, const std::string& json_path,
                                        bool use_nvml) {
  std::error_code ec;
  if (!fs::exists(xml_path, ec) || !fs::exists(json_path, ec)) return std::nullopt;
  Result<std::string> text = ReadFileToString(json_path);
  if (!text.ok()) return std::nullopt;
  nlohmann::json json = nlohmann::json::parse(*text, nullptr, /*allow_exceptions=*/false);
  if (!json.is_object() || !json.contains("format") || json["format"] != kCacheFormat) {
    return std::nullopt;
  }
  Result<NodeTopology> topology = LoadTopology({TopologyKind::kXmlFile, xml_path});
  if (!topology.ok()) return std::nullopt;
  CachedTopology out;
  out.topology = std::move(topology).value();
  out.topology.source = "this machine";
  out.topology.this_machine = true;
  try {  // a damaged entry is a miss
    out.topology.notes = json.at("notes").get<std::vector<std::string>>();
    if (use_nvml) {
      if (!json.contains("nvml") || json.at("nvml").is_null()) return std::nullopt;
      out.nvml = NvmlFromJson(json.at("nvml"));
    }
  } catch (const nlohmann::json::exception&) {
    return std::nullopt;
  }
  return out;
}

// Removes the directories of other boots under `dir` (stale after a reboot when the
// cache is not on a tmpfs).
void RemoveOtherBoots(const std::string& dir, const std::string& boot_id) {
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    if (it->path().filename() != boot_id && it->is_directory(ec)) fs::remove_all(it->path(), ec);
  }
}

}  // namespace

std::string TopologyCacheDir(const std::optional<std::string>& variable,
                             const std::optional<std::string>& xdg_runtime_dir, unsigned euid) {
  if (variable && !variable->empty()) return *variable == "off" ? std::string() : *variable;
  if (euid == 0) return kDefaultTopologyCacheDir;
  if (xdg_runtime_dir && !xdg_runtime_dir->empty()) return *xdg_runtime_dir + "/trainrun";
  return "";
}

Result<CachedTopology> LoadThisMachineCached(const TopologyCacheOptions& options) {
  std::string why_not;
  std::string boot_id;
  if (options.dir.empty()) {
    why_not = fmt::format("off ({}=off, TRAINRUN_NVML_LIBRARY set, or no directory for this user)",
                          kTopologyCacheVariable);
  } else if (Result<std::string> id = ReadFileToString(options.boot_id_file); !id.ok()) {
    why_not = fmt::format("no boot id: {}", id.status().message());
  } else {
    boot_id = std::string(TrimSpace(*id));
    if (boot_id.empty() || boot_id.find('/') != std::string::npos || boot_id[0] == '.') {
      why_not = fmt::format("{} does not hold a boot id", options.boot_id_file);
    }
  }
  const std::string boot_dir = options.dir + "/" + boot_id;
  const std::string key = why_not.empty() ? CacheKey(options) : std::string();
  const std::string xml_path = fmt::format("{}/topology-{}.xml", boot_dir, key);
  const std::string json_path = fmt::format("{}/gpus-{}.json", boot_dir, key);

  if (why_not.empty()) {
    if (std::optional<CachedTopology> hit = ReadEntry(xml_path, json_path, options.use_nvml)) {
      hit->from_cache = true;
      hit->note = fmt::format("topology and GPU list from the per-boot cache {}", xml_path);
      return std::move(*hit);
    }
  }

  CachedTopology out;
  std::string xml;
  TR_ASSIGN_OR_RETURN(out.topology, LoadTopology({TopologyKind::kThisMachine, ""},
                                                 why_not.empty() ? &xml : nullptr));
  if (options.use_nvml) out.nvml = QueryNvml(options.nvml_library);
  if (!why_not.empty()) {
    out.note = fmt::format("topology cache not used: {}", why_not);
    return out;
  }
  nlohmann::json json = {{"format", kCacheFormat},
                         {"notes", out.topology.notes},
                         {"nvml", out.nvml ? NvmlToJson(*out.nvml) : nlohmann::json()}};
  Status saved = MakeDirs(boot_dir);
  if (saved.ok()) saved = WriteFileAtomic(xml_path, xml);
  if (saved.ok()) saved = WriteFileAtomic(json_path, json.dump(1));
  if (!saved.ok()) {
    out.note = fmt::format("topology cache not used: {}", saved.message());
    return out;
  }
  RemoveOtherBoots(options.dir, boot_id);
  out.note = fmt::format(
      "topology and GPU list read from this machine, saved to the per-boot cache {}", xml_path);
  return out;
}

}  // namespace trainrun::gpu
