#include "runtime/run/python_env.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <deque>
#include <filesystem>
#include <map>
#include <random>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "base/fs_util.h"
#include "base/hashing.h"
#include "base/text.h"
#include "runtime/process/process_posix.h"
#include "runtime/process/rank_env.h"
#include "runtime/run/job_config.h"

namespace trainrun {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// Lines of a failed tool's output that its error quotes.
constexpr size_t kTailLines = 15;
// Bumped when the layout of an environment or the way it is built changes, so old
// environments are not taken for new ones.
constexpr int kEnvFormat = 1;
constexpr const char* kMarkerName = ".trainrun-env.json";
constexpr const char* kLastUsedName = ".trainrun-last-used";

struct ToolRun {
  ExitStatus status;
  std::deque<std::string> tail;
};

// Runs a tool with every line of its output in the system log (Info, prefixed).
Result<ToolRun> RunTool(const PythonEnvRequest& request, const std::vector<std::string>& argv,
                        const std::string& prefix) {
  SpawnSpec spec;
  spec.argv = argv;
  // One entry per name, the later winning: getenv() would take the first.
  for (const auto& [name, value] : EnvironmentMap(request.env)) {
    spec.env.push_back(name + "=" + value);
  }
  ToolRun run;
  Result<ExitStatus> status = RunToCompletion(
      spec,
      [&](std::string_view line) {
        if (request.reporter != nullptr) {
          request.reporter->Info(fmt::format("{}: {}", prefix, EscapeControl(line)));
        }
        run.tail.emplace_back(line);
        if (run.tail.size() > kTailLines) run.tail.pop_front();
      },
      request.cancel);
  if (!status.ok()) return status.status();
  run.status = *status;
  return run;
}

Status ToolFailed(const std::string& what, const ToolRun& run) {
  std::string message = fmt::format(
      "the job's Python environment could not be built: {} {}; its last lines (all of them "
      "are in the system log):",
      what, run.status.HowItEnded());
  for (const std::string& line : run.tail) message += "\n  " + EscapeControl(line);
  return InvalidJobError(message);
}

// requirements.txt without comments, blank lines and surrounding space: what pip reads.
std::vector<std::string> RequirementLines(const std::string& text) {
  std::vector<std::string> lines;
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    std::string line(TrimSpace(std::string_view(text).substr(start, end - start)));
    if (!line.empty() && line[0] != '#') lines.push_back(line);
    start = end + 1;
  }
  return lines;
}

// pip's arguments for one entry of a pip list: "--find-links /w" is two.
void AddPipArguments(const std::string& entry, std::vector<std::string>* argv) {
  if (entry.empty() || entry[0] != '-') {
    argv->push_back(entry);
    return;
  }
  size_t space = entry.find_first_of(" \t");
  if (space == std::string::npos) {
    argv->push_back(entry);
    return;
  }
  argv->push_back(entry.substr(0, space));
  argv->emplace_back(TrimSpace(entry.substr(space)));
}

std::string Nonce() {
  std::random_device random;
  return fmt::format("{:08x}", random());
}

uint64_t TreeBytes(const fs::path& root) {
  uint64_t bytes = 0;
  std::error_code ec;
  for (fs::recursive_directory_iterator it(root, ec), end; !ec && it != end; it.increment(ec)) {
    struct stat st {};
    if (lstat(it->path().c_str(), &st) == 0 && S_ISREG(st.st_mode)) {
      bytes += static_cast<uint64_t>(st.st_blocks) * 512;
    }
  }
  return bytes;
}

// The complete environment `link` points to, or "".
std::string CompleteTarget(const fs::path& link) {
  std::error_code ec;
  fs::path target = fs::read_symlink(link, ec);
  if (ec) return "";
  if (target.is_relative()) target = link.parent_path() / target;
  if (!fs::exists(target / kMarkerName, ec)) return "";
  return target.string();
}

