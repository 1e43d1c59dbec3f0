// The process seam: spawn with argv, env, cwd, binding and fds; signal a process
// group; wait for exits, signals to trainrun and wake-ups.
//
// The supervisor talks only to ProcessSet, so its policy (fail-fast, grace periods,
// timeouts, cancel) is tested with a scripted fake in milliseconds and, through the
// same code, with real processes via PosixProcessSet (process_posix.h).
#pragma once

#include <signal.h>

#include <optional>
#include <string>
#include <vector>

#include "base/clock.h"
#include "base/exit_status.h"
#include "base/status.h"

namespace trainrun {

struct SpawnSpec {
  // argv[0] is looked up in the PATH of `env` when it has no '/'. Never run through
  // a shell.
  std::vector<std::string> argv;
  // The complete environment of the child, "NAME=value" entries.
  std::vector<std::string> env;
  // Working directory of the child; empty means trainrun's own.
  std::string cwd;
  // Descriptors to become the child's 0, 1 and 2; -1 means /dev/null for stdin and
  // trainrun's own for stdout and stderr. The caller keeps ownership.
  int stdin_fd = -1;
  int stdout_fd = -1;
  int stderr_fd = -1;
  // CPU affinity set before exec, as the kernel numbers CPUs (sched_setaffinity,
  // taskset; hwloc's OS index, not its logical index); empty = inherit.
  std::vector<int> cpus;
  // NUMA nodes (the kernel's node numbers) for MPOL_BIND set before exec, so the
  // program's first allocation already follows it; empty = inherit.
  std::vector<int> memory_nodes;
  // The signal the child gets when trainrun dies (PR_SET_PDEATHSIG). SIGKILL for
  // the ranks; a helper that must clean up (rclone unmounting) asks for SIGTERM.
  int parent_death_signal = SIGKILL;
};

// What /proc says about a process that would not die: its state letter from
// /proc/<pid>/stat ('D' for an uninterruptible sleep) and the kernel function it
// waits in (/proc/<pid>/wchan, e.g. "request_wait_answer" for a FUSE read). state 0
// when the process is gone or /proc could not be read; wchan empty when the kernel
// does not say.
struct ProcessState {
  char state = 0;
  std::string wchan;
};

struct ProcessEvent {
  enum class Kind {
    kExited,     // a process this set spawned ended: pid, status
    kSignal,     // trainrun itself received `signal` (SIGTERM, SIGINT, SIGHUP)
    kInterrupt,  // another thread called Interrupt()
  };
  Kind kind = Kind::kExited;
  int pid = 0;
  ExitStatus status;
  int signal = 0;
};

class ProcessSet {
 public:
  virtual ~ProcessSet() = default;

  // Starts a process in a new process group (pgid == pid) that gets
  // spec.parent_death_signal if trainrun dies. Every long-lived child of trainrun,
  // the ranks and helpers such as a data mount's rclone alike, starts here. Returns
  // its pid, or an error naming argv[0] and the reason (kNotFound when the program
  // does not exist, kPermissionDenied when it is not executable). Called from the
  // thread that calls Wait().
  virtual Result<int> Spawn(const SpawnSpec& spec) = 0;

  // Whether `pid`, spawned by this set, is still running: false once it ended,
  // whether or not Wait() reported that yet (Wait() still will), and for a pid this
  // set does not know. Does not block; for code that polls a helper it started
  // outside the supervision loop (a mount waiting for its rclone).
  virtual bool Running(int pid) = 0;

  // Sends `signal` to the process group `pgid`. A group that is already gone is not
  // an error.
  virtual Status SignalGroup(int pgid, int signal) = 0;

  // Blocks until at least one event is ready or `deadline` passes (then returns an
  // empty list). No deadline waits for ever. Exits of processes this set did not
  // spawn (orphans adopted as PID 1 or subreaper) are reaped and not reported.
  virtual std::vector<ProcessEvent> Wait(std::optional<TimePoint> deadline) = 0;

  // Makes a concurrent or the next Wait() return a kInterrupt event. Safe from any
  // thread.
  virtual void Interrupt() = 0;

  // What /proc says about `pid` now (see ProcessState). For the record of a rank that
  // outlived SIGKILL; the default knows nothing.
  virtual ProcessState Inspect(int pid) {
    (void)pid;
    return {};
  }

  // The clock that `deadline` values refer to.
  virtual Clock* clock() = 0;
};

}  // namespace trainrun
