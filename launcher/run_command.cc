// `trainrun run`: loading the job, the run directory and record, and the phases in
// order (Execute). The phases themselves are in run_prepare.cc, run_ranks.cc and
// run_finalize.cc.
#include "launcher/run_pipeline.h"

#include "runtime/store/store_factory.h"

namespace trainrun {

namespace fs = std::filesystem;
using nlohmann::json;

std::vector<std::string> EnvironmentForRanks() {
  std::vector<std::string> env = CurrentEnvironment();
  const std::string token_prefix = std::string(kJobTokenVariable) + "=";
  std::erase_if(env, [&](const std::string& e) { return e.rfind(token_prefix, 0) == 0; });
  return env;
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
  std::error_code ec;  // absolute() fails only without a current directory: keep it relative
  layout_.root = (fs::absolute(base, ec) / job_.experiment_name / job_.run_id).lexically_normal().string();

  data_ = std::make_unique<DataPreparer>(fs::absolute(job_.file, ec).parent_path().string(),
                                         layout_.wd(), layout_.data(), &reporter_);

  record_.run_id = job_.run_id;
  record_.experiment = job_.experiment_name;
  record_.trainrun_version = kTrainrunVersion;
  json parsed = json::parse(job_.json);
  record_.job = RedactJobJson(parsed);
  record_.details["jobFile"] = fs::absolute(job_.file, ec).string();
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
                             LocalHostName(), getpid(), getpid() == 1 ? ", PID 1" : "",
                             fs::absolute(job_.file, ec).string()));
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
    if (joined.ok()) {
      joined = cluster_->Join(&job_, process_count(), process_count_source(),
                              static_cast<int>(binding_.inventory.Ours().size()));
    }
    if (!joined.ok()) {
      reporter_.Error(joined.message());
      return SupervisionSignalPending() ? kExitCanceled : ExitCodeFor(joined);
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
  if (SupervisionSignalPending()) {
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

int RunJob(const RunOptions& options, Console* out, Console* err) {
  RunPipeline pipeline(options, out, err);
  return pipeline.Execute();
}

}  // namespace trainrun
