// LogPump: one thread that reads every rank's stdout and stderr pipes as fast as
// they fill and writes them, line by line and in arrival order, to the rank's log
// file; copies lines to the console (prefixed "[rank N] ") when asked; and keeps the
// last lines of each rank's stderr for the failure summary.
//
// The ranks never wait on the console: the pump only waits on its own file writes,
// and the console is a queue that drops (and counts) when it falls behind. Nothing
// is ever dropped from the log files while they can be written. When a write fails
// (a full disk, an I/O error) the rank's log is cut back to its last whole line and
// not written again; what the rank writes from then on goes to the console (when
// there is one) and is counted, and LostOutputs() says from where.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "base/clock.h"
#include "base/status.h"
#include "runtime/report/console.h"

namespace trainrun {

constexpr size_t kDefaultStderrTailLines = 20;
// Descriptors a rank costs trainrun at most: its stdout and stderr pipes, both
// ends, until it is spawned; then the read ends and its log file, opened at its
// first output.
constexpr int kFdsPerRank = 4;

// The write ends a rank's stdout and stderr go to. Owned by the LogPump until
// CloseChildEnds().
struct RankPipes {
  int stdout_fd = -1;
  int stderr_fd = -1;
};

// A rank's output that did not reach its log file.
struct LostOutput {
  int rank = 0;
  std::string file;         // the log file
  uint64_t kept_bytes = 0;  // the file holds the rank's output up to here, whole lines
  WallTime since{};         // when the first write failed
  uint64_t lost_bytes = 0;  // output read from the rank after that (this byte and on)
  bool to_console = false;  // whether those lines were copied to the console
  Status error;             // why the write failed
};

class LogPump {
 public:
  // `console` may be null (no console output). Not owned.
  explicit LogPump(Console* console, size_t stderr_tail_lines = kDefaultStderrTailLines);
  // Stops the thread and closes every descriptor.
  ~LogPump();
  LogPump(const LogPump&) = delete;
  LogPump& operator=(const LogPump&) = delete;

  // Creates the pipes for `rank` and `log_file` (appended to, opened on the
  // rank's first output). With
  // `to_console` its lines are also copied to the console, after `prefix`
  // ("[rank N] " when empty). Call before Start().
  Result<RankPipes> AddRank(int rank, const std::string& log_file, bool to_console,
                            const std::string& prefix = "");

  // Closes the write ends given to the children; call right after spawning all
  // ranks, or a pipe never reaches end-of-file.
  void CloseChildEnds();
  // The same for one rank, right after it was spawned (or could not be), so that
  // a node starting thousands of ranks holds at most kFdsPerRank each.
  void CloseChildEnds(int rank);

  // Starts the reading thread.
  Status Start();

  // Waits until every pipe reached end-of-file (every process holding a write end
  // exited) or `timeout` passed. Returns true when all are drained, and at once
  // when Start() was never called. Whatever was read is in the files either way.
  bool WaitDrained(Duration timeout);

  // The last lines the rank wrote to stderr, oldest first.
  std::vector<std::string> StderrTail(int rank) const;

  // Bytes written to the rank's log file so far.
  uint64_t BytesLogged(int rank) const;

  // The first error writing a log file (disk full...), or ok.
  Status write_status() const;

  // Every rank whose log could not be written, in the order of AddRank().
  std::vector<LostOutput> LostOutputs() const;

 private:
  struct Stream;
  struct RankLog;
  void Loop();
  void Consume(Stream& stream, const char* data, size_t size);
  void EmitLines(Stream& stream, std::string_view lines);
  void FlushPartial(Stream& stream);
  // Whether `data` reached the log file.
  bool WriteFile(RankLog& log, std::string_view data);
  // The rank's log is lost from here on: `lost_bytes` did not reach it, for `err`.
  // Requires mu_.
  void RecordLost(RankLog& log, size_t lost_bytes, int err);

  Console* console_;
  size_t tail_lines_;
  int epoll_fd_ = -1;
  int wake_fd_ = -1;
  std::vector<std::unique_ptr<RankLog>> ranks_;
  std::vector<std::unique_ptr<Stream>> streams_;
  std::thread thread_;
  std::atomic<bool> stop_{false};

  mutable std::mutex mu_;  // guards the tails, byte counts, drained flag, status
  std::condition_variable drained_cv_;
  bool drained_ = false;
  Status write_status_;
};

}  // namespace trainrun
