#include "launcher/run_command.h"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <memory>
#include <set>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "gpu/affinity.h"
#include "launcher/cluster_run.h"
#include "launcher/mpi_run.h"
#include "launcher/exit_codes.h"
#include "launcher/node_binding.h"
#include "launcher/terminal_reporter.h"
#include "launcher/version.h"
#include "runtime/buffered_reporter.h"
#include "runtime/communicator_env.h"
#include "runtime/data_refs.h"
#include "runtime/free_port.h"
#include "runtime/fs_util.h"
#include "runtime/history.h"
#include "runtime/job_config.h"
#include "runtime/log_pump.h"
#include "runtime/mpi_supervisor.h"
#include "runtime/placeholders.h"
#include "runtime/process_posix.h"
#include "runtime/rank_env.h"
#include "runtime/redact.h"
#include "runtime/run_id.h"
#include "runtime/run_layout.h"
#include "runtime/snapshot.h"
#include "runtime/supervisor.h"
#include "runtime/system_log.h"

namespace trainrun {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// How long the log pump may take to read what the ranks left in their pipes once
// they are gone; only a descendant that escaped its process group and still holds
// a pipe makes it wait this long.
constexpr auto kLogDrainTimeout = std::chrono::seconds(5);

std::string HostName() {
  char name[256] = {};
  gethostname(name, sizeof(name) - 1);
  return name;
}

// The container's count of OOM kills (cgroup v2), or -1 when it cannot be read.
int64_t CgroupOomKills() {
  std::ifstream events("/sys/fs/cgroup/memory.events");
  std::string key;
  int64_t value;
  while (events >> key >> value) {
    if (key == "oom_kill") return value;
  }
  return -1;
}

// A SIGTERM or SIGINT that arrived while preparing (they are blocked and wait in
// the signal queue until the supervisor reads them).
bool CancelPending() {
  sigset_t pending;
  sigpending(&pending);
  return sigismember(&pending, SIGTERM) == 1 || sigismember(&pending, SIGINT) == 1 ||
         sigismember(&pending, SIGHUP) == 1;
}

class RunPipeline {
 public:
  RunPipeline(const RunOptions& options, Console* out, Console* err)
      : options_(options), out_(out) {
    if (options.json_events) {
      console_reporter_ = std::make_unique<JsonLinesReporter>(err);
    } else {
      console_reporter_ = std::make_unique<TerminalReporter>(err, options.verbose);
    }
    reporter_.Add(console_reporter_.get());
    reporter_.Add(&warnings_);
    reporter_.Add(&early_);
  }

  int Execute();

 private:
  Status Load();
  void LayOut();
  Status PlanBinding();
  int DryRun();
  Status CreateRunDirectory();
  Status Prepare();
  Status PlanRanks(bool for_dry_run);
  // The process set, the log pump and each rank's pipes; nothing is started.
  Status SetUpProcesses();
  void RunRanks();
  int Finalize(int exit_code, RunStatus status);
  void Upload(UploadReport* report);
  // The folders that go to history besides outputs/ and system_logs/: local, key prefix.
  std::vector<std::pair<std::string, std::string>> LogDirs() const;
  void StartLiveUpload();
  void EnterPhase(RunStatus status);
  void SaveRecord();
  void ReportFailure();

  RunOptions options_;
  Console* out_;
  std::unique_ptr<Reporter> console_reporter_;
  std::unique_ptr<SystemLog> system_log_;
  WarningCollector warnings_;
  BufferedReporter early_{SystemClock()};  // until the system log exists
  MultiReporter reporter_;

  JobConfig job_;
  LocalRunLayout layout_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<RunHistory> history_;
  std::unique_ptr<HistoryUploader> uploader_;  // retries at Finalizing
  std::unique_ptr<LiveUploader> live_;         // logs while Running
  RunRecord record_;
  TimePoint phase_started_{};
  int node_rank_ = 0;
  int process_count_ = 1;
  std::string process_count_source_;
  int master_port_ = 0;
  std::unique_ptr<DataPreparer> data_;
  std::vector<PreparedData> prepared_data_;
  std::vector<RankLaunch> launches_;
  NodeBinding binding_;
  std::vector<std::string> env_warnings_;
  // Multi-node jobs (null on one node) and the ranks' layout over the nodes.
  std::unique_ptr<ClusterRun> cluster_;
  Placement placement_;
  JobAssignment assignment_;
  int gpu_count_ = 0;
  bool binding_planned_ = false;

