// Running: the log pump, the supervisor, and the summary of the rank that failed.
#include "launcher/run_pipeline.h"

namespace trainrun {

namespace fs = std::filesystem;
using nlohmann::json;

Status RunPipeline::SetUpProcesses() {
  if (!processes_) {
    TR_ASSIGN_OR_RETURN(processes_, PosixProcessSet::Create());
  }
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
    TR_ASSIGN_OR_RETURN(mpirun_pipes_, pump_->AddRank(kMpirunRank, layout_.mpirun_log(),
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
  // A data mount's rclone that ends while the ranks run is reported, naming the data.
  supervision.on_helper_exit = [this](int pid, const ExitStatus& s) {
    data_->HelperExited(pid, s);
  };
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
    mpi.base_env = EnvironmentForRanks();
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
  record.host = LocalHostName();
  record.pid = failure.pid;
  record.exit_code = failure.status.ToExitCode();
  record.signal = failure.status.signal;
  record.reason = fmt::format("rank {} {}", failure.rank, failure.reason);
  record.hint = failure.hint;
  record.stderr_tail = failure.stderr_tail;
  const bool mpirun = failure.rank == kMpirunRank;
  record.log_file = mpirun ? fmt::format("{}/{}", kSystemLogsDir, kMpirunLogName)
                           : fmt::format("{}/{}", kUserLogsDir, RankLogName(failure.rank));
  record_.failure = record;

  std::string summary = fmt::format("rank {} on {} (node {}) {}", failure.rank, record.host,
                                    node_rank_, failure.reason);
  if (!failure.stderr_tail.empty()) {
    summary += fmt::format("\nlast lines of rank {}'s stderr:", failure.rank);
    for (const std::string& line : failure.stderr_tail) summary += "\n  | " + line;
  }
  if (!failure.hint.empty()) summary += "\nhint: " + failure.hint;
  summary += fmt::format("\nfull log: {}",
                         mpirun ? layout_.mpirun_log() : layout_.rank_log(failure.rank));
  reporter_.Error(summary);
}

}  // namespace trainrun
