#include "launcher/run_load.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <filesystem>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "base/fs_util.h"
#include "base/net_util.h"
#include "base/redact.h"
#include "launcher/run_rejoin.h"
#include "launcher/version.h"
#include "runtime/cluster/tf_roles.h"
#include "runtime/run/azureml_config.h"
#include "runtime/run/run_id.h"
#include "runtime/store/store_factory.h"

namespace trainrun {

namespace fs = std::filesystem;
using nlohmann::json;

// Where a container's shared memory is; docker.shmSize is checked against it.
constexpr const char* kShmPath = "/dev/shm";

// What trainrun made of an Azure ML job file: one line per field it translated or
// ignored, and docker.shmSize against this container's /dev/shm.
void ReportAzureMl(const JobConfig& job, Reporter* reporter) {
  for (const std::string& note : job.azureml.notes) {
    reporter->Notice(fmt::format("{}: {}", job.file, note));
  }
  if (job.azureml.shm_size_bytes) {
    std::string error;
    const std::string warning =
        CheckShmSize(*job.azureml.shm_size_bytes,
                     fmt::format("{}: {} \"{}\"", job.file, job.azureml.shm_size_field,
                                 job.azureml.shm_size_text),
                     kShmPath, &error);
    if (!warning.empty()) reporter->Warning(warning);
    if (!error.empty()) reporter->Info(fmt::format("shmSize not checked: {}", error));
  }
}

Result<LoadedRun> LoadRun(const RunOptions& options, Reporter* reporter,
                          const std::function<void(const Placement&)>& placed) {
  LoadedRun run;
  TR_ASSIGN_OR_RETURN(run.job, ParseJobFile(options.job_file));
  ReportAzureMl(run.job, reporter);
  if (!options.run_id.empty()) {
    if (!IsValidRunName(options.run_id)) {
      return InvalidArgumentError(fmt::format(
          "--run-id \"{}\": must be 1-255 letters, digits, '_', '-' or '.'", options.run_id));
    }
    run.job.run_id = options.run_id;
  }
  if (options.max_restarts) run.job.restarts.max_restarts = *options.max_restarts;
  TR_ASSIGN_OR_RETURN(run.placement, ClusterRun::Discover(options, run.job));
  // ParameterServer: this node's process count is its share of the TensorFlow roles.
  TR_RETURN_IF_ERROR(ApplyTfRoles(&run.job, run.placement.node_count, run.placement.node_rank));
  if (placed) placed(run.placement);
  if (!options.dry_run) {
    TR_ASSIGN_OR_RETURN(run.cluster, ClusterRun::Create(options, run.job, reporter));
    if (run.cluster) run.placement = run.cluster->placement();
  }

  std::string uri = options.history;
  std::string where = "--history";
  if (uri.empty() && !run.job.history.uri.empty()) {
    uri = run.job.history.uri;
    where = run.job.file + ": /history/uri";
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
  run.store = std::move(store).value();
  run.history = std::make_unique<RunHistory>(run.store.get());
  HistoryUploaderOptions upload_options;
  upload_options.finalize_timeout = std::chrono::duration_cast<Duration>(
      std::chrono::duration<double>(options.finalize_timeout_seconds));
  run.uploader = std::make_unique<HistoryUploader>(run.store.get(), reporter, upload_options);
  return run;
}

LocalRunLayout LayOutRun(const RunOptions& options, const Placement& placement, JobConfig* job) {
  if (job->run_id.empty()) {
    job->run_id = GenerateRunId(job->experiment_name, SystemClock()->WallNow());
  }
  std::string base = options.workdir.empty() ? kDefaultWorkdirBase : options.workdir;
  fs::path root = fs::path(AbsolutePath(base)) / job->experiment_name / job->run_id;
  if (placement.node_count > 1) {
    root /= fmt::format("node{}-{}", placement.node_rank, LocalHostName());
  }
  LocalRunLayout layout;
  layout.root = root.lexically_normal().string();
  return layout;
}

RunRecord StartRunRecord(const JobConfig& job, const ClusterRun* cluster) {
  RunRecord record;
  record.run_id = job.run_id;
  record.experiment = job.experiment_name;
  record.trainrun_version = kTrainrunVersion;
  json parsed = json::parse(job.json);
  record.job = RedactJobJson(parsed);
  record.details["jobFile"] = AbsolutePath(job.file);
  if (cluster) record.details["cluster"] = cluster->Details();
  return record;
}

Status CreateRunDirectory(const LoadedRun& run, const LocalRunLayout& layout,
                          RunReporting* reporting) {
  const JobConfig& job = run.job;
  RunKey key{job.experiment_name, job.run_id};
  Result<ObjectInfo> existing = run.store->Stat(key.Prefix() + kRunRecordName);
  if (existing.ok() && (!run.cluster || run.cluster->is_head())) {
    return AlreadyExistsError(fmt::format(
        "run \"{}\" already exists in {} (experiment {}); give a new runId or leave it out to "
        "get a generated one",
        job.run_id, run.store->Uri(), job.experiment_name));
  }
  // A node that replaces a lost one on the same host and --workdir finds the lost
  // trainrun's run directory: it is kept aside, and this one starts afresh as on a
  // new host (README "A replaced node rejoins").
  std::string kept_aside;
  if (run.cluster && run.cluster->first_attempt() > 1 && fs::exists(layout.root)) {
    kept_aside = KeptAsideRunDir(layout.root, run.cluster->first_attempt());
    if (rename(layout.root.c_str(), kept_aside.c_str()) != 0) return ErrnoStatus(errno, kept_aside);
  }
  // mkdir is the exclusive step: of two runs given the same id at once, exactly one
  // creates the run directory; the other stops here and touches nothing of it.
  TR_RETURN_IF_ERROR(MakeDirs(fs::path(layout.root).parent_path().string()));
  if (mkdir(layout.root.c_str(), 0755) != 0) {
    if (errno == EEXIST) {
      return AlreadyExistsError(
          fmt::format("run directory {} already exists; give a new runId", layout.root));
    }
    return ErrnoStatus(errno, layout.root);
  }
  for (const std::string& dir :
       {layout.wd(), layout.user_logs(), layout.system_logs(), layout.metrics()}) {
    TR_RETURN_IF_ERROR(MakeDirs(dir));
  }
  // Before anything is appended to them: this node's logs as its earlier attempts
  // left them (run_rejoin.h).
  std::optional<SeededLogs> seeded;
  if (run.cluster && run.cluster->first_attempt() > 1) {
    const NodeSlot& slot = run.cluster->assignment().nodes.at(run.node_rank());
    seeded = SeedEarlierAttempts(run.store.get(), key.Prefix(), layout, run.node_rank(),
                                 slot.first_rank, slot.process_count);
  }
  TR_ASSIGN_OR_RETURN(std::unique_ptr<SystemLog> log,
                      SystemLog::Open(layout.system_log(run.node_rank()), SystemClock()));
  reporting->AttachSystemLog(std::move(log));
  Reporter* reporter = reporting->reporter();
  reporter->Info(fmt::format("trainrun {} on {} (pid {}{}), job file {}", kTrainrunVersion,
                             LocalHostName(), getpid(), getpid() == 1 ? ", PID 1" : "",
                             AbsolutePath(job.file)));
  reporter->Info(fmt::format("run directory {}; run history {}", layout.root, run.store->Uri()));
  if (!kept_aside.empty()) {
    reporter->Notice(fmt::format("the lost node's run directory is kept as {}", kept_aside));
  }
  if (seeded) {
    const int from_history = seeded->files - seeded->from_kept_aside;
    reporter->Info(fmt::format(
        "this node's logs of the earlier attempts, appended to from here: {} file(s), {} ({} from "
        "the kept-aside run directory, {} from run history{})",
        seeded->files, FormatBytes(seeded->bytes), seeded->from_kept_aside, from_history,
        from_history > 0 ? ", without what the lost trainrun wrote after its last upload" : ""));
    for (const std::string& failure : seeded->failures) {
      reporter->Warning(fmt::format(
          "an earlier attempt's log of this node is not kept: {}; it starts afresh", failure));
    }
  }
  return Status::Ok();
}

}  // namespace trainrun