  std::unique_ptr<PosixProcessSet> processes_;
  std::unique_ptr<LogPump> pump_;
  RankPipes mpirun_pipes_;  // the head of an MPI job: where mpirun's output goes
  SupervisionResult result_;
  bool ran_ = false;
  int64_t oom_kills_before_ = -1;
  std::atomic<int64_t> failure_time_ms_{0};  // when the first rank failed (Unix ms)
};

Status RunPipeline::Load() {
  TR_ASSIGN_OR_RETURN(job_, ParseJobFile(options_.job_file));
  if (!options_.run_id.empty()) {
    if (!IsValidRunName(options_.run_id)) {
      return InvalidArgumentError(fmt::format(
          "--run-id \"{}\": must be 1-255 letters, digits, '_', '-' or '.'", options_.run_id));
    }
    job_.run_id = options_.run_id;
  }
  if (options_.dry_run) {
    TR_ASSIGN_OR_RETURN(placement_, ClusterRun::Discover(options_, job_));
  } else {
    TR_ASSIGN_OR_RETURN(cluster_, ClusterRun::Create(options_, job_, &reporter_));
    if (cluster_) placement_ = cluster_->placement();
  }
  node_rank_ = placement_.node_rank;

  std::string uri = options_.history;
  std::string where = "--history";
  if (uri.empty() && !job_.history.uri.empty()) {
    uri = job_.history.uri;
    where = job_.file + ": /history/uri";
  }
  if (uri.empty()) uri = DefaultHistoryUri();
  Result<std::unique_ptr<Store>> store = OpenStore(uri);
  if (!store.ok()) {
    Status s = store.status().WithContext(where);
    // A bad URI in the job file is a job file error, on the command line a usage one.
    if (s.code() == StatusCode::kInvalidArgument && where != "--history") {
      s = InvalidJobError(s.message());
    }
    return s;
  }
  store_ = std::move(store).value();
  history_ = std::make_unique<RunHistory>(store_.get());
  HistoryUploaderOptions upload_options;
  upload_options.finalize_timeout = std::chrono::duration_cast<Duration>(
      std::chrono::duration<double>(options_.finalize_timeout_seconds));
  uploader_ = std::make_unique<HistoryUploader>(store_.get(), &reporter_, upload_options);
  return Status::Ok();
}

// Once the run id is known (after the rendezvous on a multi-node job).
void RunPipeline::LayOut() {
  if (job_.run_id.empty()) job_.run_id = GenerateRunId(job_.experiment_name, SystemClock()->WallNow());
  std::string base = options_.workdir.empty() ? kDefaultWorkdirBase : options_.workdir;
  layout_.root = (fs::absolute(base) / job_.experiment_name / job_.run_id).lexically_normal().string();

  data_ = std::make_unique<DataPreparer>(fs::absolute(job_.file).parent_path().string(),
                                         layout_.wd(), layout_.data(), &reporter_);

  record_.run_id = job_.run_id;
  record_.experiment = job_.experiment_name;
  record_.trainrun_version = kTrainrunVersion;
  json parsed = json::parse(job_.json);
  record_.job = RedactJobJson(parsed);
  record_.details["jobFile"] = fs::absolute(job_.file).string();
  if (cluster_) record_.details["cluster"] = cluster_->Details();
}

Status RunPipeline::CreateRunDirectory() {
  RunKey key{job_.experiment_name, job_.run_id};
  Result<ObjectInfo> existing = store_->Stat(key.Prefix() + kRunRecordName);
  if (existing.ok() && (!cluster_ || cluster_->is_head())) {
    return AlreadyExistsError(fmt::format(
        "run \"{}\" already exists in {} (experiment {}); give a new runId or leave it out to "
        "get a generated one",
        job_.run_id, store_->Uri(), job_.experiment_name));
  }
  std::error_code ec;
  if (fs::exists(layout_.root, ec)) {
    return AlreadyExistsError(fmt::format("run directory {} already exists; give a new runId",
                                          layout_.root));
  }
  for (const std::string& dir : {layout_.wd(), layout_.user_logs(), layout_.system_logs()}) {
    TR_RETURN_IF_ERROR(MakeDirs(dir));
  }
  TR_ASSIGN_OR_RETURN(system_log_, SystemLog::Open(layout_.system_log(node_rank_), SystemClock()));
  early_.ReplayTo(system_log_.get());
  reporter_.Add(system_log_.get());
  reporter_.Info(fmt::format("trainrun {} on {} (pid {}{}), job file {}", kTrainrunVersion,
                             HostName(), getpid(), getpid() == 1 ? ", PID 1" : "",
                             fs::absolute(job_.file).string()));
  reporter_.Info(fmt::format("run directory {}; run history {}", layout_.root, store_->Uri()));
  return Status::Ok();
}

void RunPipeline::EnterPhase(RunStatus status) {
  const TimePoint now = SystemClock()->Now();
  double previous = record_.phases.empty() ? -1 : ToSeconds(now - phase_started_);
  phase_started_ = now;
  record_.SetStatus(status, SystemClock()->WallNow());
  if (!IsFinal(status)) {
    Phase phase = status == RunStatus::kPreparing ? Phase::kPreparing
                  : status == RunStatus::kRunning ? Phase::kRunning
                                                  : Phase::kFinalizing;
    reporter_.PhaseStarted(phase, previous);
  }
}

void RunPipeline::SaveRecord() {
  record_.warnings = warnings_.warnings();
  std::string text = record_.ToJson().dump(2) + "\n";
  Status local = WriteFileAtomic(layout_.record(), text);
  if (!local.ok()) reporter_.Warning(local.message());
  if (cluster_ && !cluster_->is_head()) return;  // the head keeps the job's record
  Status remote = history_->WriteRecord(record_);
  if (!remote.ok()) reporter_.Warning(fmt::format("run record not saved to history: {}", remote.message()));
}

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
  for (const std::string& note : binding_.notes) reporter_.Info(fmt::format("binding: {}", note));
  for (const std::string& warning : binding_.warnings) reporter_.Warning(fmt::format("binding: {}", warning));
  process_count_ = binding_.plan.process_count;
  process_count_source_ = binding_.plan.process_count_source;
  gpu_count_ = static_cast<int>(binding_.inventory.Ours().size());
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
    assignment_ = SingleNodeAssignment(job_.run_id, HostName(), process_count_, 0, {});
    assignment_.master_addr = placement_.head.empty() ? "<this node>" : placement_.head;
    for (int n = 1; n < placement_.node_count; ++n) {
      NodeSlot node = assignment_.nodes[0];
      node.node_rank = n;
      node.first_rank = n * process_count_;
      assignment_.nodes.push_back(node);
    }
    assignment_.world_size = process_count_ * placement_.node_count;
  } else {
    std::vector<int> tf_ports;
    if (!for_dry_run) {
      TR_ASSIGN_OR_RETURN(master_port_, FindFreePort("0.0.0.0"));
      if (job_.communicator == Communicator::kTensorFlow) {
        TR_ASSIGN_OR_RETURN(tf_ports, FreePorts(process_count_));
      }
    }
    assignment_ = SingleNodeAssignment(job_.run_id, HostName(), process_count_, master_port_, tf_ports);
  }
  const NodeSlot& me = assignment_.nodes.at(node_rank_);

  PlaceholderValues values;
  values.outputs = layout_.outputs();
  RankContext context;
  context.world_size = assignment_.world_size;
  context.local_world_size = process_count_;
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

  // The job token is trainrun's, not the ranks'.
  std::vector<std::string> container = binding_.ContainerEnvironment(CurrentEnvironment());
  std::erase_if(container, [](const std::string& e) { return e.rfind("TRAINRUN_JOB_TOKEN=", 0) == 0; });
  launches_.clear();
  for (int local = 0; local < process_count_; ++local) {
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

  json data_record = json::array();
  for (const DataReference& ref : job_.data) {
    TR_ASSIGN_OR_RETURN(PreparedData prepared, data_->Prepare(ref));
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
  record_.details["processCountPerNode"] = process_count_;
  record_.details["processCountSource"] = process_count_source_;
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
    record_.nodes.push_back({node_rank_, HostName(), process_count_, getpid(), layout_.root});
  }
  reporter_.Info(fmt::format("{} rank(s) on this node ({}), MASTER_PORT {}", process_count_,
                             process_count_source_, master_port_));
  return Status::Ok();
}

