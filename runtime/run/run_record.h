// The run record: run.json in run history. What happened, when, where and why,
// readable by people (`trainrun history show`) and machines (`--json`).
//
// Layout (fields in camelCase):
//   runId, experimentName, status, statusHistory[{status, time}],
//   phases[{name, start, seconds}], startTime, endTime, exitCode, outcome,
//   stopReason, failure{rank, nodeRank, host, pid, exitCode, signal, signalName,
//   reason, hint, stderrTail[], logFile}, nodes[{nodeRank, host, processCount,
//   trainrunPid, workdir}], ranks[{rank, nodeRank, localRank, pid, exitCode, signal,
//   seconds, stoppedByTrainrun}], command[], source{...}, job{... redacted},
//   attempts[{attempt, start, end, outcome, exitCode, failedRank, failedNodeRank,
//   reason, next}] (a run that allows restarts), warnings[], skippedSymlinks[{path, target}],
//   uploadErrors[], details{...}, trainrunVersion.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/clock.h"
#include "base/status.h"

namespace trainrun {

constexpr const char* kRunRecordName = "run.json";

enum class RunStatus { kPreparing, kRunning, kFinalizing, kCompleted, kFailed, kCanceled };
std::string_view RunStatusName(RunStatus status);
bool ParseRunStatus(std::string_view name, RunStatus* out);
bool IsFinal(RunStatus status);

struct FailureRecord {
  int rank = 0;
  int node_rank = 0;
  std::string host;
  int pid = 0;
  int exit_code = 0;
  int signal = 0;
  std::string reason;
  std::string hint;
  std::vector<std::string> stderr_tail;
  std::string log_file;  // key of the rank's log in run history
};

struct NodeRecord {
  int node_rank = 0;
  std::string host;
  int process_count = 0;
  int trainrun_pid = 0;
  std::string workdir;
};

struct RankRecord {
  int rank = 0;
  int node_rank = 0;
  int local_rank = 0;
  int pid = 0;
  int exit_code = 0;
  int signal = 0;
  double seconds = 0;
  bool stopped_by_trainrun = false;
  // Still there after SIGKILL and the unkillable timeout: what /proc said of it
  // ("D", its wait channel). Empty unkillable_state for every other rank.
  std::string unkillable_state{};
  std::string unkillable_wchan{};
};

struct SkippedSymlink {
  std::string path;    // relative to the run in history, e.g. "outputs/data"
  std::string target;  // where it pointed
  // Why it was not followed: kOutsideWorkdir, or kAlreadyUploaded for a link to a
  // folder that is uploaded under its own name.
  std::string reason = kOutsideWorkdir;
  static constexpr const char* kOutsideWorkdir = "symlink outside the working directory";
  static constexpr const char* kAlreadyUploaded = "symlink to a folder uploaded under its own name";
};

// One start of the ranks, on a run that allows restarts (README "In-place restarts").
struct AttemptRecord {
  int attempt = 1;
  WallTime start{};
  std::optional<WallTime> end;  // none while it runs
  std::string outcome;          // "succeeded", "rank failed", "canceled", ...
  int exit_code = 0;
  std::optional<int> failed_rank;  // the rank whose failure ended it
  std::optional<int> failed_node_rank;
  std::string reason;  // the failure's reason, or why the ranks were stopped
  std::string next;    // what followed: "restart 1 of 3 in 1 s", "not restarted: ..."
};
nlohmann::json AttemptToJson(const AttemptRecord& a);
AttemptRecord AttemptFromJson(const nlohmann::json& j);

// One rank's or one failure's JSON, as in run.json and the control plane's messages.
nlohmann::json RankRecordToJson(const RankRecord& r);
RankRecord RankRecordFromJson(const nlohmann::json& j);
nlohmann::json FailureToJson(const FailureRecord& f);
FailureRecord FailureFromJson(const nlohmann::json& j);

struct RunRecord {
  std::string run_id;
  std::string experiment;
  RunStatus status = RunStatus::kPreparing;
  std::vector<std::pair<RunStatus, WallTime>> status_history;
  struct Phase {
    std::string name;
    WallTime start{};
    double seconds = -1;  // < 0 while the phase runs
  };
  std::vector<Phase> phases;
  std::optional<int> exit_code;
  std::string outcome;      // "succeeded", "rank failed", "timed out", "canceled", ...
  std::string stop_reason;  // why the ranks were stopped, if they were
  std::optional<FailureRecord> failure;
  std::vector<NodeRecord> nodes;
  std::vector<RankRecord> ranks;
  std::vector<AttemptRecord> attempts;                // empty: the run allows no restart
  std::vector<std::string> command;                   // rank 0's argv after placeholders
  nlohmann::json source = nlohmann::json::object();   // snapshot stats and git
  nlohmann::json job = nlohmann::json::object();      // the job file, redacted
  nlohmann::json details = nlohmann::json::object();  // data references, binding...
  std::vector<std::string> warnings;
  std::vector<SkippedSymlink> skipped_symlinks;
  std::vector<std::string> upload_errors;
  std::string trainrun_version;

  // Records the new status with its time and closes/opens the phase it implies.
  void SetStatus(RunStatus status, WallTime now);

  WallTime start_time() const;
  std::optional<WallTime> end_time() const;

  nlohmann::json ToJson() const;
  // Reads what ToJson wrote; unknown fields are ignored (newer writers).
  static Result<RunRecord> FromJson(const nlohmann::json& json);
};

}  // namespace trainrun
