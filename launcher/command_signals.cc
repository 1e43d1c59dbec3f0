#include "launcher/command_signals.h"

#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <string>
#include <thread>

namespace trainrun {

namespace {

constexpr int kStopSignals[] = {SIGINT, SIGTERM, SIGHUP};

std::string SignalName(int signal) {
  switch (signal) {
    case SIGINT: return "SIGINT";
    case SIGTERM: return "SIGTERM";
    case SIGHUP: return "SIGHUP";
  }
  return "signal " + std::to_string(signal);
}

sigset_t StopSignalSet() {
  sigset_t set;
  sigemptyset(&set);
  for (int s : kStopSignals) sigaddset(&set, s);
  return set;
}

// Reads one signal from `fd` (non-blocking); 0 when none was there.
int ReadSignal(int fd) {
  signalfd_siginfo info{};
  ssize_t n = read(fd, &info, sizeof(info));
  return n == static_cast<ssize_t>(sizeof(info)) ? static_cast<int>(info.ssi_signo) : 0;
}

// Waits for `fd` to be readable for up to `timeout_ms` (-1: no limit); true when it
// is. EINTR cannot end it early: the signals it could come from are blocked.
bool WaitReadable(int fd, int other_fd, int timeout_ms, bool* other_ready) {
  pollfd fds[2] = {{fd, POLLIN, 0}, {other_fd, POLLIN, 0}};
  while (true) {
    int n = poll(fds, 2, timeout_ms);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    *other_ready = (fds[1].revents & POLLIN) != 0;
    return (fds[0].revents & POLLIN) != 0;
  }
}

}  // namespace

int ExitCodeForSignal(int signal) { return 128 + signal; }

int RunInterruptibly(const std::function<int(const CancelToken& cancel)>& command, Duration grace) {
  const sigset_t set = StopSignalSet();
  const int signal_fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
  const int done_fd = signal_fd < 0 ? -1 : eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (signal_fd < 0 || done_fd < 0) {
    // No way to hear them: let them end the process the default way.
    if (signal_fd >= 0) close(signal_fd);
    pthread_sigmask(SIG_UNBLOCK, &set, nullptr);
    CancelToken never;
    return command(never);
  }
  CancelToken cancel;
  std::atomic<int> received{0};
  std::thread watcher([&] {
    bool done = false;
    // Until the command is done or a signal comes (one already pending included).
    while (!done && received.load() == 0) {
      if (!WaitReadable(signal_fd, done_fd, -1, &done) && !done) return;
      if (done) return;
      if (int sig = ReadSignal(signal_fd); sig != 0) received.store(sig);
    }
    if (done) return;
    const int sig = received.load();
    if (grace <= Duration::zero()) _exit(ExitCodeForSignal(sig));
    cancel.Cancel(SignalName(sig));
    // The command cleans up and returns; a second signal or the grace running out
    // ends the process without it.
    const TimePoint deadline = SystemClock()->Now() + grace;
    while (true) {
      const Duration left = deadline - SystemClock()->Now();
      if (left <= Duration::zero()) _exit(ExitCodeForSignal(sig));
      bool finished = false;
      bool readable = WaitReadable(signal_fd, done_fd, PollTimeoutMs(left), &finished);
      if (finished) return;
      if (readable && ReadSignal(signal_fd) != 0) _exit(ExitCodeForSignal(sig));
    }
  });
  int code = command(cancel);
  const uint64_t one = 1;
  // An eventfd write of 1 cannot fail short of an overflow that cannot happen here.
  [[maybe_unused]] ssize_t n = write(done_fd, &one, sizeof(one));
  watcher.join();
  close(done_fd);
  close(signal_fd);
  if (int sig = received.load(); sig != 0) return ExitCodeForSignal(sig);
  return code;
}

}  // namespace trainrun
