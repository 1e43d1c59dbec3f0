// The run pipeline behind `trainrun run` (run_command.h), one class whose phases
// live in one file each:
// clang-format off
//   run_command.cc   loading the job, the run directory, the record, Execute()
//   run_prepare.cc   binding, rank plans, snapshot and data (Preparing)
//   run_ranks.cc     the log pump, the supervisor, the failure summary (Running)
//   run_finalize.cc  uploads and the final record (Finalizing)
//   dry_run.cc       --dry-run
// clang-format on
// Internal to the launcher.
#pragma once

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
#include "launcher/exit_codes.h"
#include "launcher/mpi_run.h"
#include "launcher/node_binding.h"
#include "launcher/run_command.h"
#include "launcher/terminal_reporter.h"
#include "launcher/version.h"
#include "runtime/report/buffered_reporter.h"
#include "runtime/cluster/communicator_env.h"
#include "runtime/run/data_refs.h"
#include "base/free_port.h"
#include "base/fs_util.h"
#include "runtime/run/history.h"
#include "runtime/run/job_config.h"
#include "runtime/process/log_pump.h"
#include "runtime/mpi/mpi_supervisor.h"
#include "base/net_util.h"
#include "runtime/run/placeholders.h"
#include "runtime/process/process_posix.h"
#include "runtime/process/rank_env.h"
#include "base/redact.h"
#include "runtime/run/run_id.h"
#include "runtime/run/run_layout.h"
#include "runtime/run/snapshot.h"
#include "runtime/process/supervisor.h"
#include "runtime/report/system_log.h"

namespace trainrun {

// How long the log pump may take to read what the ranks left in their pipes once
// they are gone; only a descendant that escaped its process group and still holds
// a pipe makes it wait this long.
constexpr auto kLogDrainTimeout = std::chrono::seconds(5);

// The container's count of OOM kills (cgroup v2), or -1 when it cannot be read.
int64_t CgroupOomKills();

// trainrun's environment as the ranks inherit it: all of it but the job token,
// which is trainrun's, not the ranks'.
std::vector<std::string> EnvironmentForRanks();

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
  // The head of a multi-node job died before writing the final status: this node
  // writes it into run history instead.
  void CloseRecordForLostHead();

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
  bool binding_planned_ = false;
  // This node's rank count and why, from the binding plan.
  int process_count() const { return binding_.plan.process_count; }
  const std::string& process_count_source() const { return binding_.plan.process_count_source; }

  std::unique_ptr<PosixProcessSet> processes_;
  std::unique_ptr<LogPump> pump_;
  RankPipes mpirun_pipes_;  // the head of an MPI job: where mpirun's output goes
  SupervisionResult result_;
  bool ran_ = false;
  int64_t oom_kills_before_ = -1;
  std::atomic<int64_t> failure_time_ms_{0};  // when the first rank failed (Unix ms)
};

}  // namespace trainrun
