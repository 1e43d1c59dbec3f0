// Console: a writer thread in front of a terminal, pipe or file descriptor, so that
// a slow or stuck console never blocks the ranks or the supervisor.
//
// Text is queued whole lines at a time. When the queue holds more than its limit,
// droppable text (rank output, which is complete in the log files anyway) is
// dropped and counted; the next line that gets through says how much was dropped.
// Messages from trainrun itself are never dropped.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <thread>

#include "base/clock.h"

namespace trainrun {

constexpr size_t kDefaultConsoleQueueBytes = 8 << 20;

class Console {
 public:
  // Writes to `fd` (not owned, never closed or made non-blocking).
  explicit Console(int fd, size_t max_queued_bytes = kDefaultConsoleQueueBytes);
  // Flushes for up to two seconds, then gives up on what is left.
  ~Console();
  Console(const Console&) = delete;
  Console& operator=(const Console&) = delete;

  // Queues `text`, which should end with a newline. Safe from any thread.
  void Write(std::string text, bool droppable);

  // Waits until the queue is written or `timeout` passes. True when empty.
  bool Flush(Duration timeout);

  bool is_terminal() const { return is_terminal_; }
  uint64_t dropped_lines() const;

 private:
  void WriterLoop();
  // Writes all of `text`; false when it gave up because the console is stuck and
  // the Console is being destroyed.
  bool WriteOut(const std::string& text);

  const int fd_;
  const size_t max_queued_bytes_;
  const bool is_terminal_;
  bool is_file_ = false;  // writes never wait long: no poll needed
  bool is_pipe_ = false;  // the free room can be measured
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::string> queue_;    // guarded by mu_
  size_t queued_bytes_ = 0;          // guarded by mu_
  uint64_t dropped_lines_ = 0;       // guarded by mu_
  uint64_t dropped_unreported_ = 0;  // guarded by mu_
  bool writing_ = false;             // guarded by mu_
  bool stop_ = false;                // guarded by mu_
  std::thread writer_;
};

}  // namespace trainrun
