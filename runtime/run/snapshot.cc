#include "runtime/run/snapshot.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>

#include <fmt/format.h>

#include "base/fs_util.h"
#include "runtime/process/process_posix.h"
#include "runtime/run/ignore_rules.h"

namespace trainrun {
namespace {

namespace fs = std::filesystem;

struct Walker {
  std::string source;
  std::string destination;
  std::vector<std::string> skip;
  const CancelToken* cancel = nullptr;
  IgnoreRules rules;
  SnapshotStats stats;

  // Adds the folder's .amlignore, or its .gitignore when it has none.
  void LoadIgnoreFile(const fs::path& dir, const std::string& relative) {
    for (const char* name : {".amlignore", ".gitignore"}) {
      Result<std::string> content = ReadFileToString((dir / name).string());
      if (!content.ok()) continue;
      rules.AddFile(relative, *content);
      if (relative.empty()) stats.ignore_file = name;
      return;
    }
  }

  Status Copy(const fs::path& dir, const std::string& relative) {
    LoadIgnoreFile(dir, relative);
    std::error_code ec;
    TR_ASSIGN_OR_RETURN(std::vector<fs::directory_entry> entries, ListDirectory(dir));
    for (const fs::directory_entry& entry : entries) {
      if (IsCanceled(cancel)) {
        return CanceledError(*cancel, fmt::format("copying {}", entry.path().string()));
      }
      const std::string name = entry.path().filename().string();
      const std::string rel = relative.empty() ? name : relative + "/" + name;
      const fs::path target = fs::path(destination) / rel;
      struct stat st {};
      if (lstat(entry.path().c_str(), &st) != 0) return ErrnoStatus(errno, entry.path().string());
      const bool is_dir = S_ISDIR(st.st_mode);
      if ((is_dir && name == ".git") || rules.IsIgnored(rel, is_dir)) {
        ++stats.ignored;
        continue;
      }
      bool skipped = false;
      for (const std::string& s : skip) skipped |= entry.path() == fs::path(s);
      if (skipped) continue;

      if (S_ISLNK(st.st_mode)) {
        fs::path link = fs::read_symlink(entry.path(), ec);
        if (ec) return ErrnoStatus(ec.value(), entry.path().string());
        fs::create_symlink(link, target, ec);
        if (ec) return ErrnoStatus(ec.value(), target.string());
        ++stats.symlinks;
      } else if (is_dir) {
        if (mkdir(target.c_str(), st.st_mode & 07777) != 0 && errno != EEXIST) {
          return ErrnoStatus(errno, target.string());
        }
        ++stats.directories;
        TR_RETURN_IF_ERROR(Copy(entry.path(), rel));
      } else if (S_ISREG(st.st_mode)) {
        TR_RETURN_IF_ERROR(CopyFileAtomic(entry.path().string(), target.string(), &stats.bytes));
        ++stats.files;
      }
      // Sockets, FIFOs and devices have no place in a snapshot.
    }
    return Status::Ok();
  }
};

// Runs git in `dir`. The source may belong to another user (a mounted checkout in a
// container running as root), which git refuses unless told the folder is safe.
Result<std::string> Git(std::vector<std::string> args, const std::string& dir) {
  args.insert(args.begin(), {"git", "-c", "safe.directory=*"});
  return CaptureOutput(args, dir);
}

std::string Trimmed(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  return s;
}

}  // namespace

Result<SnapshotStats> CopySnapshot(const std::string& source, const std::string& destination,
                                   const std::vector<std::string>& skip,
                                   const CancelToken* cancel) {
  TR_RETURN_IF_ERROR(MakeDirs(destination));
  Walker walker;
  walker.source = source;
  walker.destination = destination;
  walker.skip = skip;
  walker.cancel = cancel;
  Status s = walker.Copy(source, "");
  if (!s.ok()) return s.WithContext(fmt::format("snapshot of {}", source));
  return walker.stats;
}

std::string StripUrlCredentials(const std::string& url) {
  size_t scheme = url.find("://");
  if (scheme == std::string::npos) return url;
  size_t host_start = scheme + 3;
  size_t at = url.find('@', host_start);
  size_t slash = url.find('/', host_start);
  if (at == std::string::npos || (slash != std::string::npos && at > slash)) return url;
  return url.substr(0, host_start) + url.substr(at + 1);
}

namespace {

// Whether `directory` may be in a git work tree: it or a folder above it has a .git
// (a directory, or a file for worktrees and submodules), or GIT_DIR is set. Spares a
// run from a non-git source the git processes (a few ms of its start, README "Install").
bool MayBeInGitRepository(const std::string& directory) {
  if (getenv("GIT_DIR") != nullptr) return true;
  std::error_code ec;
  fs::path dir = fs::absolute(directory, ec);
  if (ec) return true;
  for (; !dir.empty(); dir = dir.parent_path()) {
    if (fs::exists(dir / ".git", ec)) return true;
    if (dir == dir.root_path()) break;
  }
  return false;
}

}  // namespace

std::optional<GitInfo> ReadGitInfo(const std::string& directory) {
  if (!MayBeInGitRepository(directory)) return std::nullopt;
  Result<std::string> commit = Git({"rev-parse", "HEAD"}, directory);
  if (!commit.ok()) return std::nullopt;
  GitInfo info;
  info.commit = Trimmed(*commit);
  Result<std::string> branch = Git({"rev-parse", "--abbrev-ref", "HEAD"}, directory);
  if (branch.ok()) info.branch = Trimmed(*branch);
  Result<std::string> remote = Git({"config", "--get", "remote.origin.url"}, directory);
  if (remote.ok()) info.remote = StripUrlCredentials(Trimmed(*remote));
  Result<std::string> status =
      Git({"status", "--porcelain", "--untracked-files=normal", "--", "."}, directory);
  info.dirty = status.ok() && !Trimmed(*status).empty();
  return info;
}

}  // namespace trainrun
