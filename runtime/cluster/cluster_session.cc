#include "runtime/cluster/cluster_session.h"

namespace trainrun {

void StopLatch::Set(StopNotice notice) {
  if (notice_) return;
  notice_ = std::move(notice);
  if (handler_) handler_(*notice_);
}

void StopLatch::SetHandler(std::function<void(const StopNotice&)> handler) {
  handler_ = std::move(handler);
  if (notice_ && handler_) handler_(*notice_);
}

void StopLatch::Clear() {
  notice_.reset();
  handler_ = nullptr;
}

namespace {

// How often a wait looks for a cancel and at the clock when nothing wakes it.
constexpr auto kWaitSlice = std::chrono::milliseconds(100);

}  // namespace

SessionBase::SessionBase(SessionOptions options) : options_(std::move(options)) {}

void SessionBase::SetStopHandler(std::function<void(const StopNotice&)> handler) {
  std::lock_guard lock(mu_);
  stop_.SetHandler(std::move(handler));
}

void SessionBase::SetServersStopHandler(std::function<void()> handler) {
  std::lock_guard lock(mu_);
  servers_stop_handler_ = std::move(handler);
  if (servers_stop_ && servers_stop_handler_) servers_stop_handler_();
}

void SessionBase::ServersStopLocked() {
  if (servers_stop_) return;
  servers_stop_ = true;
  if (servers_stop_handler_) servers_stop_handler_();
  cv_.notify_all();
}

std::optional<StopNotice> SessionBase::stop() {
  std::lock_guard lock(mu_);
  return stop_.notice();
}

bool SessionBase::Canceled() { return options_.cancel_requested && options_.cancel_requested(); }

bool SessionBase::WaitLocked(std::unique_lock<std::mutex>& lock, const std::function<bool()>& done,
                             std::optional<TimePoint> deadline) {
  while (!done()) {
    if (deadline && options_.clock->Now() >= *deadline) return false;
    if (!stop_.notice() && Canceled()) {
      CanceledLocked();
      continue;
    }
    cv_.wait_for(lock, kWaitSlice);
  }
  return true;
}

int64_t WallMillis() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace trainrun
