#include "launcher/run_context.h"

#include <fmt/format.h>

#include "base/fs_util.h"
#include "launcher/terminal_reporter.h"

namespace trainrun {

RunReporting::RunReporting(const RunOptions& options, Console* err) {
  if (options.json_events) {
    console_ = std::make_unique<JsonLinesReporter>(err);
  } else {
    console_ = std::make_unique<TerminalReporter>(err, options.verbose);
  }
  all_.Add(console_.get());
  all_.Add(&warnings_);
  all_.Add(&early_);
}

void RunReporting::AttachSystemLog(std::unique_ptr<SystemLog> log) {
  system_log_ = std::move(log);
  early_.ReplayTo(system_log_.get());
  all_.Add(system_log_.get());
}

RunJournal::RunJournal(RunRecord record, std::string local_path, RunHistory* history,
                       bool saves_to_history, RunReporting* reporting)
    : record_(std::move(record)),
      local_path_(std::move(local_path)),
      history_(history),
      saves_to_history_(saves_to_history),
      reporting_(reporting) {}

void RunJournal::EnterPhase(RunStatus status) {
  const TimePoint now = SystemClock()->Now();
  double previous = record_.phases.empty() ? -1 : ToSeconds(now - phase_started_);
  phase_started_ = now;
  record_.SetStatus(status, SystemClock()->WallNow());
  if (!IsFinal(status)) {
    Phase phase = status == RunStatus::kPreparing ? Phase::kPreparing
                  : status == RunStatus::kRunning ? Phase::kRunning
                                                  : Phase::kFinalizing;
    reporting_->reporter()->PhaseStarted(phase, previous);
  }
}

void RunJournal::CollectWarnings() { record_.warnings = reporting_->warnings(); }

void RunJournal::Save() {
  CollectWarnings();
  Reporter* reporter = reporting_->reporter();
  std::string text = record_.ToJson().dump(2) + "\n";
  Status local = WriteFileAtomic(local_path_, text);
  if (!local.ok()) reporter->Warning(local.message());
  if (!saves_to_history_) return;  // the head keeps the job's record
  Status remote = history_->WriteRecord(record_);
  if (!remote.ok()) {
    reporter->Warning(fmt::format("run record not saved to history: {}", remote.message()));
  }
}

}  // namespace trainrun