Status RunPipeline::SetUpProcesses() {
  TR_ASSIGN_OR_RETURN(processes_, PosixProcessSet::Create());
  pump_ = std::make_unique<LogPump>(options_.console == ConsoleRanks::kNone ? nullptr : out_);
  for (RankLaunch& launch : launches_) {
    bool to_console = options_.console == ConsoleRanks::kAll ||
                      (options_.console == ConsoleRanks::kRank0 && launch.rank == 0);
    TR_ASSIGN_OR_RETURN(RankPipes pipes,
                        pump_->AddRank(launch.rank, layout_.rank_log(launch.rank), to_console));
    launch.spec.stdout_fd = pipes.stdout_fd;
    launch.spec.stderr_fd = pipes.stderr_fd;
  }
  if (job_.communicator == Communicator::kMpi && node_rank_ == 0) {
    // mpirun's own words (launch errors, its summary of a failure) get a log too.
    TR_ASSIGN_OR_RETURN(mpirun_pipes_, pump_->AddRank(kMpirunRank, layout_.system_logs() + "/mpirun.log",
                                                      options_.console != ConsoleRanks::kNone, "[mpirun] "));
  }
  return pump_->Start();
}

void RunPipeline::RunRanks() {
  SupervisorOptions supervision;
  supervision.grace_period = std::chrono::duration_cast<Duration>(
      std::chrono::duration<double>(options_.grace_period_seconds));
  if (job_.max_run_duration_seconds) {
    supervision.max_run_duration = std::chrono::seconds(*job_.max_run_duration_seconds);
  }
  ClusterSession* session = cluster_ ? cluster_->session() : nullptr;
  if (session != nullptr) {
    // The other nodes hear of this node's first failure, cancel or time limit at once.
    supervision.on_rank_failed = [this, session](const RankFailure& failure) {
      failure_time_ms_ = WallMillis();
      session->RankFailed(failure);
    };
    supervision.on_stop = [session](RunOutcome outcome, int code, const std::string& reason) {
      if (outcome == RunOutcome::kCanceled || outcome == RunOutcome::kTimedOut) {
        session->Stopping(code, reason);
      }
    };
  } else {
    supervision.on_rank_failed = [this](const RankFailure&) { failure_time_ms_ = WallMillis(); };
  }
  oom_kills_before_ = CgroupOomKills();
  EnterPhase(RunStatus::kRunning);
  SaveRecord();
  StartLiveUpload();
  reporter_.Notice(fmt::format("run {}: {} rank(s) of {}", job_.run_id, launches_.size(),
                               fmt::join(record_.command, " ")));
  if (job_.communicator == Communicator::kMpi) {
    MpiRunInputs mpi;
    mpi.assignment = &assignment_;
    mpi.node_rank = node_rank_;
    mpi.launches = std::move(launches_);
    mpi.mpirun_stdout_fd = mpirun_pipes_.stdout_fd;
    mpi.mpirun_stderr_fd = mpirun_pipes_.stderr_fd;
    mpi.processes = processes_.get();
    mpi.reporter = &reporter_;
    mpi.supervision = supervision;
    mpi.session = session;
    mpi.rsh_key_hex = cluster_ ? cluster_->RshKeyHex() : "";
    mpi.control_port = options_.control_port;
    mpi.base_env = CurrentEnvironment();
    std::erase_if(mpi.base_env, [](const std::string& e) { return e.rfind("TRAINRUN_JOB_TOKEN=", 0) == 0; });
    result_ = RunMpi(std::move(mpi));
    pump_->CloseChildEnds();
    ran_ = true;
    return;
  }
  Supervisor supervisor(processes_.get(), &reporter_, supervision);
  if (session != nullptr) {
    session->SetStopHandler(
        [&supervisor](const StopNotice& stop) { supervisor.RequestStop(stop.exit_code, stop.reason); });
  }
  supervisor.Start(std::move(launches_));
  pump_->CloseChildEnds();
  result_ = supervisor.Wait();
  if (session != nullptr) session->SetStopHandler({});
  ran_ = true;
}