// Removes what a build of `key` left in `dir` that `keep` is not: folders of
// interrupted or failed builds. The caller holds the key's lock.
void RemoveStaleBuilds(const fs::path& dir, const std::string& key, const std::string& keep) {
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.size() > key.size() + 1 && name.compare(0, key.size() + 1, key + "-") == 0 &&
        it->path().string() != keep) {
      std::error_code ignored;
      fs::remove_all(it->path(), ignored);
    }
  }
}

void Touch(const fs::path& path) {
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  if (fd >= 0) {
    futimens(fd, nullptr);
    close(fd);
  }
}

// Removes complete environments that no run holds, least recently used first, until
// the cache fits `max_bytes`; never `keep`.
void Prune(const fs::path& dir, const std::string& keep, uint64_t max_bytes, Reporter* reporter) {
  struct Entry {
    std::string key;
    std::string target;
    uint64_t bytes;
    fs::file_time_type used;
  };
  std::vector<Entry> entries;
  uint64_t total = 0;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    if (!it->is_symlink()) continue;
    const std::string target = CompleteTarget(it->path());
    if (target.empty()) continue;
    std::error_code time_ec;
    fs::file_time_type used = fs::last_write_time(fs::path(target) / kLastUsedName, time_ec);
    entries.push_back({it->path().filename().string(), target, TreeBytes(target), used});
    total += entries.back().bytes;
  }
  if (total <= max_bytes) return;
  std::sort(entries.begin(), entries.end(),
            [](const Entry& a, const Entry& b) { return a.used < b.used; });
  for (const Entry& e : entries) {
    if (total <= max_bytes) break;
    if (e.key == keep) continue;
    const std::string lock_path = (dir / (e.key + ".lock")).string();
    int fd = open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) continue;
    if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
      // The link goes first: from then on the environment is no longer complete.
      std::error_code ignored;
      fs::remove(dir / e.key, ignored);
      RemoveStaleBuilds(dir, e.key, "");
      total -= std::min(total, e.bytes);
      if (reporter != nullptr) {
        reporter->Info(fmt::format(
            "python environment: removed {} ({}) from the cache, least recently used; the "
            "cache holds {} of its limit {} ({})",
            e.key, FormatBytes(e.bytes), FormatBytes(total), FormatBytes(max_bytes),
            kPythonEnvCacheVariable));
      }
    }
    close(fd);
  }
}

// Locks the environment's lock file: shared when the environment is complete
// (returns its directory), else exclusive, to build it (returns ""). The shared
// lock is tried first each time, since a builder keeps one on what it built for as
// long as its run lasts: a trainrun that waited for the exclusive lock alone would
// wait for that whole run, and two that both found the environment missing would
// wait for each other's.
Result<std::string> LockEnvironment(int fd, const fs::path& link, const PythonEnvRequest& request,
                                    const std::string& key) {
  bool said = false;
  for (;;) {
    if (flock(fd, LOCK_SH | LOCK_NB) == 0) {
      std::string target = CompleteTarget(link);
      if (!target.empty()) return target;
      flock(fd, LOCK_UN);
      // Looked for again under the exclusive lock: another trainrun may have built
      // it in between.
      if (flock(fd, LOCK_EX | LOCK_NB) == 0) return CompleteTarget(link);
    }
    if (errno != EWOULDBLOCK && errno != EINTR) {
      return ErrnoStatus(errno, fmt::format("locking python environment {}", key));
    }
    if (!said && request.reporter != nullptr) {
      request.reporter->Notice(fmt::format(
          "python environment {}: another trainrun on this node is building it; waiting", key));
      said = true;
    }
    if (request.cancel != nullptr ? request.cancel->WaitFor(std::chrono::milliseconds(100))
                                  : (usleep(100 * 1000), false)) {
      return CanceledError(*request.cancel,
                           fmt::format("waiting for python environment {} to be built", key));
    }
  }
}

}  // namespace

PythonEnv::~PythonEnv() {
  if (lock_fd_ >= 0) close(lock_fd_);
}

