#include "runtime/process/log_pump.h"

#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <optional>

#include <fmt/format.h>

namespace trainrun {
namespace {

constexpr size_t kReadChunk = 64 << 10;
// A line longer than this is written out before its newline arrives.
constexpr size_t kMaxPartialLine = 64 << 10;
// A partial line (a progress bar, a prompt) is shown after this much silence.
constexpr auto kPartialLineIdle = std::chrono::seconds(1);
constexpr int kPipeSize = 1 << 20;
constexpr size_t kMaxTailLineChars = 2000;

}  // namespace

struct LogPump::RankLog {
  int rank = 0;
  int file_fd = -1;  // opened at the first output; -1 again once a write failed (lost)
  off_t start = 0;   // the file's size when it was created
  std::string file;
  bool to_console = false;
  std::string prefix;
  std::deque<std::string> stderr_tail;  // guarded by LogPump::mu_
  uint64_t bytes = 0;                   // guarded by LogPump::mu_
  std::optional<LostOutput> lost;       // guarded by LogPump::mu_; set once a write fails
};

struct LogPump::Stream {
  RankLog* log = nullptr;
  bool is_stderr = false;
  int read_fd = -1;
  int child_fd = -1;
  bool open = true;
  std::string partial;
  TimePoint last_data{};
};

LogPump::LogPump(Console* console, size_t stderr_tail_lines)
    : console_(console), tail_lines_(stderr_tail_lines) {
  epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
  wake_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
}

LogPump::~LogPump() {
  stop_ = true;
  if (wake_fd_ >= 0) {
    uint64_t one = 1;
    ssize_t ignored = write(wake_fd_, &one, sizeof(one));
    (void)ignored;
  }
  if (thread_.joinable()) thread_.join();
  CloseChildEnds();
  for (auto& stream : streams_) {
    if (stream->read_fd >= 0) close(stream->read_fd);
  }
  for (auto& log : ranks_) {
    if (log->file_fd >= 0) close(log->file_fd);
  }
  if (epoll_fd_ >= 0) close(epoll_fd_);
  if (wake_fd_ >= 0) close(wake_fd_);
}

Result<RankPipes> LogPump::AddRank(int rank, const std::string& log_file, bool to_console,
                                   const std::string& prefix) {
  if (epoll_fd_ < 0 || wake_fd_ < 0) return ErrnoStatus(errno, "log pump epoll");
  auto log = std::make_unique<RankLog>();
  log->rank = rank;
  log->file = log_file;
  log->to_console = to_console && console_ != nullptr;
  log->prefix = prefix.empty() ? fmt::format("[rank {}] ", rank) : prefix;
  // Created now (an unwritable folder is an error before anything starts) but
  // held open only from the rank's first output on: a rank that writes nothing
  // costs no descriptor for its log, and thousands of ranks starting at once
  // hold their pipes alone (kFdsPerRank).
  int created = open(log_file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (created < 0) return ErrnoStatus(errno, log_file);
  log->start = std::max<off_t>(0, lseek(created, 0, SEEK_END));
  close(created);

  RankPipes pipes;
  for (bool is_stderr : {false, true}) {
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) return ErrnoStatus(errno, "pipe2");
    fcntl(fds[0], F_SETPIPE_SZ, kPipeSize);  // best effort: fewer stalls for bursts
    fcntl(fds[0], F_SETFL, fcntl(fds[0], F_GETFL) | O_NONBLOCK);
    auto stream = std::make_unique<Stream>();
    stream->log = log.get();
    stream->is_stderr = is_stderr;
    stream->read_fd = fds[0];
    stream->child_fd = fds[1];
    (is_stderr ? pipes.stderr_fd : pipes.stdout_fd) = fds[1];
    streams_.push_back(std::move(stream));
  }
  ranks_.push_back(std::move(log));
  return pipes;
}

void LogPump::CloseChildEnds() {
  for (auto& stream : streams_) {
    if (stream->child_fd >= 0) {
      close(stream->child_fd);
      stream->child_fd = -1;
    }
  }
}

void LogPump::CloseChildEnds(int rank) {
  for (auto& stream : streams_) {
    if (stream->log->rank == rank && stream->child_fd >= 0) {
      close(stream->child_fd);
      stream->child_fd = -1;
    }
  }
}

Status LogPump::Start() {
  for (size_t i = 0; i < streams_.size(); ++i) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = i;
    if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, streams_[i]->read_fd, &ev) != 0) {
      return ErrnoStatus(errno, "epoll_ctl");
    }
  }
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = UINT64_MAX;
  if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, wake_fd_, &ev) != 0) {
    return ErrnoStatus(errno, "epoll_ctl");
  }
  thread_ = std::thread([this] { Loop(); });
  return Status::Ok();
}

