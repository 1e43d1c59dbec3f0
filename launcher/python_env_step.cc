#include "launcher/python_env_step.h"

#include <cstdlib>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "base/env.h"
#include "runtime/process/rank_env.h"
#include "runtime/store/object_download.h"

namespace trainrun {

namespace {

// TRAINRUN_ENV_CACHE_MAX_MB, or the default with a warning when it is not a number.
uint64_t CacheLimit(Reporter* reporter) {
  const std::string text = EnvString(ProcessEnv(), kPythonEnvCacheVariable);
  if (text.empty()) return kDefaultPythonEnvCacheBytes;
  char* end = nullptr;
  errno = 0;
  const unsigned long long mib = std::strtoull(text.c_str(), &end, 10);
  if (errno != 0 || end == text.c_str() || *end != '\0' || mib == 0 || mib > (uint64_t{1} << 40)) {
    reporter->Warning(fmt::format("{}={}: not a number of MiB from 1; using the default {} MiB",
                                  kPythonEnvCacheVariable, text,
                                  kDefaultPythonEnvCacheBytes >> 20));
    return kDefaultPythonEnvCacheBytes;
  }
  return mib << 20;
}

}  // namespace

Result<std::unique_ptr<PythonEnv>> PreparePythonEnvironment(
    const RunContext& ctx, const JobConfig& job, const std::vector<std::string>& environment,
    const std::string& run_directory) {
  if (!job.python.wanted()) {
    for (const std::string& note : job.python.notes) ctx.reporter->Notice(note);
    return std::unique_ptr<PythonEnv>();
  }
  PythonEnvRequest request;
  request.spec = job.python;
  request.source_directory = job.source_directory;
  request.cache_dir = CacheDirFromEnv(ProcessEnv());
  if (request.cache_dir.empty()) {
    request.cache_dir = run_directory;
    ctx.reporter->Info(
        "python environment: TRAINRUN_CACHE_DIR=off, so it is built in the run "
        "directory and not kept");
  }
  request.max_cache_bytes = CacheLimit(ctx.reporter);
  // The tools see what the ranks would (PIP_INDEX_URL, PIP_FIND_LINKS from the job
  // file or the node), the job's values winning.
  request.env = MergeEnvironment(environment, job.environment_variables, {}).entries;
  request.cancel = ctx.cancel;
  request.reporter = ctx.reporter;
  TR_ASSIGN_OR_RETURN(std::unique_ptr<PythonEnv> python, PreparePythonEnv(request));
  if (python && ctx.journal != nullptr) {
    ctx.journal->record().details["pythonEnvironment"] = {
        {"key", python->key()},
        {"tool", python->tool()},
        {"prefix", python->prefix()},
        {"built", python->built()},
        {"buildSeconds", python->build_seconds()}};
  }
  return python;
}

void UsePythonEnv(const PythonEnv& python, std::vector<std::string>* env) {
  std::string path = python.bin();
  for (auto it = env->begin(); it != env->end();) {
    if (it->rfind("PATH=", 0) == 0) {
      if (it->size() > 5) path.append(":").append(*it, 5, std::string::npos);
      it = env->erase(it);
    } else if (it->rfind("VIRTUAL_ENV=", 0) == 0 || it->rfind("CONDA_PREFIX=", 0) == 0 ||
               it->rfind("PYTHONHOME=", 0) == 0) {
      // Another environment's, or one that would point the venv's python elsewhere.
      it = env->erase(it);
    } else {
      ++it;
    }
  }
  env->push_back("PATH=" + path);
  env->push_back((python.tool() == "conda" ? "CONDA_PREFIX=" : "VIRTUAL_ENV=") + python.prefix());
}

}  // namespace trainrun
