#include "launcher/rank_python.h"

#include <algorithm>
#include <filesystem>

namespace trainrun {

namespace fs = std::filesystem;

std::string TrainrunPythonDir() {
  std::error_code ec;
  const fs::path self = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    const fs::path installed = self.parent_path().parent_path() / "share/trainrun/python";
    if (fs::is_directory(installed / "trainrun", ec)) return installed.string();
  }
#ifdef TRAINRUN_SOURCE_PYTHON_DIR
  if (fs::is_directory(fs::path(TRAINRUN_SOURCE_PYTHON_DIR) / "trainrun", ec)) {
    return TRAINRUN_SOURCE_PYTHON_DIR;
  }
#endif
  return "";
}

void AppendPythonPath(std::vector<std::string>* entries, const std::string& dir) {
  if (dir.empty()) return;
  constexpr std::string_view kName = "PYTHONPATH=";
  for (std::string& entry : *entries) {
    if (!entry.starts_with(kName)) continue;
    std::string_view value = std::string_view(entry).substr(kName.size());
    size_t start = 0;
    while (start <= value.size()) {
      size_t colon = value.find(':', start);
      if (colon == std::string_view::npos) colon = value.size();
      if (value.substr(start, colon - start) == dir) return;
      start = colon + 1;
    }
    entry += value.empty() ? dir : ":" + dir;
    return;
  }
  entries->push_back(std::string(kName) + dir);
  // MergeEnvironment's entries are sorted by name; keep them so.
  std::sort(entries->begin(), entries->end());
}

}  // namespace trainrun
