#include "launcher/signal_cancel.h"

#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <string>

namespace trainrun {

namespace {

constexpr int kCancelSignals[] = {SIGTERM, SIGINT, SIGHUP};

// The first cancel signal pending for the process; 0 when none is (any more).
int PendingSignal() {
  sigset_t pending;
  sigemptyset(&pending);
  if (sigpending(&pending) == 0) {
    for (int s : kCancelSignals) {
      if (sigismember(&pending, s) == 1) return s;
    }
  }
  return 0;
}

std::string SignalLabel(int signal) {
  switch (signal) {
    case SIGTERM: return "SIGTERM";
    case SIGINT: return "SIGINT";
    case SIGHUP: return "SIGHUP";
  }
  return "a signal";
}

}  // namespace

SignalCancel::SignalCancel(CancelToken* token, std::function<void(int, TimePoint)> seen)
    : token_(token), seen_(std::move(seen)) {
  sigset_t set;
  sigemptyset(&set);
  for (int s : kCancelSignals) sigaddset(&set, s);
  signal_fd_ = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
  if (signal_fd_ < 0) {
    start_error_ = ErrnoStatus(errno, "signalfd for the cancel signals");
    return;
  }
  stop_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (stop_fd_ < 0) {
    start_error_ = ErrnoStatus(errno, "eventfd for the signal watcher");
    return;
  }
  thread_ = std::thread([this] { Watch(); });
}

SignalCancel::~SignalCancel() {
  if (thread_.joinable()) {
    const uint64_t one = 1;
    // An eventfd write of 1 cannot fail short of an overflow that cannot happen here.
    [[maybe_unused]] ssize_t n = write(stop_fd_, &one, sizeof(one));
    thread_.join();
  }
  if (stop_fd_ >= 0) close(stop_fd_);
  if (signal_fd_ >= 0) close(signal_fd_);
}

void SignalCancel::Watch() {
  pollfd fds[2] = {{signal_fd_, POLLIN, 0}, {stop_fd_, POLLIN, 0}};
  while (true) {
    int n = poll(fds, 2, -1);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 || (fds[1].revents & POLLIN) != 0) return;
    if ((fds[0].revents & POLLIN) != 0) {
      // Readable means pending; the signalfd is never read, so the signal stays
      // pending for the supervisor.
      const TimePoint at = SystemClock()->Now();
      const int signal = PendingSignal();
      if (seen_) seen_(signal, at);
      token_->Cancel(SignalLabel(signal));
      return;
    }
  }
}

}  // namespace trainrun
