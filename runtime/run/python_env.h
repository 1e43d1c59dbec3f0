// The Python environment a run's ranks use when the job declares packages
// (python_env_spec.h): a venv from the image's interpreter with `pip install`, or a
// conda environment when the job lists conda packages and a `conda` is on PATH.
//
// Environments are cached on the node under <cache>/envs/, keyed by a hash of the
// normalised spec (packages, channels, requirements.txt's lines, the tool) and the
// interpreter (its real path and version):
//
//   <cache>/envs/<key>.lock      flock: exclusive while building or pruning,
//                                shared while a run uses the environment
//   <cache>/envs/<key>-<nonce>/  the environment, built in place (a venv's and a
//                                conda prefix's scripts name their own folder)
//   <cache>/envs/<key>           symlink to it, made last by rename(2): an
//                                interrupted build never looks complete
//
// A second trainrun asking for the same key waits on the lock, then uses what the
// first built. After a build, complete environments no run holds are removed, least
// recently used first, until the cache fits its limit.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "base/cancel.h"
#include "base/status.h"
#include "runtime/report/reporter.h"
#include "runtime/run/python_env_spec.h"

namespace trainrun {

// The cache's size limit: every complete environment together, in bytes.
constexpr uint64_t kDefaultPythonEnvCacheBytes = uint64_t{20} << 30;
// The variable that sets it, in MiB.
constexpr const char* kPythonEnvCacheVariable = "TRAINRUN_ENV_CACHE_MAX_MB";

struct PythonEnvRequest {
  PythonEnvSpec spec;
  std::string source_directory;  // where requirements.txt is read
  // The cache's root (<root>/envs/ holds the environments); see CacheDirFromEnv.
  std::string cache_dir;
  uint64_t max_cache_bytes = kDefaultPythonEnvCacheBytes;
  // The environment of the interpreter, venv, conda and pip: trainrun's, with the
  // job's environment variables (PIP_INDEX_URL, PIP_FIND_LINKS, ...) over it.
  std::vector<std::string> env;
  const CancelToken* cancel = nullptr;  // may be null
  // Not owned. One Notice says "building" or "cached"; every line the tools print
  // is an Info (the system log); notes and pruning are Info too.
  Reporter* reporter = nullptr;
};

// A ready environment. While this object lives, the run holds the key's lock shared,
// so no pruning removes the environment under its ranks.
class PythonEnv {
 public:
  ~PythonEnv();
  PythonEnv(const PythonEnv&) = delete;
  PythonEnv& operator=(const PythonEnv&) = delete;

  const std::string& key() const { return key_; }
  // The environment's folder (VIRTUAL_ENV, or the conda prefix).
  const std::string& prefix() const { return prefix_; }
  std::string bin() const { return prefix_ + "/bin"; }
  std::string python() const { return prefix_ + "/bin/python"; }
  const std::string& tool() const { return tool_; }  // "venv" or "conda"
  bool built() const { return built_; }              // false: found in the cache
  double build_seconds() const { return build_seconds_; }

 private:
  friend Result<std::unique_ptr<PythonEnv>> PreparePythonEnv(const PythonEnvRequest& request);
  PythonEnv() = default;
  int lock_fd_ = -1;
  std::string key_;
  std::string prefix_;
  std::string tool_;
  bool built_ = false;
  double build_seconds_ = 0;
};

// Finds or builds the environment `request.spec` asks for. Returns null (no error)
// when there is nothing to install (only an absent requirements.txt). Errors:
// - kInvalidJob (exit 65): a conda package without a conda on PATH (naming the
//   field); the interpreter cannot run; venv, conda or pip failed: the message names
//   the command and ends with the tool's last lines (pip's "No matching
//   distribution found for NAME"). What a failed build made is removed.
// - kCanceled when request.cancel was canceled (the tool is stopped);
// - kIoError when the cache cannot be written.
Result<std::unique_ptr<PythonEnv>> PreparePythonEnv(const PythonEnvRequest& request);

}  // namespace trainrun