void RunPipeline::ReportFailure() {
  if (!result_.failure) return;
  RankFailure& failure = *result_.failure;
  if (pump_) failure.stderr_tail = pump_->StderrTail(failure.rank);
  if (failure.status.signal == SIGKILL) {
    int64_t after = CgroupOomKills();
    if (oom_kills_before_ >= 0 && after > oom_kills_before_) {
      failure.hint = fmt::format(
          "the kernel's out-of-memory killer killed {} process(es) in this container during the "
          "run (cgroup memory.events oom_kill {} -> {}): give the job more memory or use less",
          after - oom_kills_before_, oom_kills_before_, after);
    }
  }
  FailureRecord record;
  record.rank = failure.rank;
  record.node_rank = node_rank_;
  record.host = HostName();
  record.pid = failure.pid;
  record.exit_code = failure.status.ToExitCode();
  record.signal = failure.status.signal;
  record.reason = fmt::format("rank {} {}", failure.rank, failure.reason);
  record.hint = failure.hint;
  record.stderr_tail = failure.stderr_tail;
  record.log_file = failure.rank == kMpirunRank
                        ? fmt::format("{}/mpirun.log", kSystemLogsDir)
                        : fmt::format("{}/{}", kUserLogsDir, RankLogName(failure.rank));
  record_.failure = record;

  std::string summary = fmt::format("rank {} on {} (node {}) {}", failure.rank, record.host,
                                    node_rank_, failure.reason);
  if (!failure.stderr_tail.empty()) {
    summary += fmt::format("\nlast lines of rank {}'s stderr:", failure.rank);
    for (const std::string& line : failure.stderr_tail) summary += "\n  | " + line;
  }
  if (!failure.hint.empty()) summary += "\nhint: " + failure.hint;
  summary += fmt::format("\nfull log: {}", layout_.rank_log(failure.rank));
  reporter_.Error(summary);
}

