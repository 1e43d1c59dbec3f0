// Preparing's Python step (run_prepare.h): the environment that environment.python
// asks for (runtime/run/python_env.h), found in or built into the node's cache, and
// how the ranks run in it. Internal to the launcher.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "launcher/run_context.h"
#include "runtime/run/job_config.h"
#include "runtime/run/python_env.h"

namespace trainrun {

// Finds or builds the job's Python environment and records it in the run record
// (details.pythonEnvironment). Null when the job asks for none (no packages, or
// userManagedDependencies true). `environment` is what the ranks would inherit
// (EnvironmentForRanks); the tools get it with the job's variables over it. The
// cache is $TRAINRUN_CACHE_DIR/envs (see CacheDirFromEnv); with
// TRAINRUN_CACHE_DIR=off the environment is built in `run_directory` and not kept.
// Errors as PreparePythonEnv says (a failed install is kInvalidJob, exit 65).
Result<std::unique_ptr<PythonEnv>> PreparePythonEnvironment(
    const RunContext& ctx, const JobConfig& job, const std::vector<std::string>& environment,
    const std::string& run_directory);

// The ranks' environment in `env`: its bin first on PATH, VIRTUAL_ENV (a venv) or
// CONDA_PREFIX (conda) set. `env` is "NAME=value" entries.
void UsePythonEnv(const PythonEnv& python, std::vector<std::string>* env);

}  // namespace trainrun
