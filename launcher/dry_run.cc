// `trainrun run --dry-run`: the launch plan, printed; nothing is created or started.
#include "launcher/run_pipeline.h"

namespace trainrun {

namespace fs = std::filesystem;
using nlohmann::json;

int RunPipeline::DryRun() {
  Status planned = PlanRanks(/*for_dry_run=*/true);
  if (!planned.ok()) {
    reporter_.Error(planned.message());
    return ExitCodeFor(planned);
  }
  const std::vector<std::string> container = CurrentEnvironment();
  std::set<std::string> inherited(container.begin(), container.end());
  std::string text = "# trainrun dry run: nothing is created or started\n";
  text += fmt::format("run id:         {}\n", job_.run_id);
  text += fmt::format("experiment:     {}\n", job_.experiment_name);
  std::error_code ec;
  text += fmt::format("job file:       {}\n", fs::absolute(job_.file, ec).string());
  text += fmt::format("run history:    {}/{}\n", store_->Uri(),
                      RunKey{job_.experiment_name, job_.run_id}.Prefix());
  text += fmt::format("run directory:  {}\n", layout_.root);
  text += fmt::format("source:         {} (copied to {})\n", job_.source_directory, layout_.wd());
  if (placement_.node_count > 1) {
    text += fmt::format("nodes:          {} (this node: {}; from {})\n", placement_.node_count,
                        node_rank_, placement_.source);
  } else {
    text += fmt::format("nodes:          1 (this node: 0)\n");
  }
  if (!placement_.reason.empty()) text += fmt::format("placement:      {}\n", placement_.reason);
  for (const std::string& note : placement_.notes) text += fmt::format("note:           {}\n", note);
  text += fmt::format("ranks:          {} ({})\n", process_count(), process_count_source());
  if (placement_.node_count > 1) {
    text += fmt::format("world size:     {} (if every node runs {} rank(s))\n", assignment_.world_size,
                        process_count());
  }
  text += fmt::format("communicator:   {}\n", CommunicatorName(job_.communicator));
  if (placement_.node_count > 1) {
    text += fmt::format("master:         the head ({}), MASTER_PORT picked free on it at rendezvous; "
                        "control port {}\n",
                        placement_.head.empty() ? "this node" : placement_.head, options_.control_port);
  } else {
    text += "master:         127.0.0.1, MASTER_PORT picked free at launch\n";
  }
  if (job_.max_run_duration_seconds) {
    text += fmt::format("time limit:     {} s\n", *job_.max_run_duration_seconds);
  }
  text += fmt::format("grace period:   {} s\n", options_.grace_period_seconds);
  for (const DataReference& ref : job_.data) {
    text += fmt::format("data.{}:  {} {} -> {}\n", ref.name, DataMechanismName(ref.mechanism),
                        RedactUri(ref.uri), data_->PlannedPath(ref));
  }
  text += "\n" + binding_.Table() + "\n";
  for (const RankLaunch& launch : launches_) {
    text += fmt::format("rank {}:\n  command: {}\n  cwd:     {}\n", launch.rank,
                        fmt::join(record_.command, " "), launch.spec.cwd);
    text += fmt::format("  binding: CPUs {}, memory on NUMA node(s) {}\n",
                        launch.spec.cpus.empty() ? "not bound" : gpu::FormatIdList(launch.spec.cpus),
                        launch.spec.memory_nodes.empty() ? "not bound"
                                                         : gpu::FormatIdList(launch.spec.memory_nodes));
    text += "  environment set by trainrun or the job file:\n";
    for (const std::string& entry : launch.spec.env) {
      if (inherited.count(entry) != 0) continue;
      size_t eq = entry.find('=');
      text += fmt::format("    {}={}\n", entry.substr(0, eq),
                          RedactValue(entry.substr(0, eq), entry.substr(eq + 1)));
    }
  }
  out_->Write(std::move(text), /*droppable=*/false);
  return kExitOk;
}

}  // namespace trainrun
