// The `tensorflow` section of a job file (Azure ML's TensorflowConfiguration):
// how many workers and parameter servers a `ParameterServer` job runs, and
// whether one process is the chief. Read by ParseJobText (job_config.h); the
// roles themselves are laid out over the nodes by runtime/cluster/tf_roles.h.
//
// clang-format off
//   tensorflow.workerCount          workers; default: see tf_roles.h
//   tensorflow.parameterServerCount parameter servers; default 1
//   tensorflow.chief                true: one more process, TF_CONFIG's "chief"
//                                   (trainrun's field; Azure ML has none)
// clang-format on
//
// Azure ML writes this section into every RunConfiguration, whatever the
// communicator; it only means something with communicator ParameterServer.
//
// Placement. The tasks, in the order chief, ps 0..P-1, worker 0..W-1, are dealt
// round-robin over the nodes: task k runs on node k mod nodeCount. A node runs
// its tasks in that order as local ranks 0, 1, ... (so RANK stays node-major).
// Parameter servers thus land one per node on the first nodes, as Batch AI and
// Azure ML placed them, and nodes differ by at most one process.
//
// clang-format off
//   2 nodes, 1 ps, 2 workers        node 0: ps 0, worker 1    node 1: worker 0
//   2 nodes, chief, 1 ps, 2 workers node 0: chief, worker 0   node 1: ps 0, worker 1
// clang-format on
//
// Counts (ResolveTfRoles, runtime/cluster/tf_roles.h):
// - parameterServerCount: default 1; chief: 0 or 1 (tensorflow.chief);
// - workerCount: default nodeCount x processCountPerNode - ps - chief when
//   processCountPerNode is given, else nodeCount (one worker per node);
// - with processCountPerNode given, chief + ps + workers must equal
//   nodeCount x processCountPerNode; without it, at least nodeCount (a node with
//   nothing to run is a mistake).
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "base/field_errors.h"

namespace trainrun {

constexpr int kMaxTfTasks = 65536;

struct TfRoles {
  int chief = 0;  // 0 or 1
  int ps = 0;
  int workers = 0;
  int total() const { return chief + ps + workers; }
  // "1 chief + 2 parameter servers + 4 workers"
  std::string Describe() const;
};

// One process's TF_CONFIG task.
struct TfTask {
  std::string type;  // "chief", "ps" or "worker"
  int index = 0;
  // Parameter servers never end by themselves: trainrun stops them once every
  // chief and worker of the job has exited 0.
  bool server() const { return type == "ps"; }
};

struct TensorFlowConfig {
  std::optional<int> worker_count;            // none: derived (see above)
  std::optional<int> parameter_server_count;  // none: 1
  bool chief = false;
  // Set by ApplyTfRoles (runtime/cluster/tf_roles.h) once the node count is known;
  // none for other communicators.
  std::optional<TfRoles> roles;
};

// Reads `section` (the value of /tensorflow, found at `pointer`) into `out`.
// Field names match case-insensitively. Each problem is added to `errors`, naming
// its field: an unknown field (with the nearest known name), one given twice, a
// value that is not an integer in range or not a boolean. Never throws.
void ParseTensorFlowSection(const nlohmann::json& section, const std::string& pointer,
                            TensorFlowConfig* out, FieldErrors* errors);

// The tasks node `node_rank` of `node_count` runs, in local rank order.
std::vector<TfTask> TfTasksOnNode(const TfRoles& roles, int node_count, int node_rank);

}  // namespace trainrun