std::vector<std::pair<std::string, std::string>> RunPipeline::LogDirs() const {
  const std::string prefix = RunKey{job_.experiment_name, job_.run_id}.Prefix();
  std::vector<std::pair<std::string, std::string>> dirs;  // local, key prefix
  dirs.emplace_back(layout_.logs(), prefix + kLogsDir);
  for (const std::string& watched : job_.history.directories_to_watch) {
    std::string normal = fs::path(watched).lexically_normal().generic_string();
    while (!normal.empty() && normal.back() == '/') normal.pop_back();
    if (normal == kLogsDir || (normal == kOutputsDir && job_.history.output_collection)) continue;
    dirs.emplace_back(layout_.wd() + "/" + normal, prefix + normal);
  }
  dirs.emplace_back(layout_.user_logs(), prefix + kUserLogsDir);
  return dirs;
}

void RunPipeline::StartLiveUpload() {
  const std::string prefix = RunKey{job_.experiment_name, job_.run_id}.Prefix();
  std::vector<WatchedDir> watched;
  for (const auto& [local, key] : LogDirs()) {
    // Several nodes write ./logs: they meet in history at Finalizing (merged), while
    // every rank's log and node's system log have names of their own.
    if (cluster_ && local != layout_.user_logs()) continue;
    watched.push_back({local, key});
  }
  watched.push_back({layout_.system_logs(), prefix + kSystemLogsDir});
  live_ = std::make_unique<LiveUploader>(
      store_.get(), &reporter_, std::move(watched), layout_.root,
      std::chrono::duration_cast<Duration>(
          std::chrono::duration<double>(options_.log_upload_interval_seconds)));
  live_->Start();
}

void RunPipeline::Upload(UploadReport* report) {
  const std::string prefix = RunKey{job_.experiment_name, job_.run_id}.Prefix();
  std::vector<std::pair<std::string, std::string>> dirs;  // local, key prefix
  if (job_.history.output_collection) dirs.emplace_back(layout_.outputs(), prefix + kOutputsDir);
  for (const auto& dir : LogDirs()) dirs.push_back(dir);

  std::vector<TransferItem> items;
  for (const auto& [local, key] : dirs) {
    Status planned = PlanUpload(local, key, layout_.wd(), prefix, &items, &report->skipped_symlinks);
    if (!planned.ok()) report->errors.push_back(planned.message());
  }
  // Every node has ./outputs and ./logs: merged with the other nodes' so that no
  // node's file silently replaces another's.
  if (cluster_) items = cluster_->session()->MergeUploads(std::move(items), prefix);
  for (const SkippedSymlink& link : report->skipped_symlinks) {
    reporter_.Warning(fmt::format("{} is a symlink to {}, outside the working directory: recorded, "
                                  "not uploaded",
                                  link.path, link.target));
  }
  UploadReport done = uploader_->Upload(items, "outputs and logs");
  report->files += done.files;
  report->bytes += done.bytes;
  report->errors.insert(report->errors.end(), done.errors.begin(), done.errors.end());
  report->failed_paths.insert(report->failed_paths.end(), done.failed_paths.begin(),
                              done.failed_paths.end());
  TransferProgress progress;
  progress.what = fmt::format("uploaded to {}", store_->Uri());
  progress.files_done = report->files;
  progress.bytes_done = report->bytes;
  progress.finished = true;
  reporter_.Transfer(progress);
}

