#include "launcher/run_rejoin.h"

#include <sys/stat.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <utility>

#include <fmt/format.h>

#include "base/fs_util.h"
#include "runtime/run/metrics.h"

namespace trainrun {

namespace fs = std::filesystem;

namespace {

constexpr std::string_view kKeptAsideInfix = ".before-attempt";

// The size of the regular file `path`, or none.
std::optional<uint64_t> LocalSize(const std::string& path) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return std::nullopt;
  return static_cast<uint64_t>(st.st_size);
}

// Seeds `relative` (a path under the run directory, the same under the run's
// history prefix) into `layout`: see SeedEarlierAttempts.
void SeedOne(Store* store, const std::string& run_prefix, const std::vector<std::string>& kept,
             const LocalRunLayout& layout, const std::string& relative, SeededLogs* seeded) {
  const std::string target = layout.root + "/" + relative;
  std::optional<uint64_t> in_history;
  Result<ObjectInfo> info = store->Stat(run_prefix + relative);
  if (info.ok()) {
    in_history = info->size;
  } else if (info.status().code() != StatusCode::kNotFound) {
    seeded->failures.push_back(fmt::format("{}: history: {}", relative, info.status().message()));
  }
  for (const std::string& dir : kept) {
    const std::string local = dir + "/" + relative;
    std::optional<uint64_t> size = LocalSize(local);
    if (!size) continue;
    // Only the newest kept-aside copy counts: an older one was seeded into it.
    if (in_history && *size < *in_history) break;
    uint64_t bytes = 0;
    Status copied = CopyFileAtomic(local, target, &bytes);
    if (copied.ok()) {
      ++seeded->files;
      ++seeded->from_kept_aside;
      seeded->bytes += bytes;
      return;
    }
    seeded->failures.push_back(fmt::format("{}: {}", relative, copied.message()));
    break;
  }
  if (!in_history) return;
  Status got = info->size == 0 ? WriteFileAtomic(target, "") : store->GetListedFile(*info, target);
  if (!got.ok()) {
    seeded->failures.push_back(fmt::format("{}: history: {}", relative, got.message()));
    return;
  }
  ++seeded->files;
  seeded->bytes += info->size;
}

}  // namespace

std::string KeptAsideRunDir(const std::string& root, int attempt) {
  return fmt::format("{}{}{}", root, kKeptAsideInfix, attempt);
}

std::vector<std::string> KeptAsideRunDirs(const std::string& root) {
  const fs::path path(root);
  const std::string prefix = path.filename().string() + std::string(kKeptAsideInfix);
  std::vector<std::pair<long, std::string>> found;
  std::error_code ec;
  for (fs::directory_iterator it(path.parent_path(), ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.rfind(prefix, 0) != 0 || name.size() == prefix.size()) continue;
    const std::string digits = name.substr(prefix.size());
    if (digits.find_first_not_of("0123456789") != std::string::npos) continue;
    std::error_code dir_ec;
    if (!fs::is_directory(it->path(), dir_ec)) continue;
    found.emplace_back(std::strtol(digits.c_str(), nullptr, 10), it->path().string());
  }
  std::sort(found.begin(), found.end(), [](const auto& a, const auto& b) { return a > b; });
  std::vector<std::string> dirs;
  for (auto& [attempt, dir] : found) dirs.push_back(std::move(dir));
  return dirs;
}

SeededLogs SeedEarlierAttempts(Store* history, const std::string& run_prefix,
                               const LocalRunLayout& layout, int node_rank, int first_rank,
                               int rank_count) {
  SeededLogs seeded;
  const std::vector<std::string> kept = KeptAsideRunDirs(layout.root);
  std::vector<std::string> files = {fmt::format("{}/{}", kSystemLogsDir, SystemLogName(node_rank))};
  for (int rank = first_rank; rank < first_rank + rank_count; ++rank) {
    files.push_back(fmt::format("{}/{}", kUserLogsDir, RankLogName(rank)));
    files.push_back(fmt::format("{}/{}", kMetricsDir, MetricsFileName(rank)));
  }
  for (const std::string& relative : files) {
    SeedOne(history, run_prefix, kept, layout, relative, &seeded);
  }
  return seeded;
}

}  // namespace trainrun
