#include "launcher/terminal_reporter.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "base/fs_util.h"

namespace trainrun {
namespace {

constexpr std::string_view kBold = "\033[1m";
constexpr std::string_view kRed = "\033[31m";
constexpr std::string_view kYellow = "\033[33m";
constexpr std::string_view kDim = "\033[2m";
constexpr std::string_view kReset = "\033[0m";

}  // namespace

TerminalReporter::TerminalReporter(Console* console, bool verbose)
    : console_(console), verbose_(verbose), colour_(console->is_terminal()) {}

void TerminalReporter::Line(std::string_view colour, std::string_view label,
                            std::string_view message) {
  std::string text;
  std::string prefix;
  {
    std::lock_guard lock(mu_);
    if (bar_shown_) text = "\r\033[K";  // the bar gives way; the next update redraws it
    bar_shown_ = false;
    prefix = prefix_;
  }
  size_t start = 0;
  bool first = true;
  while (start <= message.size()) {
    size_t end = message.find('\n', start);
    if (end == std::string_view::npos) end = message.size();
    std::string_view line = message.substr(start, end - start);
    std::string head = first ? fmt::format("{}{}", prefix, label) : std::string(prefix.size(), ' ');
    if (colour_ && !colour.empty()) {
      text += fmt::format("{}{}{}{}\n", colour, head, line, kReset);
    } else {
      text += fmt::format("{}{}\n", head, line);
    }
    first = false;
    start = end + 1;
  }
  console_->Write(std::move(text), /*droppable=*/false);
}

void TerminalReporter::PhaseStarted(Phase phase, double previous_seconds) {
  if (previous_seconds >= 0) {
    Line(kBold, "",
         fmt::format("{} (previous phase {:.2f} s)", PhaseName(phase), previous_seconds));
  } else {
    Line(kBold, "", PhaseName(phase));
  }
}

void TerminalReporter::RankStarted(int rank, int pid) {
  if (verbose_) Line(kDim, "", fmt::format("rank {} started (pid {})", rank, pid));
}

void TerminalReporter::RankExited(int rank, const ExitStatus& status, bool stopped) {
  if (status.success() && !verbose_) return;
  if (stopped) {
    Line(kDim, "", fmt::format("rank {} stopped ({})", rank, status.Describe()));
  } else if (status.success()) {
    Line(kDim, "", fmt::format("rank {} finished", rank));
  } else {
    Line(kRed, "", fmt::format("rank {} failed: {}", rank, status.Describe()));
  }
}

std::string TerminalReporter::ProgressText(const TransferProgress& p, TimePoint now) const {
  double seconds = ToSeconds(now - progress_started_);
  double rate = seconds > 0 ? static_cast<double>(p.bytes_done) / seconds : 0;
  std::string amount = p.bytes_total > 0 ? fmt::format("{} of {}", FormatBytes(p.bytes_done),
                                                       FormatBytes(p.bytes_total))
                                         : FormatBytes(p.bytes_done);
  std::string files =
      p.files_total > 0 ? fmt::format(", {}/{} files", p.files_done, p.files_total) : "";
  std::string speed =
      rate > 0 ? fmt::format(", {}/s", FormatBytes(static_cast<uint64_t>(rate))) : "";
  if (p.bytes_total == 0) return fmt::format("{}: {}{}{}", p.what, amount, files, speed);
  double fraction =
      std::min(1.0, static_cast<double>(p.bytes_done) / static_cast<double>(p.bytes_total));
  if (!colour_) {
    return fmt::format("{}: {:.0f}% ({}{}{})", p.what, fraction * 100, amount, files, speed);
  }
  constexpr int kWidth = 30;
  int filled = static_cast<int>(fraction * kWidth);
  return fmt::format("{} [{}{}] {:3.0f}% {}{}{}", p.what, std::string(filled, '#'),
                     std::string(kWidth - filled, '.'), fraction * 100, amount, files, speed);
}

void TerminalReporter::Transfer(const TransferProgress& p) {
  const TimePoint now = SystemClock()->Now();
  if (p.finished) {
    {
      std::lock_guard lock(mu_);
      progress_what_.clear();
    }
    Line("", "",
         fmt::format("{}: {} file(s), {}", p.what, p.files_done, FormatBytes(p.bytes_done)));
    return;
  }
  std::lock_guard lock(mu_);
  if (p.what != progress_what_) {
    progress_what_ = p.what;
    progress_started_ = now;
    progress_last_ = TimePoint{};
  }
  if (colour_) {
    // On a terminal: the bar, redrawn in place.
    if (now - progress_last_ < kProgressRedraw) return;
    progress_last_ = now;
    console_->Write(fmt::format("\r\033[K{}{}", prefix_, ProgressText(p, now)), false);
    bar_shown_ = true;
    return;
  }
  // Elsewhere: a line now and then, the first one after an interval.
  if (progress_last_ == TimePoint{}) progress_last_ = now;
  if (now - progress_last_ < kProgressLineInterval) return;
  progress_last_ = now;
  console_->Write(fmt::format("{}{}\n", prefix_, ProgressText(p, now)), false);
}

void TerminalReporter::LabelNode(int node_rank) {
  std::lock_guard lock(mu_);
  prefix_ = fmt::format("trainrun [node {}]: ", node_rank);
}

void TerminalReporter::Info(std::string_view message) {
  if (verbose_) Line(kDim, "", message);
}
void TerminalReporter::Notice(std::string_view message) { Line("", "", message); }
void TerminalReporter::Warning(std::string_view message) { Line(kYellow, "warning: ", message); }
void TerminalReporter::Error(std::string_view message) { Line(kRed, "error: ", message); }

JsonLinesReporter::JsonLinesReporter(Console* console) : console_(console) {}

void JsonLinesReporter::Emit(nlohmann::json event) {
  event["time"] = FormatIso8601(SystemClock()->WallNow());
  console_->Write(event.dump() + "\n", /*droppable=*/false);
}

void JsonLinesReporter::PhaseStarted(Phase phase, double previous_seconds) {
  nlohmann::json j = {{"event", "phase"}, {"phase", PhaseName(phase)}};
  if (previous_seconds >= 0) j["previousSeconds"] = previous_seconds;
  Emit(std::move(j));
}
void JsonLinesReporter::RankStarted(int rank, int pid) {
  Emit(nlohmann::json{{"event", "rankStarted"}, {"rank", rank}, {"pid", pid}});
}
void JsonLinesReporter::RankExited(int rank, const ExitStatus& status, bool stopped) {
  Emit(nlohmann::json{{"event", "rankExited"},
                      {"rank", rank},
                      {"exitCode", status.code},
                      {"signal", status.signal},
                      {"stoppedByTrainrun", stopped}});
}
void JsonLinesReporter::Transfer(const TransferProgress& p) {
  Emit(nlohmann::json{{"event", "transfer"},
                      {"what", p.what},
                      {"bytesDone", p.bytes_done},
                      {"bytesTotal", p.bytes_total},
                      {"filesDone", p.files_done},
                      {"filesTotal", p.files_total},
                      {"finished", p.finished}});
}
void JsonLinesReporter::Info(std::string_view m) {
  Emit(nlohmann::json{{"event", "info"}, {"message", m}});
}
void JsonLinesReporter::Notice(std::string_view m) {
  Emit(nlohmann::json{{"event", "notice"}, {"message", m}});
}
void JsonLinesReporter::Warning(std::string_view m) {
  Emit(nlohmann::json{{"event", "warning"}, {"message", m}});
}
void JsonLinesReporter::Error(std::string_view m) {
  Emit(nlohmann::json{{"event", "error"}, {"message", m}});
}

}  // namespace trainrun
