#include "runtime/cluster/heartbeat.h"

namespace trainrun {

HeartbeatMonitor::HeartbeatMonitor(Clock* clock, HeartbeatOptions options)
    : clock_(clock), options_(options), next_send_(clock->Now()) {}

void HeartbeatMonitor::Add(int peer) {
  last_heard_[peer] = clock_->Now();
  if (!last_turn_) last_turn_ = last_heard_[peer];
}

void HeartbeatMonitor::Remove(int peer) { last_heard_.erase(peer); }

void HeartbeatMonitor::Heard(int peer) {
  auto it = last_heard_.find(peer);
  if (it != last_heard_.end()) it->second = clock_->Now();
}

std::optional<Duration> HeartbeatMonitor::Turn() {
  const TimePoint now = clock_->Now();
  std::optional<TimePoint> last = last_turn_;
  last_turn_ = now;
  if (!last || now - *last <= options_.timeout / 2) return std::nullopt;
  // What the peers sent while this loop was away is still unread or was just
  // read: their silence is unknown, so it starts again from here.
  for (auto& [peer, heard] : last_heard_) heard = now;
  return now - *last;
}

bool HeartbeatMonitor::SendDue() {
  const TimePoint now = clock_->Now();
  if (now < next_send_) return false;
  // Skip missed beats rather than sending a burst after a stall.
  next_send_ = now + options_.interval;
  return true;
}

std::vector<int> HeartbeatMonitor::Expired() {
  const TimePoint now = clock_->Now();
  std::vector<int> expired;
  for (auto it = last_heard_.begin(); it != last_heard_.end();) {
    if (now - it->second > options_.timeout) {
      expired.push_back(it->first);
      it = last_heard_.erase(it);
    } else {
      ++it;
    }
  }
  return expired;
}

Duration HeartbeatMonitor::SilenceOf(int peer) {
  auto it = last_heard_.find(peer);
  return it == last_heard_.end() ? Duration::zero() : clock_->Now() - it->second;
}

}  // namespace trainrun
