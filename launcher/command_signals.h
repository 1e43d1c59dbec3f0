// How the commands other than `trainrun run` end on SIGINT, SIGTERM and SIGHUP
// (`history ...`, `topology`). Internal to the launcher.
//
// main() blocks those signals in every thread before any exists (so that `run`
// can take them through signalfd). That also holds them, pending, for every other
// command, which would then never see them: a `history logs --follow` would only
// end on SIGKILL. RunInterruptibly() takes them from a signalfd of its own, which
// works as a PID namespace's init too (a blocked signal is queued even where one
// with the default action would be dropped).
#pragma once

#include <functional>

#include "base/cancel.h"
#include "base/clock.h"

namespace trainrun {

// How long a command that was asked to stop may take to clean up (remove a
// download's temporary files) before the process ends anyway.
constexpr auto kCommandStopGrace = std::chrono::seconds(5);

// The exit code of a command ended by `signal`: 128 + signal (130 for SIGINT, 143
// for SIGTERM, 129 for SIGHUP), as shells report a process killed by it.
int ExitCodeForSignal(int signal);

// Runs `command`, giving it a token that SIGINT, SIGTERM or SIGHUP cancels (the
// reason is the signal's name: "SIGINT"). Returns the command's exit code, or
// ExitCodeForSignal() when a signal came. With `grace` zero the process exits at
// once on the signal (for commands that write no file); otherwise the command
// should notice the token and return, and when it has not within `grace`, or a
// second signal comes, the process exits anyway with the same code (_exit: files
// the command writes must be written under temporary names). When no signalfd can
// be had, the signals are unblocked with their default action instead (the
// process dies of them, which a shell reports with the same code).
int RunInterruptibly(const std::function<int(const CancelToken& cancel)>& command, Duration grace);

}  // namespace trainrun
