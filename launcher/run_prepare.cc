#include "launcher/run_prepare.h"

#include <unistd.h>

#include <filesystem>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "base/fd_limit.h"
#include "base/fs_util.h"
#include "base/net_util.h"
#include "base/redact.h"
#include "launcher/python_env_step.h"
#include "runtime/cluster/control_server.h"
#include "runtime/mpi/mpi_supervisor.h"
#include "runtime/process/log_pump.h"
#include "runtime/run/snapshot.h"

namespace trainrun {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// Open files trainrun needs besides its ranks': its logs, run history and the
// uploads' files, the process set's signalfd and eventfd, the control plane's
// connections to its nodes.
constexpr uint64_t kFdReserve = 128;

// The process set with the isolation the options ask for, said in the system log.
Status CreateProcessSet(const RunContext& ctx, PreparedRun* prepared) {
  if (prepared->processes) return Status::Ok();
  std::string why;
  const Isolation isolation = IsolationFor(ctx.options.isolation, "/dev", &why);
  TR_ASSIGN_OR_RETURN(prepared->processes, PosixProcessSet::Create(isolation));
  const PosixProcessSet& set = *prepared->processes;
  ctx.journal->record().details["isolation"] = std::string(IsolationName(set.isolation()));
  switch (set.isolation()) {
    case Isolation::kPidNamespace:
      ctx.reporter->Info(fmt::format(
          "isolation: pid-namespace (the ranks share a PID namespace whose init, pid {}, dies "
          "with trainrun: nothing they start outlives it)",
          set.guard_pid()));
      break;
    case Isolation::kProcessGroups:
      ctx.reporter->Info(fmt::format(
          "isolation: process-group{} (a guard, pid {}, kills the ranks' process groups when "
          "trainrun ends; a process that calls setsid escapes it)",
          !why.empty()                   ? ", no PID namespace on " + why
          : set.isolation_note().empty() ? ""
                                         : ", no PID namespace: " + set.isolation_note(),
          set.guard_pid()));
      break;
    case Isolation::kNone:
      ctx.reporter->Info(
          "isolation: none (--isolation none: only the ranks themselves die with trainrun)");
      break;
  }
  if (!set.guard_note().empty()) {
    ctx.reporter->Warning(fmt::format(
        "isolation: {}; an out-of-memory kill of trainrun (or its crash, on a kernel older "
        "than 5.16) now ends the guard too",
        set.guard_note()));
  }
  return Status::Ok();
}

// The snapshot of the source directory into wd/, recorded and reported.
Status CopySource(const JobConfig& job, const LocalRunLayout& layout, RunRecord* record,
                  Reporter* reporter, const CancelToken* cancel) {
  Result<SnapshotStats> snapshot =
      CopySnapshot(job.source_directory, layout.wd(), {layout.root}, cancel);
  if (!snapshot.ok()) return snapshot.status();
  const SnapshotStats& stats = *snapshot;
  record->source = {{"directory", job.source_directory},
                    {"files", stats.files},
                    {"bytes", stats.bytes},
                    {"ignored", stats.ignored},
                    {"ignoreFile", stats.ignore_file}};
  reporter->Info(fmt::format("snapshot of {}: {} file(s), {}, {} ignored{}", job.source_directory,
                             stats.files, FormatBytes(stats.bytes), stats.ignored,
                             stats.ignore_file.empty() ? "" : " by " + stats.ignore_file));
  if (stats.bytes > kSnapshotWarnBytes || stats.files > kSnapshotWarnFiles) {
    reporter->Warning(fmt::format(
        "the source snapshot of {} is large ({} file(s), {}; limits {} files, {}): every run "
        "copies it; keep data out of sourceDirectory or list it in .amlignore",
        job.source_directory, stats.files, FormatBytes(stats.bytes), kSnapshotWarnFiles,
        FormatBytes(kSnapshotWarnBytes)));
  }
  if (std::optional<GitInfo> git = ReadGitInfo(job.source_directory)) {
    record->source["git"] = {{"commit", git->commit},
                             {"branch", git->branch},
                             {"remote", git->remote},
                             {"dirty", git->dirty}};
  }
  return Status::Ok();
}

// Every data reference, mounted or downloaded, into prepared->prepared_data.
Status PrepareData(const RunContext& ctx, const JobConfig& job, PreparedRun* prepared,
                   RunRecord* record) {
  json data_record = json::array();
  // The process set exists before the data: a FUSE mount's rclone is its child too.
  TR_RETURN_IF_ERROR(CreateProcessSet(ctx, prepared));
  for (const DataReference& ref : job.data) {
    TR_ASSIGN_OR_RETURN(PreparedData data, prepared->data->Prepare(ref, prepared->processes.get()));
    json entry = {{"name", data.name},
                  {"mechanism", DataMechanismName(ref.mechanism)},
                  {"method", data.method},
                  {"source", RedactUri(data.source)},
                  {"path", RedactUri(data.path)}};
    if (data.method == "download") {
      entry["files"] = data.files;
      entry["bytes"] = data.bytes;
      entry["downloadedFiles"] = data.downloaded_files;
      entry["downloadedBytes"] = data.downloaded_bytes;
      entry["cachedFiles"] = data.cached_files;
    }
    data_record.push_back(std::move(entry));
    prepared->prepared_data.push_back(std::move(data));
  }
  record->details["data"] = data_record;
  return Status::Ok();
}

// Whether `ranks` fit in the open-file limit (raised to the hard limit by main):
// kFdsPerRank each, kFdReserve for trainrun itself and, on a multi-node job, the
// control server's cap on connections waiting to authenticate. Checked before any
// pipe exists, so a node that cannot hold its ranks says so before starting one
// instead of failing in pipe2 after thousands have started.
Status CheckFdBudget(size_t ranks, bool multi_node) {
  const uint64_t limit = SoftFdLimit();
  const uint64_t control = multi_node ? DefaultMaxUnauthenticated(limit) : 0;
  const uint64_t needed = ranks * kFdsPerRank + kFdReserve + control;
  if (needed <= limit) return Status::Ok();
  return Status(
      StatusCode::kIoError,
      fmt::format("{} rank(s) need about {} open files ({} per rank, {} for trainrun{}); "
                  "this node allows {} (RLIMIT_NOFILE, already raised to the hard "
                  "limit): raise the hard limit (ulimit -Hn, LimitNOFILE, docker "
                  "--ulimit nofile) or start fewer ranks per node",
                  ranks, needed, kFdsPerRank, kFdReserve,
                  multi_node ? fmt::format(", {} for the control plane", control) : "", limit));
}

// The process set, the log pump and each rank's pipes; nothing is started.
Status SetUpProcesses(const RunContext& ctx, const LoadedRun& run, const LocalRunLayout& layout,
                      PreparedRun* prepared) {
  TR_RETURN_IF_ERROR(CreateProcessSet(ctx, prepared));
  TR_RETURN_IF_ERROR(CheckFdBudget(prepared->plan.launches.size(), ctx.cluster != nullptr));
  return StartLogPump(ctx, run, layout, prepared);
}

}  // namespace

