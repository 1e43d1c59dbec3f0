// How a process ended, and the names of signals: the small value types that the
// reporters, the supervisor and the run record all speak.
#pragma once

#include <string>

#include "base/status.h"

namespace trainrun {

// How a process ended: exactly one of `code` (exited) or `signal` (killed) is set.
// The shell's codes for a program that could not be started.
constexpr int kExitCodeNotExecutable = 126;
constexpr int kExitCodeCommandNotFound = 127;

struct ExitStatus {
  int code = 0;
  int signal = 0;

  bool success() const { return signal == 0 && code == 0; }
  // The shell convention: the exit code, or 128 + signal number.
  int ToExitCode() const { return signal != 0 ? 128 + signal : code; }
  // "exit code 3" or "signal 11 (SIGSEGV)".
  std::string Describe() const;
  // How a process that ended so is said to have ended: "exited with exit code 3",
  // "was killed by signal 11 (SIGSEGV)".
  std::string HowItEnded() const;
  // What a process that could not be started counts as, after the shell: 126 when
  // its program is not executable (`why` is kPermissionDenied), else 127.
  static ExitStatus CouldNotStart(const Status& why);
};

// "SIGSEGV" for 11; "signal 77" for numbers without a name.
std::string SignalName(int signal);

}  // namespace trainrun
