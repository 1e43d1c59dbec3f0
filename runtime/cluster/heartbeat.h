// Heartbeats: when to send ours, and which peers have been silent too long.
//
// Every message from a peer counts as a sign of life, not only heartbeats. The
// monitor does no I/O: the control server and client call it from their loops
// with the time of a clock, so silence and timeouts are tested with a fake
// clock.
#pragma once

#include <map>
#include <vector>

#include "base/clock.h"

namespace trainrun {

constexpr std::chrono::seconds kDefaultHeartbeatInterval{1};
constexpr std::chrono::seconds kDefaultHeartbeatTimeout{10};

struct HeartbeatOptions {
  Duration interval = kDefaultHeartbeatInterval;  // between our heartbeats
  Duration timeout = kDefaultHeartbeatTimeout;    // silence after which a peer is lost
};

class HeartbeatMonitor {
 public:
  // Not thread-safe: one loop owns it. `clock` is not owned.
  HeartbeatMonitor(Clock* clock, HeartbeatOptions options);

  // Starts watching `peer` (heard from now). Adding it again restarts its
  // timer.
  void Add(int peer);
  void Remove(int peer);
  // Something arrived from `peer`.
  void Heard(int peer);

  // True when our next heartbeat is due; the next one is then due an interval
  // later.
  bool SendDue();

  // Peers silent for longer than the timeout, each reported once (then
  // removed).
  std::vector<int> Expired();

  // How long a peer has been silent (zero for unknown peers).
  Duration SilenceOf(int peer);

  const HeartbeatOptions& options() const { return options_; }

 private:
  Clock* clock_;
  HeartbeatOptions options_;
  TimePoint next_send_;
  std::map<int, TimePoint> last_heard_;
};

}  // namespace trainrun
