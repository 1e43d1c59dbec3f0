// CancelToken: a one-way "stop what you are doing" flag, set by whoever hears the
// reason (the launcher's signal watcher while a run prepares) and read by the long
// steps that must give up early: the snapshot copy, object-store transfers (through
// libcurl's progress callback), retry waits, mount waits.
//
// A token starts clear and, once Cancel() is called, stays canceled; the first
// reason given stands. Every method is safe from any thread at once, and
// canceled() is a single atomic load, cheap enough for a per-chunk check. The
// token is owned by whoever sets it; readers hold a `const CancelToken*` (null:
// never canceled) that must not outlive it.
#pragma once

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <string>

#include "base/clock.h"
#include "base/status.h"

namespace trainrun {

class CancelToken {
 public:
  CancelToken() = default;
  CancelToken(const CancelToken&) = delete;
  CancelToken& operator=(const CancelToken&) = delete;

  // Cancels; `reason` ("SIGTERM") is kept unless one was given before. Wakes
  // every WaitFor().
  void Cancel(const std::string& reason);
  bool canceled() const { return canceled_.load(std::memory_order_acquire); }
  // The first reason; "" while not canceled.
  std::string reason() const;

  // Waits up to `d` (real time) or until canceled, whichever comes first. Returns
  // canceled(): true at once when the token is canceled already.
  bool WaitFor(Duration d) const;

 private:
  std::atomic<bool> canceled_{false};
  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  std::string reason_;  // guarded by mu_
};

// Whether `token` (may be null) is canceled.
inline bool IsCanceled(const CancelToken* token) { return token != nullptr && token->canceled(); }

// The error a step returns when it stopped because `token` was canceled:
// kCanceled, "<what>: canceled (<reason>)".
Status CanceledError(const CancelToken& token, const std::string& what);

}  // namespace trainrun
