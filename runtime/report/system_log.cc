#include "runtime/report/system_log.h"

#include <fcntl.h>
#include <unistd.h>

#include <filesystem>

#include <fmt/format.h>

#include "base/fs_util.h"

namespace trainrun {

Result<std::unique_ptr<SystemLog>> SystemLog::Open(const std::string& path, Clock* clock) {
  TR_RETURN_IF_ERROR(MakeDirs(std::filesystem::path(path).parent_path().string()));
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) return ErrnoStatus(errno, path);
  return std::unique_ptr<SystemLog>(new SystemLog(fd, path, clock));
}

SystemLog::~SystemLog() { close(fd_); }

void SystemLog::Line(std::string_view level, std::string_view message) {
  std::string text;
  // Multi-line messages (job file errors) keep their lines, each under the stamp.
  std::string stamp = FormatIso8601(clock_->WallNow());
  size_t start = 0;
  while (start <= message.size()) {
    size_t end = message.find('\n', start);
    if (end == std::string_view::npos) end = message.size();
    text += fmt::format("{} {:<7} {}\n", stamp, level, message.substr(start, end - start));
    start = end + 1;
  }
  std::lock_guard lock(mu_);
  ssize_t ignored = write(fd_, text.data(), text.size());
  (void)ignored;
}

void SystemLog::PhaseStarted(Phase phase, double previous_seconds) {
  if (previous_seconds >= 0) {
    Line("phase",
         fmt::format("{} (previous phase took {:.3f} s)", PhaseName(phase), previous_seconds));
  } else {
    Line("phase", PhaseName(phase));
  }
}

void SystemLog::RankStarted(int rank, int pid) {
  Line("rank", fmt::format("rank {} started, pid {}", rank, pid));
}

void SystemLog::RankExited(int rank, const ExitStatus& status, bool stopped_by_trainrun) {
  Line("rank", fmt::format("rank {} ended with {}{}", rank, status.Describe(),
                           stopped_by_trainrun ? " after trainrun stopped it" : ""));
}

void SystemLog::Transfer(const TransferProgress& p) {
  if (!p.finished) return;  // progress ticks are for terminals
  Line("info", fmt::format("{}: {} file(s), {}", p.what, p.files_done, FormatBytes(p.bytes_done)));
}

void SystemLog::Info(std::string_view message) { Line("info", message); }
void SystemLog::Notice(std::string_view message) { Line("notice", message); }
void SystemLog::Warning(std::string_view message) { Line("warning", message); }
void SystemLog::Error(std::string_view message) { Line("error", message); }

}  // namespace trainrun