int RunPipeline::Finalize(int exit_code, RunStatus status) {
  if (live_) {
    live_->Stop();
    uploader_->SetAlreadyUploaded(live_->uploaded());
  }
  uploader_->StartDeadline();
  EnterPhase(RunStatus::kFinalizing);
  SaveRecord();
  if (pump_ && !pump_->WaitDrained(kLogDrainTimeout)) {
    reporter_.Warning("a process outside the ranks' process groups still holds a rank's output "
                      "open; what it writes from now on is not in the logs");
  }
  if (pump_ && !pump_->write_status().ok()) {
    reporter_.Warning(fmt::format("rank output was lost: {}", pump_->write_status().message()));
  }
  data_.reset();  // unmounts (FUSE tools are trainrun's children: before the orphans go)
  if (processes_) {
    std::vector<int> orphans = processes_->KillAdoptedOrphans();
    if (!orphans.empty()) {
      reporter_.Info(fmt::format("killed {} process(es) the ranks left behind: {}", orphans.size(),
                                 fmt::join(orphans, ", ")));
      processes_->Wait(SystemClock()->Now() + std::chrono::milliseconds(200));
    }
    if (processes_->orphans_reaped() > 0) {
      reporter_.Info(fmt::format("reaped {} orphaned process(es)", processes_->orphans_reaped()));
    }
  }
  if (ran_) {
    record_.outcome = std::string(RunOutcomeName(result_.outcome));
    record_.stop_reason = result_.stop_reason;
    for (const RankResult& r : result_.ranks) {
      record_.ranks.push_back({r.rank, node_rank_, r.rank - assignment_.nodes[node_rank_].first_rank, r.pid,
                               r.status.code, r.status.signal, r.seconds, r.stopped_by_trainrun});
    }
    ReportFailure();
    if (result_.outcome == RunOutcome::kTimedOut || result_.outcome == RunOutcome::kCanceled) {
      reporter_.Error(fmt::format("ranks stopped: {}", result_.stop_reason));
    }
  }
  if (cluster_) {
    record_.warnings = warnings_.warnings();
    cluster_->ReportResult(record_, RunOutcomeName(result_.outcome), exit_code, failure_time_ms_);
  }
  pump_.reset();

  UploadReport uploads;
  Upload(&uploads);
  record_.skipped_symlinks = uploads.skipped_symlinks;
  record_.upload_errors = uploads.errors;
  const bool upload_failed = !uploads.errors.empty();
  if (upload_failed) {
    if (exit_code == kExitOk) {
      exit_code = kExitUploadFailed;
      status = RunStatus::kFailed;
      record_.outcome = "upload failed";
    }
    reporter_.Error(fmt::format(
        "{} file(s) did not reach run history at {}; everything stays on this node under {}\n{}",
        uploads.failed_paths.size(), store_->Uri(), layout_.root,
        fmt::join(uploads.errors.begin(),
                  uploads.errors.begin() + std::min<size_t>(uploads.errors.size(), 10), "\n")));
  }
  if (cluster_) cluster_->Finish(uploads, &exit_code, &status, &record_);
  record_.exit_code = exit_code;
  EnterPhase(status);
  const std::string prefix = RunKey{job_.experiment_name, job_.run_id}.Prefix();
  reporter_.Notice(fmt::format("run {} {} (exit code {}); history: {}/{}", job_.run_id,
                               RunStatusName(status), exit_code, store_->Uri(), prefix));

  // The system log goes up last but one, so it holds everything above.
  std::vector<TransferItem> system_logs;
  std::vector<SkippedSymlink> ignored;
  PlanUpload(layout_.system_logs(), prefix + kSystemLogsDir, layout_.root, prefix, &system_logs,
             &ignored)
      .IgnoreError();
  UploadReport last = uploader_->Upload(system_logs, "system log");
  record_.upload_errors.insert(record_.upload_errors.end(), last.errors.begin(), last.errors.end());
  SaveRecord();
  Result<ObjectInfo> saved = store_->Stat(prefix + kRunRecordName);
  if ((!last.errors.empty() || !saved.ok()) && exit_code == kExitOk) {
    reporter_.Error(fmt::format("the run record or system log did not reach {}; they stay in {}",
                                store_->Uri(), layout_.root));
    exit_code = kExitUploadFailed;
  }
  return exit_code;
}

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
  text += fmt::format("job file:       {}\n", fs::absolute(job_.file).string());
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
  text += fmt::format("ranks:          {} ({})\n", process_count_, process_count_source_);
  if (placement_.node_count > 1) {
    text += fmt::format("world size:     {} (if every node runs {} rank(s))\n", assignment_.world_size,
                        process_count_);
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

int RunPipeline::Execute() {
  Status loaded = Load();
  if (!loaded.ok()) {
    reporter_.Error(loaded.message());
    return ExitCodeFor(loaded);
  }
  if (options_.dry_run) {
    LayOut();
    return DryRun();
  }
  if (cluster_) {
    // The run id and the ranks come from the rendezvous, before anything is on disk.
    Status joined = PlanBinding();
    if (joined.ok()) joined = cluster_->Join(&job_, process_count_, process_count_source_, gpu_count_);
    if (!joined.ok()) {
      reporter_.Error(joined.message());
      return CancelSignalPending() ? kExitCanceled : ExitCodeFor(joined);
    }
  }
  LayOut();
  Status created = CreateRunDirectory();
  if (!created.ok()) {
    reporter_.Error(created.message());
    if (cluster_) cluster_->session()->WaitForStart(created, ExitCodeFor(created));
    return ExitCodeFor(created);
  }
  // From here on the run exists: whatever happens is recorded and uploaded.
  EnterPhase(RunStatus::kPreparing);
  Status writable = cluster_ && !cluster_->is_head() ? Status::Ok() : history_->WriteRecord(record_);
  if (!writable.ok()) {
    reporter_.Error(fmt::format("run history {} is not writable, so nothing was started: {}\n"
                                "the system log is in {}",
                                store_->Uri(), writable.message(), layout_.system_logs()));
    if (cluster_) cluster_->session()->WaitForStart(UploadFailedError(writable.message()), kExitUploadFailed);
    return kExitUploadFailed;
  }
  reporter_.Notice(fmt::format("run {} (experiment {}) in {}", job_.run_id, job_.experiment_name,
                               layout_.root));
  Status prepared = Prepare();
  if (prepared.ok()) prepared = SetUpProcesses();
  if (cluster_) {
    // Every node prepared (or one failed, or one was canceled): start, or stop together.
    std::optional<StopNotice> stop =
        cluster_->session()->WaitForStart(prepared, prepared.ok() ? 0 : ExitCodeFor(prepared));
    if (stop && prepared.ok()) {
      reporter_.Error(fmt::format("the ranks were not started: {}", stop->reason));
      record_.outcome = stop->exit_code == kExitCanceled ? "canceled" : "stopped";
      record_.stop_reason = stop->reason;
      return Finalize(stop->exit_code,
                      stop->exit_code == kExitCanceled ? RunStatus::kCanceled : RunStatus::kFailed);
    }
  }
  if (!prepared.ok()) {
    reporter_.Error(prepared.message());
    record_.outcome = "preparation failed";
    record_.stop_reason = prepared.message();
    return Finalize(ExitCodeFor(prepared), RunStatus::kFailed);
  }
  if (CancelPending()) {
    if (cluster_) cluster_->session()->Stopping(kExitCanceled, "canceled before the ranks started");
    reporter_.Error("canceled before the ranks started");
    record_.outcome = std::string(RunOutcomeName(RunOutcome::kCanceled));
    return Finalize(kExitCanceled, RunStatus::kCanceled);
  }
  RunRanks();
  RunStatus status = RunStatus::kFailed;
  if (result_.outcome == RunOutcome::kSucceeded) status = RunStatus::kCompleted;
  if (result_.outcome == RunOutcome::kCanceled) status = RunStatus::kCanceled;
  return Finalize(result_.exit_code, status);
}

}  // namespace

int RunJob(const RunOptions& options, Console* out, Console* err) {
  RunPipeline pipeline(options, out, err);
  return pipeline.Execute();
}

}  // namespace trainrun