Status StartLogPump(const RunContext& ctx, const LoadedRun& run, const LocalRunLayout& layout,
                    PreparedRun* prepared) {
  const ConsoleRanks console = ctx.options.console;
  prepared->pump = std::make_unique<LogPump>(console == ConsoleRanks::kNone ? nullptr : ctx.out);
  LogPump* pump = prepared->pump.get();
  for (RankLaunch& launch : prepared->plan.launches) {
    bool to_console =
        console == ConsoleRanks::kAll || (console == ConsoleRanks::kRank0 && launch.rank == 0);
    TR_ASSIGN_OR_RETURN(RankPipes pipes,
                        pump->AddRank(launch.rank, layout.rank_log(launch.rank), to_console));
    launch.spec.stdout_fd = pipes.stdout_fd;
    launch.spec.stderr_fd = pipes.stderr_fd;
  }
  if (run.job.communicator == Communicator::kMpi && run.node_rank() == 0) {
    // mpirun's own words (launch errors, its summary of a failure) get a log too.
    TR_ASSIGN_OR_RETURN(prepared->mpirun_pipes,
                        pump->AddRank(kMpirunRank, layout.mpirun_log(),
                                      console != ConsoleRanks::kNone, "[mpirun] "));
  }
  return pump->Start();
}

Status Prepare(const RunContext& ctx, const LoadedRun& run, const LocalRunLayout& layout,
               PreparedRun* prepared) {
  const JobConfig& job = run.job;
  const int node_rank = run.node_rank();
  Reporter* reporter = ctx.reporter;
  RunRecord& record = ctx.journal->record();
  prepared->data =
      std::make_unique<DataPreparer>(fs::path(AbsolutePath(job.file)).parent_path().string(),
                                     layout.wd(), layout.data(), reporter);
  prepared->data->SetCancel(ctx.cancel);

  TR_RETURN_IF_ERROR(CopySource(job, layout, &record, reporter, ctx.cancel));
  TR_RETURN_IF_ERROR(MakeDirs(layout.outputs()));
  TR_RETURN_IF_ERROR(MakeDirs(layout.logs()));
  TR_RETURN_IF_ERROR(PrepareData(ctx, job, prepared, &record));
  if (IsCanceled(ctx.cancel)) return CanceledError(*ctx.cancel, "after the data was ready");
  TR_ASSIGN_OR_RETURN(prepared->python_env,
                      PreparePythonEnvironment(ctx, job, EnvironmentForRanks(), layout.root));

  if (!prepared->binding) {
    TR_ASSIGN_OR_RETURN(prepared->binding, PlanBinding(ctx.options, job, reporter));
  }
  const NodeBinding& binding = *prepared->binding;
  RankPlanRequest request{.options = ctx.options,
                          .job = job,
                          .placement = run.placement,
                          .cluster = ctx.cluster,
                          .binding = binding,
                          .layout = layout,
                          .data = *prepared->data,
                          .prepared_data = prepared->prepared_data,
                          .python_env = prepared->python_env.get()};
  TR_ASSIGN_OR_RETURN(prepared->plan, PlanRanks(request, reporter));
  const RankPlan& plan = prepared->plan;
  record.command.insert(record.command.end(), plan.command.begin(), plan.command.end());
  record.details["processCountPerNode"] = prepared->process_count();
  record.details["processCountSource"] = prepared->process_count_source();
  record.details["masterPort"] = plan.master_port;
  record.details["binding"] = binding.Json();
  Status plan_file = WriteFileAtomic(
      fmt::format("{}/binding_node_{}.txt", layout.system_logs(), node_rank), binding.Table());
  if (!plan_file.ok()) reporter->Warning(plan_file.message());
  if (ctx.cluster && ctx.cluster->is_head()) {
    for (const NodeSlot& node : plan.assignment.nodes) {
      record.nodes.push_back({node.node_rank, node.host, node.process_count, node.pid,
                              node.node_rank == node_rank ? layout.root : ""});
    }
  } else {
    record.nodes.push_back(
        {node_rank, LocalHostName(), prepared->process_count(), getpid(), layout.root});
  }
  reporter->Info(fmt::format("{} rank(s) on this node ({}), MASTER_PORT {}",
                             prepared->process_count(), prepared->process_count_source(),
                             plan.master_port));
  return SetUpProcesses(ctx, run, layout, prepared);
}

}  // namespace trainrun
