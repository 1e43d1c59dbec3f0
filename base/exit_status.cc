#include "base/exit_status.h"

#include <string.h>

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

std::string SignalName(int signal) {
  const char* abbrev = sigabbrev_np(signal);
  if (abbrev == nullptr) return fmt::format("signal {}", signal);
  return fmt::format("SIG{}", abbrev);
}

}  // namespace trainrun
