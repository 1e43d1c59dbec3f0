// Preparing: the binding plan, each rank's command and environment, the source
// snapshot and the data references.
#include "launcher/run_pipeline.h"

namespace trainrun {

namespace fs = std::filesystem;
using nlohmann::json;

// The binding plan, and with it this node's rank count: before the rendezvous on a
// multi-node job, which needs every node's count.
Status RunPipeline::PlanBinding() {
  if (binding_planned_) return Status::Ok();
  NodeBindingRequest binding;
  binding.topology_xml = options_.topology_xml;
  binding.mode = job_.binding == BindingPolicy::kNone ? gpu::BindingMode::kNone : gpu::BindingMode::kAuto;
  binding.process_count = job_.process_count_per_node;
  binding.gpus_per_process = job_.gpus_per_process;
  binding.environment = CurrentEnvironment();
  binding.job_environment = job_.environment_variables;
  TR_ASSIGN_OR_RETURN(binding_, PlanNodeBinding(binding));
  for (const std::string& note : binding_.AllNotes()) reporter_.Info(fmt::format("binding: {}", note));
  for (const std::string& warning : binding_.AllWarnings()) reporter_.Warning(fmt::format("binding: {}", warning));
  binding_planned_ = true;
  return Status::Ok();
}

Status RunPipeline::PlanRanks(bool for_dry_run) {
  TR_RETURN_IF_ERROR(PlanBinding());
  if (!for_dry_run) TR_RETURN_IF_ERROR(CheckBindingFitsThisMachine(binding_, options_.topology_xml));
  if (cluster_) {
    assignment_ = cluster_->assignment();
    master_port_ = assignment_.master_port;
  } else if (placement_.node_count > 1) {
    // A dry run of a multi-node job: the plan as it will be if every node runs as
    // many ranks as this one.
    assignment_ = SingleNodeAssignment(job_.run_id, LocalHostName(), process_count(), 0, {});
    assignment_.master_addr = placement_.head.empty() ? "<this node>" : placement_.head;
    for (int n = 1; n < placement_.node_count; ++n) {
      NodeSlot node = assignment_.nodes[0];
      node.node_rank = n;
      node.first_rank = n * process_count();
      assignment_.nodes.push_back(node);
    }
    assignment_.world_size = process_count() * placement_.node_count;
  } else {
    std::vector<int> tf_ports;
    if (!for_dry_run) {
      TR_ASSIGN_OR_RETURN(master_port_, FindFreePort("0.0.0.0"));
      if (job_.communicator == Communicator::kTensorFlow) {
        TR_ASSIGN_OR_RETURN(tf_ports, FreePorts(process_count()));
      }
    }
    assignment_ = SingleNodeAssignment(job_.run_id, LocalHostName(), process_count(), master_port_, tf_ports);
  }
  const NodeSlot& me = assignment_.nodes.at(node_rank_);

  PlaceholderValues values;
  values.outputs = layout_.outputs();
  RankContext context;
  context.world_size = assignment_.world_size;
  context.local_world_size = process_count();
  context.node_rank = node_rank_;
  context.node_count = static_cast<int>(assignment_.nodes.size());
  context.master_addr = assignment_.master_addr;
  context.master_port = assignment_.master_port;
  context.run_id = job_.run_id;
  context.experiment = job_.experiment_name;
  context.outputs_dir = layout_.outputs();
  context.logs_dir = layout_.logs();
  for (const DataReference& ref : job_.data) {
    std::string path = data_->PlannedPath(ref);
    for (const PreparedData& p : prepared_data_) {
      if (p.name == ref.name) path = p.path;
    }
    values.data[ref.name] = path;
    context.data_paths.emplace_back(ref.name, path);
    context.data_env_names[ref.name] = ref.environment_variable_name;
  }

  std::vector<std::string> argv;
  if (!job_.script.empty()) {
    argv.push_back(job_.interpreter_path.empty() ? kDefaultPythonInterpreter : job_.interpreter_path);
    argv.push_back(job_.script);
  } else {
    argv = job_.command;
  }
  argv.insert(argv.end(), job_.arguments.begin(), job_.arguments.end());
  for (std::string& arg : argv) {
    TR_ASSIGN_OR_RETURN(arg, ExpandPlaceholders(arg, values));
  }

  std::vector<std::string> container = binding_.ContainerEnvironment(EnvironmentForRanks());
  launches_.clear();
  for (int local = 0; local < process_count(); ++local) {
    context.rank = me.first_rank + local;
    context.local_rank = local;
    std::vector<TrainrunVar> vars = RankVariables(context);
    for (auto& [name, value] : binding_.RankEnvironment(local)) vars.push_back({name, value});
    for (TrainrunVar& v : CommunicatorVariables(job_.communicator, assignment_, node_rank_, local)) {
      vars.push_back(std::move(v));
    }
    MergedEnvironment env = MergeEnvironment(container, job_.environment_variables, vars);
    if (local == 0) {
      for (const std::string& note : env.notes) reporter_.Info(note);
      env_warnings_ = env.warnings;
    }
    RankLaunch launch;
    launch.rank = context.rank;
    launch.spec.argv = argv;
    launch.spec.env = std::move(env.entries);
    launch.spec.cwd = layout_.wd();
    launch.spec.cpus = binding_.plan.ranks[local].cpus;
    launch.spec.memory_nodes = binding_.plan.ranks[local].memory_nodes;
    launches_.push_back(std::move(launch));
  }
  for (const std::string& w : env_warnings_) reporter_.Warning(w);
  for (const std::string& a : argv) record_.command.push_back(RedactValue("", a));
  return Status::Ok();
}

Status RunPipeline::Prepare() {
  Result<SnapshotStats> snapshot = CopySnapshot(job_.source_directory, layout_.wd(), {layout_.root});
  if (!snapshot.ok()) return snapshot.status();
  const SnapshotStats& stats = *snapshot;
  record_.source = {{"directory", job_.source_directory},
                    {"files", stats.files},
                    {"bytes", stats.bytes},
                    {"ignored", stats.ignored},
                    {"ignoreFile", stats.ignore_file}};
  reporter_.Info(fmt::format("snapshot of {}: {} file(s), {}, {} ignored{}", job_.source_directory,
                             stats.files, FormatBytes(stats.bytes), stats.ignored,
                             stats.ignore_file.empty() ? "" : " by " + stats.ignore_file));
  if (stats.bytes > kSnapshotWarnBytes || stats.files > kSnapshotWarnFiles) {
    reporter_.Warning(fmt::format(
        "the source snapshot of {} is large ({} file(s), {}; limits {} files, {}): every run "
        "copies it; keep data out of sourceDirectory or list it in .amlignore",
        job_.source_directory, stats.files, FormatBytes(stats.bytes), kSnapshotWarnFiles,
        FormatBytes(kSnapshotWarnBytes)));
  }
  if (std::optional<GitInfo> git = ReadGitInfo(job_.source_directory)) {
    record_.source["git"] = {{"commit", git->commit},
                             {"branch", git->branch},
                             {"remote", git->remote},
                             {"dirty", git->dirty}};
  }
  TR_RETURN_IF_ERROR(MakeDirs(layout_.outputs()));
  TR_RETURN_IF_ERROR(MakeDirs(layout_.logs()));

  // The process set exists before the data: a FUSE mount's rclone is its child too.
  TR_ASSIGN_OR_RETURN(processes_, PosixProcessSet::Create());
  json data_record = json::array();
  for (const DataReference& ref : job_.data) {
    TR_ASSIGN_OR_RETURN(PreparedData prepared, data_->Prepare(ref, processes_.get()));
    json entry = {{"name", prepared.name},
                  {"mechanism", DataMechanismName(ref.mechanism)},
                  {"method", prepared.method},
                  {"source", RedactUri(prepared.source)},
                  {"path", prepared.path}};
    if (prepared.method == "download") {
      entry["files"] = prepared.files;
      entry["bytes"] = prepared.bytes;
      entry["downloadedFiles"] = prepared.downloaded_files;
      entry["downloadedBytes"] = prepared.downloaded_bytes;
      entry["cachedFiles"] = prepared.cached_files;
    }
    data_record.push_back(std::move(entry));
    prepared_data_.push_back(std::move(prepared));
  }
  record_.details["data"] = data_record;
  TR_RETURN_IF_ERROR(PlanRanks(/*for_dry_run=*/false));
  record_.details["processCountPerNode"] = process_count();
  record_.details["processCountSource"] = process_count_source();
  record_.details["masterPort"] = master_port_;
  record_.details["binding"] = binding_.Json();
  Status plan_file = WriteFileAtomic(
      fmt::format("{}/binding_node_{}.txt", layout_.system_logs(), node_rank_), binding_.Table());
  if (!plan_file.ok()) reporter_.Warning(plan_file.message());
  if (cluster_ && cluster_->is_head()) {
    for (const NodeSlot& node : assignment_.nodes) {
      record_.nodes.push_back({node.node_rank, node.host, node.process_count, node.pid,
                               node.node_rank == node_rank_ ? layout_.root : ""});
    }
  } else {
    record_.nodes.push_back({node_rank_, LocalHostName(), process_count(), getpid(), layout_.root});
  }
  reporter_.Info(fmt::format("{} rank(s) on this node ({}), MASTER_PORT {}", process_count(),
                             process_count_source(), master_port_));
  return Status::Ok();
}

}  // namespace trainrun
