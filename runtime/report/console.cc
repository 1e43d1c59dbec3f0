#include "runtime/report/console.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <vector>

#include <fmt/format.h>

namespace trainrun {
namespace {

// The writer takes up to this much queued text per write.
constexpr size_t kMaxBatch = 1 << 20;
// Without a better idea of the room left, a blocking pipe or terminal accepts
// PIPE_BUF bytes once poll() says POLLOUT.
constexpr size_t kSafeChunk = 4096;
constexpr int kPollMillis = 100;

// How much can be written to `fd` now without blocking: for a pipe, the free part of
// its buffer; for files, anything; otherwise a small safe chunk.
size_t WritableBytes(int fd, bool is_pipe) {
  if (!is_pipe) return kSafeChunk;
  int capacity = fcntl(fd, F_GETPIPE_SZ);
  int unread = 0;
  if (capacity <= 0 || ioctl(fd, FIONREAD, &unread) != 0) return kSafeChunk;
  return capacity > unread ? static_cast<size_t>(capacity - unread) : 0;
}

}  // namespace

Console::Console(int fd, size_t max_queued_bytes)
    : fd_(fd), max_queued_bytes_(max_queued_bytes), is_terminal_(isatty(fd) == 1) {
  struct stat st {};
  if (fstat(fd, &st) == 0) {
    is_file_ = S_ISREG(st.st_mode) || (S_ISCHR(st.st_mode) && !is_terminal_);
    is_pipe_ = S_ISFIFO(st.st_mode);
  }
  writer_ = std::thread([this] { WriterLoop(); });
}

Console::~Console() {
  Flush(std::chrono::seconds(2));
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  writer_.join();
}

void Console::Write(std::string text, bool droppable) {
  if (text.empty()) return;
  {
    std::lock_guard lock(mu_);
    if (droppable && queued_bytes_ + text.size() > max_queued_bytes_) {
      ++dropped_lines_;
      ++dropped_unreported_;
      return;
    }
    if (dropped_unreported_ > 0) {
      std::string note = fmt::format(
          "[trainrun] {} line(s) not shown: the console was too slow; they are in the "
          "log files\n",
          dropped_unreported_);
      dropped_unreported_ = 0;
      queued_bytes_ += note.size();
      queue_.push_back(std::move(note));
    }
    queued_bytes_ += text.size();
    queue_.push_back(std::move(text));
  }
  cv_.notify_all();
}

bool Console::Flush(Duration timeout) {
  std::unique_lock lock(mu_);
  return cv_.wait_for(lock, timeout, [this] { return queue_.empty() && !writing_; });
}

uint64_t Console::dropped_lines() const {
  std::lock_guard lock(mu_);
  return dropped_lines_;
}

bool Console::WriteOut(const std::string& text) {
  size_t offset = 0;
  while (offset < text.size()) {
    size_t chunk = text.size() - offset;
    if (!is_file_) {
      pollfd pfd{fd_, POLLOUT, 0};
      int ready = poll(&pfd, 1, kPollMillis);
      if (ready == 0) {
        std::lock_guard check(mu_);
        if (stop_) return false;  // stuck console and trainrun is leaving
        continue;
      }
      if (ready < 0 && errno == EINTR) continue;
      if (ready < 0 || (pfd.revents & (POLLERR | POLLNVAL))) return true;
      chunk = std::min(chunk, std::max(WritableBytes(fd_, is_pipe_), kSafeChunk));
    }
    ssize_t n = write(fd_, text.data() + offset, chunk);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      return true;  // EPIPE and friends: the console is gone; nothing to do about it
    }
    offset += static_cast<size_t>(n);
  }
  return true;
}

void Console::WriterLoop() {
  std::unique_lock lock(mu_);
  std::vector<std::string> batch;
  while (true) {
    cv_.wait(lock, [this] { return stop_ || !queue_.empty(); });
    if (queue_.empty()) return;  // stop_ and nothing left
    // Take what is queued (moved, not copied) and write it outside the lock.
    size_t bytes = 0;
    while (!queue_.empty() && (batch.empty() || bytes + queue_.front().size() <= kMaxBatch)) {
      bytes += queue_.front().size();
      batch.push_back(std::move(queue_.front()));
      queue_.pop_front();
    }
    writing_ = true;
    lock.unlock();
    bool keep_going = true;
    for (const std::string& text : batch) {
      if (keep_going) keep_going = WriteOut(text);
    }
    batch.clear();
    lock.lock();
    writing_ = false;
    queued_bytes_ -= bytes;
    if (!keep_going) {
      queue_.clear();
      queued_bytes_ = 0;
    }
    cv_.notify_all();
  }
}

}  // namespace trainrun
