// SignalCancel: turns a SIGTERM, SIGINT or SIGHUP to trainrun into a canceled
// CancelToken while a run prepares, so that the snapshot copy, the downloads, the
// mount waits and the rendezvous give up within a second instead of running on to
// the scheduler's SIGKILL. Internal to the launcher.
//
// main() blocks those signals in every thread (BlockSupervisionSignals), so they
// wait, pending, for the supervisor's signalfd. A thread of this object waits on a
// signalfd of its own without reading it: the signal stays pending, and the
// supervision loop (or the check after Preparing) still sees it as it always did.
#pragma once

#include <functional>
#include <thread>

#include "base/cancel.h"
#include "base/clock.h"
#include "base/status.h"

namespace trainrun {

class SignalCancel {
 public:
  // Starts watching: from now on a SIGTERM, SIGINT or SIGHUP (one already pending
  // included) cancels `token` with the signal's name as the reason ("SIGTERM").
  // Not owned: `token`, which must outlive this object. When the kernel refuses
  // the fds, nothing is watched and start_error() says why (the signals still
  // cancel the run once the ranks are supervised, as before). `seen`, when set, is
  // called on the watcher's thread with the signal (0 when it was taken before it
  // could be named) and when it came.
  explicit SignalCancel(CancelToken* token,
                        std::function<void(int signal, TimePoint at)> seen = nullptr);
  // Stops watching and joins the thread.
  ~SignalCancel();
  SignalCancel(const SignalCancel&) = delete;
  SignalCancel& operator=(const SignalCancel&) = delete;

  const Status& start_error() const { return start_error_; }

 private:
  void Watch();

  CancelToken* token_;
  std::function<void(int, TimePoint)> seen_;
  int signal_fd_ = -1;
  int stop_fd_ = -1;  // an eventfd: the destructor's "stop"
  Status start_error_;
  std::thread thread_;
};

}  // namespace trainrun
