#include "runtime/cluster/heartbeat.h"

#include <algorithm>

namespace trainrun {

HeartbeatMonitor::HeartbeatMonitor(Clock* clock, HeartbeatOptions options)
    : clock_(clock),
      options_(options),
      send_interval_(options.interval),
      next_send_(clock->Now()) {}

void HeartbeatMonitor::Add(int peer) {
  const TimePoint now = clock_->Now();
  Remove(peer);
  peers_[peer] = by_silence_.insert(by_silence_.end(), Peer{peer, now});
  if (!last_turn_) last_turn_ = now;
}

void HeartbeatMonitor::Remove(int peer) {
  auto it = peers_.find(peer);
  if (it == peers_.end()) return;
  by_silence_.erase(it->second);
  peers_.erase(it);
}

void HeartbeatMonitor::Heard(int peer) {
  auto it = peers_.find(peer);
  if (it == peers_.end()) return;
  it->second->heard = clock_->Now();
  by_silence_.splice(by_silence_.end(), by_silence_, it->second);
}

std::optional<Duration> HeartbeatMonitor::Turn() {
  const TimePoint now = clock_->Now();
  std::optional<TimePoint> last = last_turn_;
  last_turn_ = now;
  if (!last || now - *last <= options_.timeout / 2) return std::nullopt;
  // What the peers sent while this loop was away is still unread or was just
  // read: their silence is unknown, so it starts again from here.
  for (Peer& peer : by_silence_) peer.heard = now;
  return now - *last;
}

bool HeartbeatMonitor::SendDue() {
  const TimePoint now = clock_->Now();
  if (now < next_send_) return false;
  // Skip missed beats rather than sending a burst after a stall.
  next_send_ = now + send_interval_;
  return true;
}

std::vector<int> HeartbeatMonitor::Expired() {
  const TimePoint now = clock_->Now();
  std::vector<int> expired;
  while (!by_silence_.empty() && now - by_silence_.front().heard > options_.timeout) {
    expired.push_back(by_silence_.front().id);
    peers_.erase(by_silence_.front().id);
    by_silence_.pop_front();
  }
  std::sort(expired.begin(), expired.end());
  return expired;
}

Duration HeartbeatMonitor::SilenceOf(int peer) {
  auto it = peers_.find(peer);
  return it == peers_.end() ? Duration::zero() : clock_->Now() - it->second->heard;
}

}  // namespace trainrun
