#include "gpu/visible_devices.h"

#include <algorithm>
#include <charconv>

#include <fmt/format.h>

#include "base/text.h"

namespace trainrun::gpu {
namespace {

std::vector<std::string_view> Split(std::string_view value) {
  std::vector<std::string_view> parts;
  while (true) {
    size_t comma = value.find(',');
    parts.push_back(TrimSpace(value.substr(0, comma)));
    if (comma == std::string_view::npos) break;
    value.remove_prefix(comma + 1);
  }
  return parts;
}

enum class Match { kFound, kNone, kAmbiguous };

// An index or a UUID (or a unique prefix of one, as CUDA accepts) -> a
// position.
Match Find(std::string_view entry, const std::vector<std::string>& uuids, int* position) {
  int index = -1;
  auto [end, ec] = std::from_chars(entry.data(), entry.data() + entry.size(), index);
  if (ec == std::errc() && end == entry.data() + entry.size()) {
    if (index < 0 || index >= static_cast<int>(uuids.size())) return Match::kNone;
    *position = index;
    return Match::kFound;
  }
  if (entry.size() <= 4 || !entry.starts_with("GPU-")) return Match::kNone;
  int found = -1;
  for (size_t i = 0; i < uuids.size(); ++i) {
    if (!uuids[i].empty() && std::string_view(uuids[i]).starts_with(entry)) {
      if (found >= 0) return Match::kAmbiguous;
      found = static_cast<int>(i);
    }
  }
  if (found < 0) return Match::kNone;
  *position = found;
  return Match::kFound;
}

void Add(int position, std::string_view variable, std::string_view entry, DeviceSelection* out) {
  if (std::find(out->positions.begin(), out->positions.end(), position) != out->positions.end()) {
    out->warnings.push_back(fmt::format("{}: \"{}\" names a GPU already listed", variable, entry));
    return;
  }
  out->positions.push_back(position);
}

}  // namespace

DeviceSelection SelectCudaVisibleDevices(std::string_view value,
                                         const std::vector<std::string>& uuids) {
  constexpr std::string_view kName = "CUDA_VISIBLE_DEVICES";
  DeviceSelection out;
  value = TrimSpace(value);
  if (value.empty() || value == "NoDevFiles") return out;
  for (std::string_view entry : Split(value)) {
    if (entry.starts_with("MIG-")) {
      out.warnings.push_back(
          fmt::format("{}: \"{}\" is a MIG instance; trainrun binds whole GPUs, so the MIG "
                      "instance is left out "
                      "of the plan (use binding \"none\" and pass MIG instances yourself)",
                      kName, entry));
      continue;
    }
    int position = -1;
    Match match = Find(entry, uuids, &position);
    if (match != Match::kFound) {
      // CUDA ignores an invalid entry and everything after it.
      if (entry != "-1") {
        out.warnings.push_back(fmt::format(
            "{}={}: \"{}\" {} of the {} GPU(s) here; like CUDA, trainrun "
            "ignores it and the "
            "entries after it",
            kName, value, entry,
            match == Match::kAmbiguous ? "matches more than one" : "names none", uuids.size()));
      }
      break;
    }
    Add(position, kName, entry, &out);
  }
  return out;
}

std::optional<DeviceSelection> SelectNvidiaVisibleDevices(std::string_view value,
                                                          const std::vector<std::string>& uuids) {
  constexpr std::string_view kName = "NVIDIA_VISIBLE_DEVICES";
  value = TrimSpace(value);
  if (value.empty() || value == "void") return std::nullopt;
  DeviceSelection out;
  if (value == "none") return out;
  if (value == "all") {
    for (size_t i = 0; i < uuids.size(); ++i) out.positions.push_back(static_cast<int>(i));
    return out;
  }
  for (std::string_view entry : Split(value)) {
    int position = -1;
    if (entry.starts_with("MIG-") || Find(entry, uuids, &position) != Match::kFound) {
      out.warnings.push_back(
          fmt::format("{}={}: \"{}\" names none of the {} GPU(s) trainrun sees; "
                      "left out",
                      kName, value, entry, uuids.size()));
      continue;
    }
    Add(position, kName, entry, &out);
  }
  return out;
}

}  // namespace trainrun::gpu
