// What the phases of `trainrun run` (run_command.h) share, and nothing else: the
// reporters, the run record being written, and the cluster session. Everything a
// phase produces is in its own result (run_load.h, run_prepare.h, run_ranks.h) and
// handed on explicitly. Internal to the launcher.
#pragma once

#include <memory>
#include <string>

#include "base/cancel.h"
#include "base/space_reserve.h"
#include "launcher/cluster_run.h"
#include "launcher/run_options.h"
#include "launcher/stop_plan.h"
#include "runtime/report/buffered_reporter.h"
#include "runtime/report/console.h"
#include "runtime/report/reporter.h"
#include "runtime/report/system_log.h"
#include "runtime/run/history.h"

namespace trainrun {

// Where trainrun's own messages go: the console (text or JSON lines), the warnings
// collected for run.json, and the system log once the run directory exists (what
// was reported before it is replayed into it). Lives for the whole run.
class RunReporting {
 public:
  // Not owned: `err`, the console of trainrun's messages.
  RunReporting(const RunOptions& options, Console* err);
  RunReporting(const RunReporting&) = delete;
  RunReporting& operator=(const RunReporting&) = delete;

  // Every message of the run goes here. Valid as long as this object.
  Reporter* reporter() { return &all_; }
  // Every warning reported so far.
  std::vector<std::string> warnings() const { return warnings_.warnings(); }
  // On a multi-node job, labels the console's lines with this node's rank
  // (TerminalReporter::LabelNode; JSON lines carry no label).
  void LabelNode(int node_rank);
  // From now on messages go to `log` too, after what was reported before it.
  void AttachSystemLog(std::unique_ptr<SystemLog> log);

 private:
  std::unique_ptr<Reporter> console_;
  std::unique_ptr<SystemLog> system_log_;
  WarningCollector warnings_;
  BufferedReporter early_{SystemClock()};  // until the system log exists
  MultiReporter all_;
};

// Space kept next to run.json from the start for the final run record, so the run's
// last status reaches local disk even when the disk has filled up since. A record
// too large for it (thousands of ranks) is written without indentation.
constexpr uint64_t kRunRecordReserveBytes = 1 << 20;
constexpr const char* kRunRecordReserveName = ".run.json.reserve";

// The run record (run.json) as this node writes it, from the moment the run
// directory exists: the phases fill in record(), EnterPhase() moves the status on,
// Save() writes it.
class RunJournal {
 public:
  // `record` as laid out (run_load.h); it is saved to `local_path` and, when
  // `saves_to_history` (one node, or the head of a multi-node job, which keeps the
  // job's record), to `history`. Not owned: `history`, `reporting`.
  RunJournal(RunRecord record, std::string local_path, RunHistory* history, bool saves_to_history,
             RunReporting* reporting);

  RunRecord& record() { return record_; }
  // Sets the status (with its time) and, for Preparing, Running and Finalizing,
  // reports the phase with the seconds the previous one took.
  void EnterPhase(RunStatus status);
  // Copies the warnings reported so far into the record.
  void CollectWarnings();
  // Reserves kRunRecordReserveBytes beside the local run.json for the final record;
  // call once the run directory exists. A failure is a warning: the final record
  // then falls back as SaveLocally() says.
  void ReserveSpace();
  // CollectWarnings(), then writes the record to the run directory and to run
  // history; a failure to write either is a warning, not an error (see
  // history_saved()).
  void Save();
  // Writes the record to the run directory only. A final record (Completed, Failed,
  // Canceled) that cannot be written the usual way (a full disk) goes into the
  // space ReserveSpace() set aside, else to FallbackRecordPath(); each fallback is
  // reported, and an error says where the record is or that it was lost.
  void SaveLocally();
  // Whether the last Save() reached run history (true when this node does not save
  // there, or has not tried yet).
  bool history_saved() const { return history_status_.ok(); }
  const Status& history_status() const { return history_status_; }
  // Where a final record goes when the run directory cannot take it:
  // $TMPDIR (else /tmp)/trainrun-<experiment>-<runId>[-node<rank>-<host>].run.json.
  std::string FallbackRecordPath() const;

 private:
  RunRecord record_;
  std::string local_path_;
  RunHistory* history_;
  bool saves_to_history_;
  RunReporting* reporting_;
  TimePoint phase_started_{};
  SpaceReserve reserve_;
  Status history_status_;
};

// What every phase after Load gets. Set once by RunJob (run_command.cc); none of it
// is owned here.
struct RunContext {
  const RunOptions& options;  // the command line
  Console* out;               // rank output; the dry run's plan
  Reporter* reporter;         // RunReporting::reporter(): every message of the run
  // The run record; null before the run directory exists (and in a dry run).
  RunJournal* journal = nullptr;
  // The control plane of a multi-node job; null on one node and in a dry run.
  ClusterRun* cluster = nullptr;
  // Canceled when trainrun gets SIGTERM, SIGINT or SIGHUP (signal_cancel.h):
  // Preparing gives up soon after. Null: never (dry runs).
  const CancelToken* cancel = nullptr;
  // How a stop fits the scheduler's SIGTERM-to-SIGKILL budget; never null.
  StopPlan* stop = nullptr;
};

}  // namespace trainrun