Result<std::unique_ptr<PythonEnv>> PreparePythonEnv(const PythonEnvRequest& request) {
  const PythonEnvSpec& spec = request.spec;
  Reporter* reporter = request.reporter;
  for (const std::string& note : spec.notes) {
    if (reporter != nullptr) reporter->Notice(note);
  }

  std::vector<std::string> requirements;
  const fs::path requirements_file = fs::path(request.source_directory) / kRequirementsFileName;
  std::error_code ec;
  if (spec.use_requirements_file && fs::is_regular_file(requirements_file, ec)) {
    TR_ASSIGN_OR_RETURN(std::string text, ReadFileToString(requirements_file.string()));
    requirements = RequirementLines(text);
  }
  if (spec.conda_packages.empty() && spec.pip.empty() && requirements.empty()) {
    return std::unique_ptr<PythonEnv>();
  }

  // The interpreter as it really is: a pyenv shim or /usr/bin/python3 -> python3.11
  // is keyed, and the venv made, by the program it runs.
  const std::string interpreter =
      spec.interpreter_path.empty() ? kDefaultPythonInterpreter : spec.interpreter_path;
  TR_ASSIGN_OR_RETURN(
      ToolRun probe,
      RunTool(request,
              {interpreter, "-c",
               "import sys, platform; print(sys.executable); print(platform.python_version())"},
              "python"));
  if (!probe.status.success() || probe.tail.size() < 2) {
    return ToolFailed(
        fmt::format("the interpreter {} (environment.python.interpreterPath)", interpreter), probe);
  }
  const std::string executable = probe.tail[probe.tail.size() - 2];
  const std::string version = probe.tail.back();

  const std::map<std::string, std::string> env = EnvironmentMap(request.env);
  const std::string path_list = env.count("PATH") != 0 ? env.at("PATH") : "";
  Result<std::string> conda = FindExecutable("conda", path_list);
  const bool wrong_python = !spec.python_version.empty() && version != spec.python_version &&
                            version.rfind(spec.python_version + ".", 0) != 0;
  std::string tool = "venv";
  if (!spec.conda_packages.empty()) {
    if (!conda.ok()) {
      return InvalidJobError(fmt::format(
          "environment.python.{} lists conda packages ({}) but no conda is on PATH: put conda "
          "(Miniforge) in the image, or list them under \"pip:\" to have them installed in a "
          "venv",
          spec.conda_source.empty() ? "condaPackages" : spec.conda_source,
          fmt::join(spec.conda_packages, ", ")));
    }
    tool = "conda";
  } else if (wrong_python && conda.ok()) {
    tool = "conda";
  } else if (wrong_python && reporter != nullptr) {
    reporter->Warning(fmt::format(
        "environment.python.{} asks for python={}; the venv uses {} {} (only conda could "
        "provide another version, and none is on PATH)",
        spec.conda_source.empty() ? "condaPackages" : spec.conda_source, spec.python_version,
        executable, version));
  }

  json normal = {{"format", kEnvFormat},      {"tool", tool},
                 {"interpreter", executable}, {"interpreterVersion", version},
                 {"pip", spec.pip},           {"requirements", requirements}};
  if (tool == "conda") {
    normal["python"] = spec.python_version;
    normal["conda"] = spec.conda_packages;
    normal["channels"] = spec.channels;
  } else {
    normal["systemSitePackages"] = true;
  }
  const std::string key = HexEncode(Sha256(normal.dump())).substr(0, 16);

  const fs::path dir = fs::path(request.cache_dir) / "envs";
  TR_RETURN_IF_ERROR(MakeDirs(dir.string()));
  std::unique_ptr<PythonEnv> result(new PythonEnv());
  result->key_ = key;
  result->tool_ = tool;
  const std::string lock_path = (dir / (key + ".lock")).string();
  result->lock_fd_ = open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (result->lock_fd_ < 0) return ErrnoStatus(errno, lock_path);
  // A complete environment is used under the shared lock that runs hold; a missing
  // one is built under the exclusive lock.
  const fs::path link = dir / key;
  TR_ASSIGN_OR_RETURN(std::string target, LockEnvironment(result->lock_fd_, link, request, key));
  if (!target.empty()) {
    result->prefix_ = target;
    if (reporter != nullptr) {
      reporter->Notice(fmt::format("python environment {}: cached ({} at {})", key, tool, target));
    }
  } else {
    RemoveStaleBuilds(dir, key, "");
    target = (dir / (key + "-" + Nonce())).string();
    if (reporter != nullptr) {
      reporter->Notice(fmt::format(
          "python environment {}: building ({} from {} {}; {} pip requirement(s){}{}); the "
          "install output goes to the system log",
          key, tool, executable, version, spec.pip.size(),
          requirements.empty() ? ""
                               : fmt::format(", {} from requirements.txt", requirements.size()),
          tool == "conda" ? fmt::format(", {} conda package(s)", spec.conda_packages.size()) : ""));
    }
    const TimePoint started = SystemClock()->Now();
    auto fail = [&](Status status) {
      std::error_code ignored;
      fs::remove_all(target, ignored);
      return status;
    };
    std::vector<std::string> create;
    if (tool == "venv") {
      create = {executable, "-m", "venv", "--system-site-packages", target};
    } else {
      create = {*conda, "create", "--yes", "--quiet", "--prefix", target};
      for (const std::string& channel : spec.channels) {
        create.push_back("--channel");
        create.push_back(channel);
      }
      create.push_back(spec.python_version.empty() ? "python" : "python=" + spec.python_version);
      create.push_back("pip");
      create.insert(create.end(), spec.conda_packages.begin(), spec.conda_packages.end());
    }
    Result<ToolRun> made = RunTool(request, create, tool);
    if (!made.ok()) return fail(made.status());
    if (!made->status.success()) {
      return fail(ToolFailed(
          fmt::format("{} {}", tool == "venv" ? "python -m venv" : "conda create", target), *made));
    }
    if (!spec.pip.empty() || !requirements.empty()) {
      std::vector<std::string> pip = {target + "/bin/python",
                                      "-m",
                                      "pip",
                                      "install",
                                      "--no-input",
                                      "--progress-bar",
                                      "off",
                                      "--disable-pip-version-check"};
      for (const std::string& entry : spec.pip) AddPipArguments(entry, &pip);
      if (!requirements.empty()) {
        pip.push_back("-r");
        pip.push_back(requirements_file.string());
      }
      Result<ToolRun> installed = RunTool(request, pip, "pip");
      if (!installed.ok()) return fail(installed.status());
      if (!installed->status.success()) return fail(ToolFailed("pip install", *installed));
    }
    json marker = normal;
    marker["key"] = key;
    marker["builtAt"] = FormatIso8601(SystemClock()->WallNow());
    Status written = WriteFileAtomic(target + "/" + kMarkerName, marker.dump(2) + "\n");
    if (!written.ok()) return fail(written);
    // The link appears whole or not at all.
    const std::string temp_link = link.string() + ".tmp-" + Nonce();
    if (symlink(fs::path(target).filename().c_str(), temp_link.c_str()) != 0 ||
        rename(temp_link.c_str(), link.c_str()) != 0) {
      Status status = ErrnoStatus(errno, fmt::format("making {}", link.string()));
      unlink(temp_link.c_str());
      return fail(status);
    }
    result->prefix_ = target;
    result->built_ = true;
    result->build_seconds_ = ToSeconds(SystemClock()->Now() - started);
    if (reporter != nullptr) {
      reporter->Info(fmt::format("python environment {}: built in {:.1f} s at {} ({})", key,
                                 result->build_seconds_, target, FormatBytes(TreeBytes(target))));
    }
  }
  Touch(fs::path(result->prefix_) / kLastUsedName);
  // Held shared until the run ends: pruning by another trainrun skips it.
  flock(result->lock_fd_, LOCK_SH);
  if (result->built_) Prune(dir, key, request.max_cache_bytes, reporter);
  return result;
}

}  // namespace trainrun
