#include "runtime/process/rank_env.h"

#include <unistd.h>

#include <fmt/format.h>

#include "base/redact.h"

extern char** environ;

namespace trainrun {

std::vector<TrainrunVar> RankVariables(const RankContext& c) {
  using K = TrainrunVar::Kind;
  std::vector<TrainrunVar> vars = {
      {"RANK", std::to_string(c.rank), K::kIdentity},
      {"WORLD_SIZE", std::to_string(c.world_size), K::kIdentity},
      {"LOCAL_RANK", std::to_string(c.local_rank), K::kIdentity},
      {"LOCAL_WORLD_SIZE", std::to_string(c.local_world_size), K::kIdentity},
      {"NODE_RANK", std::to_string(c.node_rank), K::kIdentity},
      {"GROUP_RANK", std::to_string(c.node_rank), K::kIdentity},
      {"MASTER_ADDR", c.master_addr, K::kIdentity},
      {"MASTER_PORT", std::to_string(c.master_port), K::kIdentity},
      {"TRAINRUN_RUN_ID", c.run_id, K::kIdentity},
      {"TRAINRUN_EXPERIMENT_NAME", c.experiment, K::kIdentity},
      {"TRAINRUN_OUTPUTS_DIR", c.outputs_dir, K::kIdentity},
      {"TRAINRUN_LOGS_DIR", c.logs_dir, K::kIdentity},
      {"TRAINRUN_NODE_COUNT", std::to_string(c.node_count), K::kIdentity},
      {"TRAINRUN_ATTEMPT", std::to_string(c.attempt), K::kIdentity},
      // torchrun's names for the same: restarts so far, and the most there may be.
      {"TORCHELASTIC_RESTART_COUNT", std::to_string(c.attempt - 1), K::kIdentity},
      {"TORCHELASTIC_MAX_RESTARTS", std::to_string(c.max_restarts), K::kIdentity},
      {"AZUREML_RUN_ID", c.run_id, K::kIdentity},
      {"AZUREML_EXPERIMENT_NAME", c.experiment, K::kIdentity},
      // Python buffers stdout when it is a pipe; unbuffered, a line reaches the log
      // as it is printed and is not lost if the rank is killed.
      {"PYTHONUNBUFFERED", "1", K::kDefault},
      // CUDA numbers devices by speed unless told otherwise; trainrun's plan and
      // nvidia-smi number them by PCI bus id.
      {"CUDA_DEVICE_ORDER", "PCI_BUS_ID", K::kDefault},
  };
  for (const auto& [name, path] : c.data_paths) {
    vars.push_back({"AZUREML_DATAREFERENCE_" + name, path, K::kIdentity});
    auto extra = c.data_env_names.find(name);
    if (extra != c.data_env_names.end() && !extra->second.empty()) {
      vars.push_back({extra->second, path, K::kIdentity});
    }
  }
  return vars;
}

void SetAttemptVariables(int attempt, const std::vector<std::pair<std::string, std::string>>& job,
                         std::vector<std::string>* env) {
  const std::pair<std::string, std::string> values[] = {
      {"TRAINRUN_ATTEMPT", std::to_string(attempt)},
      {"TORCHELASTIC_RESTART_COUNT", std::to_string(attempt - 1)}};
  for (const auto& [name, value] : values) {
    bool from_job = false;
    for (const auto& set : job) from_job = from_job || set.first == name;
    if (from_job) continue;
    const std::string prefix = name + "=";
    bool found = false;
    for (std::string& entry : *env) {
      if (entry.rfind(prefix, 0) == 0) {
        entry = prefix + value;
        found = true;
      }
    }
    if (!found) env->push_back(prefix + value);
  }
}

MergedEnvironment MergeEnvironment(const std::vector<std::string>& container,
                                   const std::vector<std::pair<std::string, std::string>>& job,
                                   const std::vector<TrainrunVar>& trainrun) {
  MergedEnvironment merged;
  std::map<std::string, std::string> env = EnvironmentMap(container);
  std::map<std::string, std::string> from_job(job.begin(), job.end());

  for (const TrainrunVar& var : trainrun) {
    auto in_job = from_job.find(var.name);
    auto in_container = env.find(var.name);
    if (in_job != from_job.end()) {
      if (in_job->second == var.value) continue;
      std::string message =
          fmt::format("{}={} from the job file kept; trainrun would have set {}", var.name,
                      RedactValue(var.name, in_job->second), RedactValue(var.name, var.value));
      if (var.kind == TrainrunVar::Kind::kIdentity) {
        merged.warnings.push_back(message + " (every rank gets the same value)");
      } else {
        merged.notes.push_back(message);
      }
      continue;
    }
    if (in_container != env.end() && in_container->second != var.value) {
      if (var.kind == TrainrunVar::Kind::kDefault) {
        merged.notes.push_back(fmt::format(
            "{}={} from the environment kept; trainrun would have set {}", var.name,
            RedactValue(var.name, in_container->second), RedactValue(var.name, var.value)));
        continue;
      }
      merged.notes.push_back(
          fmt::format("{}={} from the environment replaced by trainrun's per-rank value", var.name,
                      RedactValue(var.name, in_container->second)));
    }
    env[var.name] = var.value;
  }
  for (const auto& [name, value] : job) env[name] = value;

  merged.entries.reserve(env.size());
  for (const auto& [name, value] : env) merged.entries.push_back(name + "=" + value);
  return merged;
}

std::vector<std::string> CurrentEnvironment() {
  std::vector<std::string> entries;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) entries.emplace_back(*e);
  return entries;
}

std::map<std::string, std::string> EnvironmentMap(const std::vector<std::string>& entries) {
  std::map<std::string, std::string> env;
  for (const std::string& entry : entries) {
    size_t eq = entry.find('=');
    if (eq != std::string::npos && eq > 0) env[entry.substr(0, eq)] = entry.substr(eq + 1);
  }
  return env;
}

}  // namespace trainrun
