// Heartbeats: when to send ours, and which peers have been silent too long.
//
// Every message from a peer counts as a sign of life, not only heartbeats. The
// monitor does no I/O: the control server and client call it from their loops
// with the time of a clock, so silence and timeouts are tested with a fake
// clock.
//
// A loop that was stalled itself (its process stopped by SIGSTOP, swapped out,
// starved of CPU, its thread blocked) heard nothing while it was away, however
// much its peers said: Turn() notices the gap between two turns of the loop and
// gives every peer a fresh interval, so a node never blames the others for its
// own stall. A peer that is really gone is still lost, one timeout later.
#pragma once

#include <list>
#include <optional>
#include <unordered_map>
#include <vector>

#include "base/clock.h"

namespace trainrun {

constexpr std::chrono::seconds kDefaultHeartbeatTimeout{10};
// Beats go a quarter of the timeout apart, both ways: a peer is lost only after four
// in a row are missing. (torch elastic's c10d rendezvous keeps alive every 5 s.)
constexpr std::chrono::milliseconds kDefaultHeartbeatInterval =
    std::chrono::milliseconds(kDefaultHeartbeatTimeout) / 4;  // 2.5 s

// How often to beat a peer that does not tell its heartbeat timeout (an older
// trainrun, from before the join and the assignment carried it): every second, as
// nodes used to beat. Used both ways, by the head for such a node and by a node for
// such a head.
constexpr std::chrono::seconds kUntoldTimeoutBeatInterval{1};

struct HeartbeatOptions {
  Duration interval = kDefaultHeartbeatInterval;  // between our heartbeats
  Duration timeout = kDefaultHeartbeatTimeout;    // silence after which a peer is lost

  // The options for a timeout: beats a quarter of it apart.
  static HeartbeatOptions ForTimeout(Duration timeout) { return {timeout / 4, timeout}; }
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

  // The owner's loop calls this on every turn (tick), before Expired(). When
  // the loop comes back more than half the timeout after the previous turn, it
  // was stalled itself: every watched peer's silence restarts now and the
  // stall's length is returned (for the owner to log); otherwise nothing. The
  // measurement starts with the first Add() or Turn(), whichever comes first
  // (a loop stalled before its first turn is stalled too). Half, not the whole timeout: a
  // stall plus one interval of a peer's honest silence must stay below the
  // timeout (the interval is at most a quarter of it), or the frames the peer
  // sent during the stall, still unread when the loop's first tick runs, would
  // not save it.
  std::optional<Duration> Turn();

  // True when our next heartbeat is due; the next one is then due a send
  // interval later.
  bool SendDue();
  // How far apart SendDue() says yes: the options' interval until set. The head
  // beats as often as its most demanding node needs (a quarter of that node's
  // timeout), not as often as it hears from them.
  void set_send_interval(Duration interval) { send_interval_ = interval; }
  Duration send_interval() const { return send_interval_; }

  // Peers silent for longer than the timeout, each reported once (then
  // removed), in ascending order.
  std::vector<int> Expired();

  // How long a peer has been silent (zero for unknown peers).
  Duration SilenceOf(int peer);

  const HeartbeatOptions& options() const { return options_; }

 private:
  Clock* clock_;
  HeartbeatOptions options_;
  Duration send_interval_;
  TimePoint next_send_;
  // The peers, the longest silent first (the clock never goes back, so a peer
  // heard from moves to the back): Add, Remove and Heard are O(1), Expired looks
  // only at the peers it returns and one more. With thousands of nodes beating,
  // the head's cost per heartbeat stays constant.
  struct Peer {
    int id;
    TimePoint heard;
  };
  std::list<Peer> by_silence_;
  std::unordered_map<int, std::list<Peer>::iterator> peers_;
  std::optional<TimePoint> last_turn_;
};

}  // namespace trainrun
