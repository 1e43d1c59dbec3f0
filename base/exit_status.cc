#include "base/exit_status.h"

#include <signal.h>

#include <fmt/format.h>

namespace trainrun {

std::string ExitStatus::Describe() const {
  if (signal != 0) return fmt::format("signal {} ({})", signal, SignalName(signal));
  return fmt::format("exit code {}", code);
}

std::string ExitStatus::HowItEnded() const {
  return signal != 0 ? fmt::format("was killed by {}", Describe())
                     : fmt::format("exited with {}", Describe());
}

ExitStatus ExitStatus::CouldNotStart(const Status& why) {
  ExitStatus status;
  status.code = why.code() == StatusCode::kPermissionDenied ? kExitCodeNotExecutable
                                                            : kExitCodeCommandNotFound;
  return status;
}

// Linux's signal names, as sigabbrev_np(3) gives them; spelled out here because
// sigabbrev_np is glibc 2.32 and the portable trainrun runs on 2.31.
std::string SignalName(int signal) {
  switch (signal) {
#define TRAINRUN_SIGNAL(name) \
  case name: return #name;
    TRAINRUN_SIGNAL(SIGHUP)
    TRAINRUN_SIGNAL(SIGINT)
    TRAINRUN_SIGNAL(SIGQUIT)
    TRAINRUN_SIGNAL(SIGILL)
    TRAINRUN_SIGNAL(SIGTRAP)
    TRAINRUN_SIGNAL(SIGABRT)
    TRAINRUN_SIGNAL(SIGBUS)
    TRAINRUN_SIGNAL(SIGFPE)
    TRAINRUN_SIGNAL(SIGKILL)
    TRAINRUN_SIGNAL(SIGUSR1)
    TRAINRUN_SIGNAL(SIGSEGV)
    TRAINRUN_SIGNAL(SIGUSR2)
    TRAINRUN_SIGNAL(SIGPIPE)
    TRAINRUN_SIGNAL(SIGALRM)
    TRAINRUN_SIGNAL(SIGTERM)
    TRAINRUN_SIGNAL(SIGSTKFLT)
    TRAINRUN_SIGNAL(SIGCHLD)
    TRAINRUN_SIGNAL(SIGCONT)
    TRAINRUN_SIGNAL(SIGSTOP)
    TRAINRUN_SIGNAL(SIGTSTP)
    TRAINRUN_SIGNAL(SIGTTIN)
    TRAINRUN_SIGNAL(SIGTTOU)
    TRAINRUN_SIGNAL(SIGURG)
    TRAINRUN_SIGNAL(SIGXCPU)
    TRAINRUN_SIGNAL(SIGXFSZ)
    TRAINRUN_SIGNAL(SIGVTALRM)
    TRAINRUN_SIGNAL(SIGPROF)
    TRAINRUN_SIGNAL(SIGWINCH)
    TRAINRUN_SIGNAL(SIGPOLL)
    TRAINRUN_SIGNAL(SIGPWR)
    TRAINRUN_SIGNAL(SIGSYS)
#undef TRAINRUN_SIGNAL
  }
  return fmt::format("signal {}", signal);
}

}  // namespace trainrun
