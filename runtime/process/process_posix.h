// The real ProcessSet for Linux: fork/exec, signalfd, eventfd, epoll.
#pragma once

#include <memory>
#include <set>
#include <string>
#include <vector>

#include "runtime/process/process.h"

namespace trainrun {

// Blocks SIGCHLD, SIGTERM, SIGINT, SIGHUP and SIGPIPE-as-signal in the calling
// thread so they are read through a signalfd instead of interrupting anything.
// main() calls it first, before any thread starts, so every thread inherits the
// mask. Children get an empty mask and default dispositions back before exec.
void BlockSupervisionSignals();

// Whether a SIGTERM, SIGINT or SIGHUP is waiting (blocked) for a signalfd to read
// it: a cancel that arrived before the supervisor started listening.
bool SupervisionSignalPending();

class PosixProcessSet : public ProcessSet {
 public:
  // Creates the signalfd/eventfd/epoll set and makes trainrun the subreaper of its
  // descendants (PR_SET_CHILD_SUBREAPER), so orphans of the ranks are reaped here
  // whether or not trainrun is PID 1. Fails only if the kernel refuses the fds.
  static Result<std::unique_ptr<PosixProcessSet>> Create();
  ~PosixProcessSet() override;

  Result<int> Spawn(const SpawnSpec& spec) override;
  bool Running(int pid) override;
  Status SignalGroup(int pgid, int signal) override;
  std::vector<ProcessEvent> Wait(std::optional<TimePoint> deadline) override;
  void Interrupt() override;
  Clock* clock() override { return SystemClock(); }

  // Sends SIGKILL to every remaining child of trainrun that this set did not spawn
  // (orphans the ranks left behind and trainrun adopted). Returns their pids.
  std::vector<int> KillAdoptedOrphans();

  // How many adopted orphans Wait() reaped so far.
  int orphans_reaped() const { return orphans_reaped_; }

 private:
  PosixProcessSet() = default;
  void ReapChildren(std::vector<ProcessEvent>* events);

  int epoll_fd_ = -1;
  int signal_fd_ = -1;
  int event_fd_ = -1;
  std::set<int> live_;  // pids spawned by this set and not yet reaped
  int orphans_reaped_ = 0;
};

// Runs argv to completion (no shell) in `cwd` with trainrun's environment and
// returns its stdout; stdin and stderr are /dev/null. The child starts like every
// other (its own process group, killed if trainrun dies, a clean signal mask). A
// program that cannot start is an error naming argv[0] and the step that failed;
// an exit other than 0 is one naming argv[0] and the exit. For short helper
// commands such as `git rev-parse`; it reaps its child itself, so it must not run
// while another thread waits in a PosixProcessSet.
Result<std::string> CaptureOutput(const std::vector<std::string>& argv, const std::string& cwd);

// Looks `program` up in the ':'-separated `path_list` like execvp. A name with a
// '/' is returned as is when it exists.
Result<std::string> FindExecutable(const std::string& program, const std::string& path_list);

// FindExecutable on this process's PATH: the full path of `name`, or "".
std::string FindOnPath(const std::string& name);

}  // namespace trainrun
