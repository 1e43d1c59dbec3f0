#include "gpu/affinity.h"

#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <fstream>

#include <fmt/format.h>

#include "base/text.h"

namespace trainrun::gpu {
namespace {

bool ParseInt(std::string_view text, int* value) {
  if (text.empty()) return false;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), *value);
  return ec == std::errc() && end == text.data() + text.size() && *value >= 0;
}

}  // namespace

std::string FormatIdList(const std::vector<int>& ids) {
  std::vector<int> sorted = ids;
  std::sort(sorted.begin(), sorted.end());
  sorted.erase(std::unique(sorted.begin(), sorted.end()), sorted.end());
  std::string text;
  for (size_t i = 0; i < sorted.size();) {
    size_t j = i;
    while (j + 1 < sorted.size() && sorted[j + 1] == sorted[j] + 1) ++j;
    if (!text.empty()) text += ',';
    text += std::to_string(sorted[i]);
    if (j > i) text += fmt::format("-{}", sorted[j]);
    i = j + 1;
  }
  return text;
}

Result<std::vector<int>> ParseIdList(std::string_view text, std::string_view what) {
  std::vector<int> ids;
  text = TrimSpace(text);
  while (!text.empty()) {
    size_t comma = text.find(',');
    std::string_view part = TrimSpace(text.substr(0, comma));
    text = comma == std::string_view::npos ? std::string_view() : text.substr(comma + 1);
    size_t dash = part.find('-');
    int first = 0, last = 0;
    std::string_view a = part.substr(0, dash);
    std::string_view b = dash == std::string_view::npos ? a : part.substr(dash + 1);
    if (!ParseInt(a, &first)) {
      return InvalidArgumentError(fmt::format("{} \"{}\": \"{}\" is not a number", what, part, a));
    }
    if (!ParseInt(b, &last)) {
      return InvalidArgumentError(fmt::format("{} \"{}\": \"{}\" is not a number", what, part, b));
    }
    if (last < first) {
      return InvalidArgumentError(
          fmt::format("{} \"{}\": the range ends before it starts", what, part));
    }
    for (int id = first; id <= last; ++id) ids.push_back(id);
  }
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  return ids;
}

Result<std::vector<int>> ThisProcessCpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) != 0) return ErrnoStatus(errno, "sched_getaffinity");
  std::vector<int> cpus;
  for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
    if (CPU_ISSET(cpu, &set)) cpus.push_back(cpu);
  }
  return cpus;
}

Result<std::vector<int>> ThisProcessMemoryNodes() {
  std::ifstream status("/proc/self/status");
  if (!status) return ErrnoStatus(errno, "/proc/self/status");
  std::string line;
  const std::string key = "Mems_allowed_list:";
  while (std::getline(status, line)) {
    if (line.compare(0, key.size(), key) == 0) {
      return ParseIdList(std::string_view(line).substr(key.size()), "Mems_allowed_list");
    }
  }
  return NotFoundError("/proc/self/status has no Mems_allowed_list");
}

Status CheckMemoryPolicyPermitted() {
  // Reading our own policy has no side effect, and the filters that refuse
  // set_mempolicy refuse get_mempolicy the same way.
  int mode = 0;
  if (syscall(SYS_get_mempolicy, &mode, nullptr, 0, nullptr, 0) != 0) {
    return ErrnoStatus(errno, "get_mempolicy");
  }
  return Status::Ok();
}

std::vector<int> Missing(const std::vector<int>& wanted, const std::vector<int>& allowed) {
  std::vector<int> missing;
  for (int id : wanted) {
    if (std::find(allowed.begin(), allowed.end(), id) == allowed.end()) missing.push_back(id);
  }
  std::sort(missing.begin(), missing.end());
  missing.erase(std::unique(missing.begin(), missing.end()), missing.end());
  return missing;
}

}  // namespace trainrun::gpu
