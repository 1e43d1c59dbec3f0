// A ParameterServer job's TensorFlow roles: their counts once the node count is
// known (the placement rules are in runtime/run/tensorflow_config.h), and the
// TF_CONFIG of every process: its chief, ps or worker task at its node's address
// and the port its node picked for that local rank.
#pragma once

#include <string>

#include "base/status.h"
#include "runtime/cluster/rendezvous.h"
#include "runtime/run/job_config.h"
#include "runtime/run/tensorflow_config.h"

namespace trainrun {

// The roles of `job` (communicator ParameterServer) on `node_count` nodes (the
// job's, as the scheduler or nodeCount says). kInvalidJob naming the job file and
// the fields when the counts cannot be placed (tensorflow_config.h).
Result<TfRoles> ResolveTfRoles(const JobConfig& job, int node_count);

// For communicator ParameterServer: resolves the roles into job->tensorflow.roles
// and sets job->process_count_per_node to the number of tasks node `node_rank`
// runs. Other communicators: nothing. Fails as ResolveTfRoles.
Status ApplyTfRoles(JobConfig* job, int node_count, int node_rank);

// The task of global `rank` in `job`. kInternal when no node holds the rank or the
// placement gives its node fewer processes.
Result<TfTask> TfTaskOf(const JobAssignment& job, const TfRoles& roles, int rank);

// {"cluster": {"chief": [...], "ps": [...], "worker": [...]}, "task": {"type",
// "index"}} for global `rank` (a role with no task is left out of "cluster"; a
// port a node did not pick, as in a dry run, is 0). kInternal when a node of
// `job` runs another number of processes than the placement gives it (the nodes
// disagree on the job, which the rendezvous's job digest rules out).
Result<std::string> TfConfigWithRoles(const JobAssignment& job, const TfRoles& roles, int rank);

}  // namespace trainrun
