#include "runtime/run/tensorflow_config.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "base/field_errors.h"
#include "base/field_suggest.h"

namespace trainrun {
namespace {

// The type and index of task k in the dealing order: chief, ps..., workers...
TfTask TaskAt(const TfRoles& roles, int k) {
  if (k < roles.chief) return {"chief", k};
  if (k < roles.chief + roles.ps) return {"ps", k - roles.chief};
  return {"worker", k - roles.chief - roles.ps};
}

}  // namespace

std::string TfRoles::Describe() const {
  std::string text;
  if (chief > 0) text = "1 chief + ";
  return text + fmt::format("{} parameter server{} + {} worker{}", ps, ps == 1 ? "" : "s", workers,
                            workers == 1 ? "" : "s");
}

void ParseTensorFlowSection(const nlohmann::json& section, const std::string& pointer,
                            TensorFlowConfig* out, FieldErrors* errors) {
  if (!section.is_object()) {
    errors->Add(pointer, fmt::format("must be an object, got {}", JsonTypeName(section)));
    return;
  }
  for (const auto& [name, member] :
       MatchFields(section, pointer, {"workerCount", "parameterServerCount", "chief"}, errors)) {
    const nlohmann::json& v = *member.value;
    const std::string& at = member.pointer;
    if (v.is_null()) continue;
    if (name == "chief") {
      if (!v.is_boolean()) {
        errors->Add(at, fmt::format("must be true or false, got {}", JsonTypeName(v)));
      } else {
        out->chief = v.get<bool>();
      }
      continue;
    }
    // Azure ML allows 0 parameter servers (then nothing needs stopping); a job
    // needs at least one worker.
    const int min = name == "workerCount" ? 1 : 0;
    // Checked on the JSON value: 2^64-1 is an unsigned JSON number.
    int64_t value = -1;
    if (v.is_number_unsigned()) {
      if (v.get<uint64_t>() <= kMaxTfTasks) value = static_cast<int64_t>(v.get<uint64_t>());
    } else if (v.is_number_integer()) {
      value = v.get<int64_t>();
    }
    if (value < min || value > kMaxTfTasks) {
      errors->Add(
          at, fmt::format("must be an integer from {} to {}, got {}", min, kMaxTfTasks, v.dump()));
      continue;
    }
    if (name == "workerCount") {
      out->worker_count = static_cast<int>(value);
    } else {
      out->parameter_server_count = static_cast<int>(value);
    }
  }
}

std::vector<TfTask> TfTasksOnNode(const TfRoles& roles, int node_count, int node_rank) {
  std::vector<TfTask> tasks;
  if (node_count < 1) return tasks;
  for (int k = node_rank; k < roles.total(); k += node_count) tasks.push_back(TaskAt(roles, k));
  return tasks;
}

}  // namespace trainrun
