#include "launcher/rank_plan.h"

#include <fmt/format.h>

#include "base/free_port.h"
#include "base/net_util.h"
#include "base/redact.h"
#include "launcher/python_env_step.h"
#include "launcher/rank_python.h"
#include "runtime/cluster/communicator_env.h"
#include "runtime/cluster/control_auth.h"
#include "runtime/process/rank_env.h"
#include "runtime/process/scheduler_env.h"
#include "runtime/run/placeholders.h"

namespace trainrun {

std::vector<std::string> EnvironmentForRanks() {
  std::vector<std::string> env = WithoutLauncherVariables(CurrentEnvironment());
  const std::string token_prefix = std::string(kJobTokenVariable) + "=";
  std::erase_if(env, [&](const std::string& e) { return e.rfind(token_prefix, 0) == 0; });
  return env;
}

Result<NodeBinding> PlanBinding(const RunOptions& options, const JobConfig& job,
                                Reporter* reporter) {
  NodeBindingRequest request;
  request.topology_xml = options.topology_xml;
  request.mode =
      job.binding == BindingPolicy::kNone ? gpu::BindingMode::kNone : gpu::BindingMode::kAuto;
  request.process_count = job.process_count_per_node;
  request.gpus_per_process = job.gpus_per_process;
  request.environment = CurrentEnvironment();
  request.job_environment = job.environment_variables;
  TR_ASSIGN_OR_RETURN(NodeBinding binding, PlanNodeBinding(request));
  for (const std::string& note : binding.AllNotes()) {
    reporter->Info(fmt::format("binding: {}", note));
  }
  for (const std::string& warning : binding.AllWarnings()) {
    reporter->Warning(fmt::format("binding: {}", warning));
  }
  if (job.azureml.use_gpu.value_or(false) && binding.plan.gpus_per_process == 0) {
    reporter->Warning(
        fmt::format("{}: useGpu is true but this node has no GPU for the job; the "
                    "ranks run without one",
                    job.file));
  }
  return binding;
}

namespace {

// The job's ranks over the nodes, and the master port (see RankPlan::assignment).
Status PlanAssignment(const RankPlanRequest& request, RankPlan* plan) {
  const JobConfig& job = request.job;
  const Placement& placement = request.placement;
  const int process_count = request.binding.plan.process_count;
  if (request.cluster) {
    plan->assignment = request.cluster->assignment();
    plan->master_port = plan->assignment.master_port;
  } else if (placement.node_count > 1) {
    // A dry run of a multi-node job: the plan as it will be if every node runs as
    // many ranks as this one.
    plan->assignment = SingleNodeAssignment(job.run_id, LocalHostName(), process_count, 0, {});
    plan->assignment.master_addr = placement.head.empty() ? "<this node>" : placement.head;
    // A ParameterServer job's nodes run their share of the roles, not all alike.
    const std::optional<TfRoles>& roles = job.tensorflow.roles;
    const auto count_on = [&](int n) {
      return roles ? static_cast<int>(TfTasksOnNode(*roles, placement.node_count, n).size())
                   : process_count;
    };
    plan->assignment.nodes[0].process_count = count_on(0);
    int next_rank = count_on(0);
    for (int n = 1; n < placement.node_count; ++n) {
      NodeSlot node = plan->assignment.nodes[0];
      node.node_rank = n;
      node.first_rank = next_rank;
      node.process_count = count_on(n);
      next_rank += node.process_count;
      plan->assignment.nodes.push_back(node);
    }
    plan->assignment.world_size = next_rank;
  } else {
    std::vector<int> tf_ports;
    if (!request.for_dry_run) {
      TR_ASSIGN_OR_RETURN(plan->master_port_hold, HoldFreePort("0.0.0.0"));
      plan->master_port = plan->master_port_hold.port();
      if (NeedsTfPorts(job.communicator)) {
        TR_ASSIGN_OR_RETURN(tf_ports, FreePorts(process_count));
      }
    }
    plan->assignment = SingleNodeAssignment(job.run_id, LocalHostName(), process_count,
                                            plan->master_port, tf_ports);
  }
  return Status::Ok();
}

}  // namespace

Result<RankPlan> PlanRanks(const RankPlanRequest& request, Reporter* reporter) {
  const JobConfig& job = request.job;
  const LocalRunLayout& layout = request.layout;
  const NodeBinding& binding = request.binding;
  const int node_rank = request.placement.node_rank;
  const int process_count = binding.plan.process_count;
  if (!request.for_dry_run) {
    TR_RETURN_IF_ERROR(CheckBindingFitsThisMachine(binding, request.options.topology_xml));
  }
  RankPlan plan;
  TR_RETURN_IF_ERROR(PlanAssignment(request, &plan));
  const JobAssignment& assignment = plan.assignment;
  const NodeSlot& me = assignment.nodes.at(node_rank);

  PlaceholderValues values;
  values.outputs = layout.outputs();
  RankContext context;
  context.world_size = assignment.world_size;
  context.local_world_size = process_count;
  context.node_rank = node_rank;
  context.node_count = static_cast<int>(assignment.nodes.size());
  context.master_addr = assignment.master_addr;
  context.master_port = assignment.master_port;
  context.run_id = job.run_id;
  context.experiment = job.experiment_name;
  context.outputs_dir = layout.outputs();
  context.logs_dir = layout.logs();
  context.max_restarts = job.restarts.max_restarts;
  for (const DataReference& ref : job.data) {
    std::string path = request.data.PlannedPath(ref);
    for (const PreparedData& p : request.prepared_data) {
      if (p.name == ref.name) path = p.path;
    }
    values.data[ref.name] = path;
    context.data_paths.emplace_back(ref.name, path);
    context.data_env_names[ref.name] = ref.environment_variable_name;
  }

  std::vector<std::string> argv;
  if (!job.script.empty()) {
    argv.push_back(request.python_env != nullptr  ? request.python_env->python()
                   : job.interpreter_path.empty() ? kDefaultPythonInterpreter
                                                  : job.interpreter_path);
    argv.push_back(job.script);
  } else {
    argv = job.command;
  }
  argv.insert(argv.end(), job.arguments.begin(), job.arguments.end());
  for (std::string& arg : argv) {
    TR_ASSIGN_OR_RETURN(arg, ExpandPlaceholders(arg, values));
  }

  std::vector<std::string> container = binding.ContainerEnvironment(EnvironmentForRanks());
  if (request.python_env != nullptr) UsePythonEnv(*request.python_env, &container);
  const std::map<std::string, std::string> container_map = EnvironmentMap(container);
  std::vector<std::string> env_warnings;
  const std::string python_dir = TrainrunPythonDir();
  for (int local = 0; local < process_count; ++local) {
    context.rank = me.first_rank + local;
    context.local_rank = local;
    std::vector<TrainrunVar> vars = RankVariables(context);
    // Where python/trainrun appends each rank's metrics (runtime/run/metrics.h).
    vars.push_back({"TRAINRUN_METRICS_DIR", layout.metrics(), TrainrunVar::Kind::kIdentity});
    if (job.checkpoints.enabled) {
      // The checkpoint folder (run_checkpoints.h), the same for every rank.
      vars.push_back({"TRAINRUN_CHECKPOINT_DIR", layout.wd() + "/" + job.checkpoints.path,
                      TrainrunVar::Kind::kIdentity});
    }
    for (TrainrunVar& v : SchedulerRankVariables(container_map, context)) {
      vars.push_back(std::move(v));
    }
    for (auto& [name, value] : binding.RankEnvironment(local)) vars.push_back({name, value});
    TR_ASSIGN_OR_RETURN(std::vector<TrainrunVar> communicator_vars,
                        CommunicatorVariables(job.communicator, assignment, node_rank, local,
                                              job.tensorflow.roles));
    for (TrainrunVar& v : communicator_vars) vars.push_back(std::move(v));
    MergedEnvironment env = MergeEnvironment(container, job.environment_variables, vars);
    AppendPythonPath(&env.entries, python_dir);
    if (local == 0) {
      reporter->Info(python_dir.empty()
                         ? "trainrun's Python modules (trainrun, azureml) were not found: "
                           "metrics are not recorded"
                         : fmt::format("PYTHONPATH ends with {}: trainrun's Python modules "
                                       "(metrics, the azureml stand-in)",
                                       python_dir));
      for (const std::string& note : env.notes) reporter->Info(note);
      env_warnings = env.warnings;
    }
    RankLaunch launch;
    launch.rank = context.rank;
    if (job.tensorflow.roles) {
      TR_ASSIGN_OR_RETURN(TfTask task, TfTaskOf(assignment, *job.tensorflow.roles, context.rank));
      launch.server = task.server();
    }
    launch.spec.argv = argv;
    launch.spec.env = std::move(env.entries);
    launch.spec.cwd = layout.wd();
    launch.spec.cpus = binding.plan.ranks[local].cpus;
    launch.spec.memory_nodes = binding.plan.ranks[local].memory_nodes;
    plan.launches.push_back(std::move(launch));
  }
  for (const std::string& w : env_warnings) reporter->Warning(w);
  plan.command = RedactArguments(argv);
  return plan;
}

}  // namespace trainrun