void LogPump::RecordLost(RankLog& log, size_t lost_bytes, int err) {
  LostOutput lost;
  lost.rank = log.rank;
  lost.file = log.file;
  lost.kept_bytes = log.bytes;
  lost.since = SystemClock()->WallNow();
  lost.lost_bytes = lost_bytes;
  lost.to_console = console_ != nullptr;
  lost.error = ErrnoStatus(err, log.file);
  if (write_status_.ok()) write_status_ = lost.error;
  log.lost = std::move(lost);
}

bool LogPump::WriteFile(RankLog& log, std::string_view data) {
  if (log.lost) {
    std::lock_guard lock(mu_);
    log.lost->lost_bytes += data.size();
    return false;
  }
  if (log.file_fd < 0) {
    log.file_fd = open(log.file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (log.file_fd < 0) {
      const int err = errno;
      std::lock_guard lock(mu_);
      RecordLost(log, data.size(), err);
      return false;
    }
  }
  size_t offset = 0;
  while (offset < data.size()) {
    ssize_t n = write(log.file_fd, data.data() + offset, data.size() - offset);
    if (n >= 0) {
      offset += static_cast<size_t>(n);
      continue;
    }
    if (errno == EINTR) continue;
    const int err = errno;
    std::lock_guard lock(mu_);
    // The chunk is whole lines (or a partial line flushed on its own): cutting the
    // file back to before it leaves no half line at the end. Writing on after a gap
    // would hide the loss in the middle of the log, so the file is closed.
    int cut = ftruncate(log.file_fd, log.start + static_cast<off_t>(log.bytes));
    (void)cut;  // best effort: a file system that cannot write may not truncate either
    close(log.file_fd);
    log.file_fd = -1;
    RecordLost(log, data.size(), err);
    return false;
  }
  std::lock_guard lock(mu_);
  log.bytes += data.size();
  return true;
}

void LogPump::EmitLines(Stream& stream, std::string_view lines) {
  RankLog& log = *stream.log;
  // Lines the log file cannot take go to the console, the only place left for them.
  const bool written = WriteFile(log, lines);
  if (log.to_console || (!written && console_ != nullptr)) {
    std::string prefixed;
    prefixed.reserve(lines.size() + log.prefix.size() * 8);
    size_t start = 0;
    while (start < lines.size()) {
      size_t end = lines.find('\n', start);
      if (end == std::string_view::npos) end = lines.size() - 1;
      prefixed += log.prefix;
      prefixed.append(lines.substr(start, end - start + 1));
      start = end + 1;
    }
    if (prefixed.back() != '\n') prefixed += '\n';
    console_->Write(std::move(prefixed), /*droppable=*/true);
  }
  if (stream.is_stderr && tail_lines_ > 0) {
    // Only the last tail_lines_ lines of the chunk can survive; find where they start
    // without splitting the whole chunk.
    std::string_view body = lines;
    if (!body.empty() && body.back() == '\n') body.remove_suffix(1);
    size_t start = 0;
    size_t pos = body.size();
    for (size_t count = 0; count < tail_lines_; ++count) {
      size_t nl = pos == 0 ? std::string_view::npos : body.rfind('\n', pos - 1);
      if (nl == std::string_view::npos) {
        start = 0;
        break;
      }
      start = nl + 1;
      pos = nl;
    }
    std::lock_guard lock(mu_);
    pos = start;
    while (pos <= body.size()) {
      size_t end = body.find('\n', pos);
      if (end == std::string_view::npos) end = body.size();
      std::string line(body.substr(pos, std::min(end - pos, kMaxTailLineChars)));
      log.stderr_tail.push_back(std::move(line));
      if (log.stderr_tail.size() > tail_lines_) log.stderr_tail.pop_front();
      pos = end + 1;
    }
  }
}

void LogPump::FlushPartial(Stream& stream) {
  if (stream.partial.empty()) return;
  std::string text = std::move(stream.partial);
  stream.partial.clear();
  EmitLines(stream, text);
}

void LogPump::Consume(Stream& stream, const char* data, size_t size) {
  std::string_view chunk(data, size);
  size_t last_newline = chunk.rfind('\n');
  if (last_newline == std::string_view::npos) {
    stream.partial.append(chunk);
    if (stream.partial.size() > kMaxPartialLine) FlushPartial(stream);
    return;
  }
  if (stream.partial.empty()) {
    EmitLines(stream, chunk.substr(0, last_newline + 1));
  } else {
    stream.partial.append(chunk.substr(0, last_newline + 1));
    FlushPartial(stream);
  }
  stream.partial.assign(chunk.substr(last_newline + 1));
}

void LogPump::Loop() {
  std::vector<char> buffer(kReadChunk);
  size_t open_streams = streams_.size();
  auto mark_drained = [this] {
    std::lock_guard lock(mu_);
    drained_ = true;
    drained_cv_.notify_all();
  };
  if (open_streams == 0) mark_drained();
  epoll_event ready[16];
  while (!stop_ && open_streams > 0) {
    int n = epoll_wait(epoll_fd_, ready, 16, 250);
    if (n < 0 && errno != EINTR) break;
    const TimePoint now = SystemClock()->Now();
    for (int i = 0; i < n; ++i) {
      if (ready[i].data.u64 == UINT64_MAX) continue;  // wake-up for stop_
      Stream& stream = *streams_[ready[i].data.u64];
      if (!stream.open) continue;
      // Read a bounded amount per wake-up so one chatty rank cannot starve others.
      for (int round = 0; round < 16; ++round) {
        ssize_t got = read(stream.read_fd, buffer.data(), buffer.size());
        if (got > 0) {
          stream.last_data = now;
          Consume(stream, buffer.data(), static_cast<size_t>(got));
          continue;
        }
        if (got < 0 && (errno == EAGAIN || errno == EINTR)) break;
        // End of file (or an error that means the same): the writers are gone.
        FlushPartial(stream);
        epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, stream.read_fd, nullptr);
        close(stream.read_fd);
        stream.read_fd = -1;
        stream.open = false;
        --open_streams;
        break;
      }
    }
    for (auto& stream : streams_) {
      if (stream->open && !stream->partial.empty() && now - stream->last_data >= kPartialLineIdle) {
        FlushPartial(*stream);
      }
    }
  }
  if (open_streams == 0) mark_drained();
}

bool LogPump::WaitDrained(Duration timeout) {
  // Never started (the run ended before its ranks did): nothing was read, so there
  // is nothing to drain, and no reader would ever say so.
  if (!thread_.joinable()) return true;
  std::unique_lock lock(mu_);
  return drained_cv_.wait_for(lock, timeout, [this] { return drained_; });
}

std::vector<std::string> LogPump::StderrTail(int rank) const {
  std::lock_guard lock(mu_);
  for (const auto& log : ranks_) {
    if (log->rank == rank) return {log->stderr_tail.begin(), log->stderr_tail.end()};
  }
  return {};
}

uint64_t LogPump::BytesLogged(int rank) const {
  std::lock_guard lock(mu_);
  for (const auto& log : ranks_) {
    if (log->rank == rank) return log->bytes;
  }
  return 0;
}

Status LogPump::write_status() const {
  std::lock_guard lock(mu_);
  return write_status_;
}

std::vector<LostOutput> LogPump::LostOutputs() const {
  std::lock_guard lock(mu_);
  std::vector<LostOutput> out;
  for (const auto& log : ranks_) {
    if (log->lost) out.push_back(*log->lost);
  }
  return out;
}

}  // namespace trainrun
