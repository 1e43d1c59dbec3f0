#include "launcher/run_context.h"

#include <cstdlib>
#include <filesystem>

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

void RunReporting::LabelNode(int node_rank) {
  if (auto* terminal = dynamic_cast<TerminalReporter*>(console_.get())) {
    terminal->LabelNode(node_rank);
  }
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

void RunJournal::ReserveSpace() {
  const std::string path =
      (std::filesystem::path(local_path_).parent_path() / kRunRecordReserveName).string();
  Result<SpaceReserve> reserve = SpaceReserve::Create(path, kRunRecordReserveBytes);
  if (!reserve.ok()) {
    reporting_->reporter()->Warning(
        fmt::format("no space reserved for the final run record ({}); should the disk fill up, "
                    "it goes to {}",
                    reserve.status().message(), FallbackRecordPath()));
    return;
  }
  reserve_ = std::move(reserve).value();
}

std::string RunJournal::FallbackRecordPath() const {
  namespace fs = std::filesystem;
  const char* tmp = std::getenv("TMPDIR");
  std::string name = fmt::format("trainrun-{}-{}", record_.experiment, record_.run_id);
  // On a node of a multi-node job the run directory is node<rank>-<host>.
  const std::string leaf = fs::path(local_path_).parent_path().filename().string();
  if (leaf != record_.run_id) name += "-" + leaf;
  return (fs::path(tmp && *tmp ? tmp : "/tmp") / (name + ".run.json")).string();
}

void RunJournal::SaveLocally() {
  Reporter* reporter = reporting_->reporter();
  const nlohmann::json json = record_.ToJson();
  std::string text = json.dump(2) + "\n";
  Status local = WriteFileAtomic(local_path_, text);
  if (local.ok()) return;
  if (!IsFinal(record_.status)) {
    reporter->Warning(local.message());
    return;
  }
  // The last record of the run: it must be somewhere, whole.
  if (text.size() > reserve_.bytes()) text = json.dump() + "\n";
  Status reserved = reserve_.WriteAs(local_path_, text);
  if (reserved.ok()) {
    reporter->Warning(
        fmt::format("{}; the final run record was written into the space reserved "
                    "for it when the run began",
                    local.message()));
    return;
  }
  const std::string fallback = FallbackRecordPath();
  Status elsewhere = WriteFileAtomic(fallback, text);
  if (elsewhere.ok()) {
    reporter->Error(
        fmt::format("the final run record could not be written to {} ({}; {}); it is in {} instead",
                    local_path_, local.message(), reserved.message(), fallback));
    return;
  }
  reporter->Error(fmt::format(
      "the final run record was lost: not written to {} ({}; {}) nor to {} ({}); the run ended "
      "{} with exit code {}",
      local_path_, local.message(), reserved.message(), fallback, elsewhere.message(),
      RunStatusName(record_.status),
      record_.exit_code ? std::to_string(*record_.exit_code) : "unknown"));
}

void RunJournal::Save() {
  CollectWarnings();
  SaveLocally();
  if (!saves_to_history_) return;  // the head keeps the job's record
  history_status_ = history_->WriteRecord(record_);
  if (!history_status_.ok()) {
    reporting_->reporter()->Warning(
        fmt::format("run record not saved to history: {}", history_status_.message()));
  }
}

}  // namespace trainrun
