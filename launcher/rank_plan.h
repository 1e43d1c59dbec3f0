// Planning this node's ranks for `trainrun run` (run_command.h), shared by
// Preparing (run_prepare.h) and --dry-run (dry_run.h): the binding plan, then each
// rank's command, environment, working directory and binding. Internal to the
// launcher.
#pragma once

#include <string>
#include <vector>

#include "base/free_port.h"
#include "launcher/cluster_run.h"
#include "launcher/node_binding.h"
#include "launcher/run_options.h"
#include "runtime/cluster/cluster_discovery.h"
#include "runtime/cluster/rendezvous.h"
#include "runtime/process/supervisor.h"
#include "runtime/report/reporter.h"
#include "runtime/run/data_refs.h"
#include "runtime/run/job_config.h"
#include "runtime/run/python_env.h"
#include "runtime/run/run_layout.h"

namespace trainrun {

// trainrun's environment as the ranks inherit it: all of it but the job token,
// which is trainrun's, and the variables of the launch that started trainrun
// itself (srun's step and task, PMI, an outer mpirun: scheduler_env.h).
std::vector<std::string> EnvironmentForRanks();

// The binding plan, and with it this node's rank count (--topology-xml, else this
// machine). Reports its notes (Info) and warnings. Fails when the job's binding or
// rank count cannot be planned. On a multi-node job it is planned before the
// rendezvous, which needs every node's count.
Result<NodeBinding> PlanBinding(const RunOptions& options, const JobConfig& job,
                                Reporter* reporter);

// What PlanRanks needs. Nothing is owned.
struct RankPlanRequest {
  const RunOptions& options;
  const JobConfig& job;
  const Placement& placement;
  const ClusterRun* cluster;  // the rendezvous' assignment; null on one node
  const NodeBinding& binding;
  const LocalRunLayout& layout;
  const DataPreparer& data;  // where data not yet prepared will be
  const std::vector<PreparedData>& prepared_data;
  // The job's Python environment: `script` runs with its python, and every rank gets
  // its bin first on PATH. Null: the image's interpreter as it is.
  const PythonEnv* python_env = nullptr;
  // A dry run neither checks the binding against this machine nor picks ports.
  bool for_dry_run = false;
};

struct RankPlan {
  // The job's ranks over the nodes: from the rendezvous, else this node alone (a
  // dry run of a multi-node job: as if every node ran as many ranks as this one).
  JobAssignment assignment;
  int master_port = 0;  // 0 in a dry run
  // On one node, the port stays bound from its choice until RunRanks releases
  // it just before the ranks start (on several, the head's session holds it).
  HeldPort master_port_hold;
  std::vector<RankLaunch> launches;  // this node's ranks; no log pipes yet
  std::vector<std::string> command;  // the ranks' argv, redacted (run.json)
};

// Plans this node's ranks: placeholders expanded, each rank's environment merged
// (notes reported as Info, conflicts as warnings), CPUs and memory nodes bound.
// Fails when the binding does not fit this machine, no free port is found, or a
// placeholder cannot be expanded.
Result<RankPlan> PlanRanks(const RankPlanRequest& request, Reporter* reporter);

}  // namespace trainrun
