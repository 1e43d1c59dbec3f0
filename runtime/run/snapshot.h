// The source snapshot: a copy of sourceDirectory made fresh for every run, so the
// run is reproducible and its ./outputs and ./logs are its own. Honours .amlignore
// (else .gitignore) in every folder, never copies .git, and keeps symlinks as
// symlinks.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "base/cancel.h"
#include "base/status.h"

namespace trainrun {

// Azure ML's snapshot limits: past these the snapshot is copied but a warning says
// so, because a large snapshot slows every run's start.
constexpr uint64_t kSnapshotWarnBytes = 300'000'000;
constexpr uint64_t kSnapshotWarnFiles = 2000;

struct SnapshotStats {
  uint64_t files = 0;
  uint64_t bytes = 0;
  uint64_t directories = 0;
  uint64_t symlinks = 0;
  uint64_t ignored = 0;     // entries left out by ignore rules
  std::string ignore_file;  // ".amlignore", ".gitignore" or "" (at the root)
};

// Copies `source` into `destination` (created; must not exist or be empty). Paths
// in `skip` (absolute) are never copied, so a run directory inside the source
// cannot copy itself. Errors name the file that could not be copied. Once `cancel`
// (not owned; may be null) is canceled, the copy stops before the next file with
// kCanceled, leaving what was copied.
Result<SnapshotStats> CopySnapshot(const std::string& source, const std::string& destination,
                                   const std::vector<std::string>& skip = {},
                                   const CancelToken* cancel = nullptr);

struct GitInfo {
  std::string commit;
  std::string branch;  // "HEAD" when detached
  std::string remote;  // origin's URL, credentials removed
  bool dirty = false;
};

// Git facts about `directory` when it is inside a git checkout and git is
// installed; nothing otherwise.
std::optional<GitInfo> ReadGitInfo(const std::string& directory);

// Removes "user:password@" from a URL.
std::string StripUrlCredentials(const std::string& url);

}  // namespace trainrun
