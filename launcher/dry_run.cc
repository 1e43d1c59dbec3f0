#include "launcher/dry_run.h"

#include <filesystem>
#include <map>
#include <optional>
#include <set>

#include <fmt/format.h>

#include "base/fs_util.h"
#include "base/redact.h"
#include "gpu/affinity.h"
#include "launcher/exit_codes.h"
#include "launcher/rank_plan.h"
#include "runtime/process/rank_env.h"

namespace trainrun {

namespace fs = std::filesystem;

namespace {

// The binding (into *binding) and the ranks, as a run plans them but for the
// checks against this machine and the ports.
Result<RankPlan> Plan(const RunContext& ctx, const LoadedRun& run, const LocalRunLayout& layout,
                      const DataPreparer& data, std::optional<NodeBinding>* binding) {
  TR_ASSIGN_OR_RETURN(*binding, PlanBinding(ctx.options, run.job, ctx.reporter));
  return PlanRanks({.options = ctx.options,
                    .job = run.job,
                    .placement = run.placement,
                    .cluster = nullptr,
                    .binding = **binding,
                    .layout = layout,
                    .data = data,
                    .prepared_data = {},
                    .for_dry_run = true},
                   ctx.reporter);
}

// On a multi-node job, what only the rendezvous decides: the head's address as
// the nodes reach it, the port the head picks free, the interface each node
// reaches the head by, and what is built from them. A dry run starts no
// rendezvous, so it names these instead of guessing values.
// clang-format off
const std::map<std::string, std::string> kKnownAtRendezvous = {
    {"MASTER_ADDR",                "the head's address as most nodes reach it"},
    {"MASTER_PORT",                "picked free on the head"},
    {"NCCL_SOCKET_IFNAME",         "the interface this node reaches the head by"},
    {"GLOO_SOCKET_IFNAME",         "the interface this node reaches the head by"},
    {"AZ_BATCH_MASTER_NODE",       "MASTER_ADDR:MASTER_PORT"},
    {"AZ_BATCHAI_MPI_MASTER_NODE", "MASTER_ADDR"},
    {"TF_CONFIG",                  "every node's address and ports"},
};
// clang-format on

}  // namespace

int DryRun(const RunContext& ctx, const LoadedRun& run, const LocalRunLayout& layout) {
  const RunOptions& options = ctx.options;
  const JobConfig& job = run.job;
  const Placement& placement = run.placement;
  const DataPreparer data(fs::path(AbsolutePath(job.file)).parent_path().string(), layout.wd(),
                          layout.data(), ctx.reporter);
  std::optional<NodeBinding> planned_binding;
  Result<RankPlan> planned = Plan(ctx, run, layout, data, &planned_binding);
  if (!planned.ok()) {
    ctx.reporter->Error(planned.status().message());
    return ExitCodeFor(planned.status());
  }
  const NodeBinding& binding = *planned_binding;
  const RankPlan& plan = *planned;
  const int process_count = binding.plan.process_count;
  const std::vector<std::string> container = CurrentEnvironment();
  std::set<std::string> inherited(container.begin(), container.end());
  std::set<std::string> set_by_job;
  for (const auto& [name, value] : job.environment_variables) set_by_job.insert(name);
  std::string text = "# trainrun dry run: nothing is created or started\n";
  text += fmt::format("run id:         {}\n", job.run_id);
  text += fmt::format("experiment:     {}\n", job.experiment_name);
  text += fmt::format("job file:       {}\n", AbsolutePath(job.file));
  text += fmt::format("run history:    {}/{}\n", run.store->Uri(),
                      RunKey{job.experiment_name, job.run_id}.Prefix());
  text += fmt::format("run directory:  {}\n", layout.root);
  text += fmt::format("source:         {} (copied to {})\n", job.source_directory, layout.wd());
  if (placement.node_count > 1) {
    text += fmt::format("nodes:          {} (this node: {}; from {})\n", placement.node_count,
                        placement.node_rank, placement.source);
  } else {
    text += fmt::format("nodes:          1 (this node: 0)\n");
  }
  if (!placement.reason.empty()) text += fmt::format("placement:      {}\n", placement.reason);
  for (const std::string& note : placement.notes) {
    text += fmt::format("note:           {}\n", note);
  }
  text +=
      fmt::format("ranks:          {} ({})\n", process_count, binding.plan.process_count_source);
  if (placement.node_count > 1) {
    if (job.tensorflow.roles) {
      text += fmt::format("world size:     {} ({} dealt over the nodes)\n",
                          plan.assignment.world_size, job.tensorflow.roles->Describe());
    } else {
      text += fmt::format("world size:     {} (if every node runs {} rank(s))\n",
                          plan.assignment.world_size, process_count);
    }
  }
  text += fmt::format("communicator:   {}\n", CommunicatorName(job.communicator));
  if (placement.node_count > 1) {
    text += fmt::format(
        "master:         the head ({}), control port {} ({}); MASTER_ADDR, MASTER_PORT and "
        "the socket interfaces are known only at rendezvous\n",
        placement.head.empty() ? "this node" : placement.head, options.control_port,
        options.control_port_reason);
  } else {
    text += "master:         127.0.0.1, MASTER_PORT picked free at launch\n";
  }
  if (job.max_run_duration_seconds) {
    text += fmt::format("time limit:     {} s\n", *job.max_run_duration_seconds);
  }
  text += fmt::format("stopping:       {}\n", ctx.stop->Describe());
  for (const DataReference& ref : job.data) {
    text += fmt::format("data.{}:  {} {} -> {}\n", ref.name, DataMechanismName(ref.mechanism),
                        RedactUri(ref.uri), RedactUri(data.PlannedPath(ref)));
  }
  text += "\n" + binding.Table() + "\n";
  for (const RankLaunch& launch : plan.launches) {
    text += fmt::format("rank {}:\n  command: {}\n  cwd:     {}\n", launch.rank,
                        fmt::join(plan.command, " "), launch.spec.cwd);
    text +=
        fmt::format("  binding: CPUs {}, memory on NUMA node(s) {}\n",
                    launch.spec.cpus.empty() ? "not bound" : gpu::FormatIdList(launch.spec.cpus),
                    launch.spec.memory_nodes.empty() ? "not bound"
                                                     : gpu::FormatIdList(launch.spec.memory_nodes));
    text += "  environment set by trainrun or the job file:\n";
    for (const std::string& entry : launch.spec.env) {
      if (inherited.count(entry) != 0) continue;
      size_t eq = entry.find('=');
      const std::string name = entry.substr(0, eq);
      auto later = kKnownAtRendezvous.find(name);
      if (placement.node_count > 1 && later != kKnownAtRendezvous.end() &&
          !set_by_job.count(name)) {
        text += fmt::format("    {}=<known at rendezvous: {}>\n", name, later->second);
        continue;
      }
      text += fmt::format("    {}={}\n", name, RedactValue(name, entry.substr(eq + 1)));
    }
  }
  ctx.out->Write(ScrubSecrets(text), /*droppable=*/false);
  return kExitOk;
}

}  // namespace trainrun
