// The head's side of the control plane: a TCP listener and one thread that
// authenticates every connection (control_auth.h), reads frames
// (control_protocol.h) and hands authenticated ones to a Handler.
//
// Before a connection has authenticated it can only go through the handshake:
// its frames are limited to kMaxUnauthenticatedPayload, it has
// handshake_timeout to finish, and anything else closes it. At most
// max_unauthenticated such connections are kept, well below the open-file
// limit: a new one closes the oldest (one that has sent nothing yet first), so a
// flood of idle connections costs a bounded number of descriptors and a real
// node that connects during it still gets its turn. A refused peer is reported
// (OnRefused) with its address and the reason, never with anything it sent.
//
// When accept() finds no descriptor left (EMFILE, ENFILE), the listening socket
// is left out of the poll for kAcceptPause: it is level-triggered, so polling it
// on would spin the thread while the connection waits in the backlog.
//
// Cost at scale: a turn of the loop visits only the connections that had
// something happen (input, output queued by Send, a socket that can take more, a
// Close), never every connection, so the head's work per message and per frame
// sent is O(log N) in its N connections (the id lookup), and a broadcast to N
// nodes is N Sends and one wake-up of the loop.
//
// After the handshake every frame is sealed on Send and checked on arrival
// (control_protocol.h); the first one that fails the check closes the
// connection and is reported once through OnRefused, then OnClosed.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "base/clock.h"
#include "runtime/cluster/control_auth.h"
#include "runtime/cluster/control_protocol.h"

namespace trainrun {

// A real node finishes the handshake in two round trips; an idle connection is
// closed after this.
constexpr std::chrono::seconds kDefaultHandshakeTimeout{5};
// The cap on connections waiting to authenticate: at most this many, and at most
// 1/kUnauthenticatedFdShare of the soft open-file limit (DefaultMaxUnauthenticated).
constexpr size_t kMaxUnauthenticatedConnections = 256;
constexpr size_t kUnauthenticatedFdShare = 8;
// How long the listening socket is not polled after accept() ran out of
// descriptors (EMFILE, ENFILE, ENOBUFS, ENOMEM).
constexpr std::chrono::milliseconds kAcceptPause{100};
// Connections accepted per wake-up, so a flood cannot starve the open ones.
constexpr int kAcceptBatch = 64;
// Output queued for one peer past this is a peer that stopped reading: closed.
constexpr size_t kMaxQueuedOutput = 256 << 20;

struct ControlServerOptions {
  std::string address = "0.0.0.0";  // where to listen
  int port = 0;                     // 0: any free port (tests)
  Duration handshake_timeout = kDefaultHandshakeTimeout;
  // 0: DefaultMaxUnauthenticated(the soft open-file limit when Start is called).
  size_t max_unauthenticated = 0;
  // Ticks, handshake timeouts and the flush of Shutdown read this clock (not
  // owned; it must outlive the server and be safe to read from the server's
  // thread). A fake clock takes effect within a kControlTick of real time after
  // a test advances it: the server never waits longer than that for sockets.
  Clock* clock = SystemClock();
};

// min(kMaxUnauthenticatedConnections, fd_limit / kUnauthenticatedFdShare), at
// least 1.
size_t DefaultMaxUnauthenticated(uint64_t fd_limit);

class ControlServer {
 public:
  // Called on the server thread, one call at a time. A handler may call Send
  // and Close from inside.
  class Handler {
   public:
    virtual ~Handler() = default;
    // `conn` passed the handshake as `role` claiming `node_rank`.
    virtual void OnAuthenticated(int conn, const std::string& role, int node_rank) = 0;
    virtual void OnMessage(int conn, const Frame& frame) = 0;
    // An authenticated connection ended (peer closed, error, Close()).
    virtual void OnClosed(int conn, const std::string& reason) = 0;
    // A peer was turned away before authenticating, an authenticated connection
    // was closed at a frame that failed authentication, or (with the peer
    // "(not accepted)") accept() ran out of descriptors and accepting pauses.
    // May come in floods: count, do not keep (refusal_tally.h).
    virtual void OnRefused(const std::string& peer, const std::string& reason) = 0;
    // About every kControlTick, for heartbeats and timeouts.
    virtual void OnTick() = 0;
  };

  // Listens and starts the thread. `key_for_role` as in ServerHandshake.
  static Result<std::unique_ptr<ControlServer>> Start(
      ControlServerOptions options,
      std::function<std::optional<std::string>(const std::string&)> key_for_role, Handler* handler);
  // Stops the thread and closes every connection.
  ~ControlServer();

  int port() const { return port_; }
  // The cap in effect on connections waiting to authenticate.
  size_t max_unauthenticated() const { return max_unauthenticated_; }

  // Queues a whole frame for `conn` (encoded without a tag; sealed here once
  // the connection has authenticated). False when the connection is gone. Any
  // thread.
  bool Send(int conn, std::string frame);
  // Closes `conn` once what was queued for it is written. Any thread.
  void Close(int conn);
  // The address the peer reached us at (our side of the connection), and the
  // peer's address, as "ip" and "ip:port".
  std::string LocalIpOf(int conn);
  std::string PeerOf(int conn);
  // True when `conn`'s socket holds bytes this server has not read yet (the peer
  // spoke; the loop is behind); false when it holds none or the connection is
  // gone. Any thread.
  bool HasUnreadInput(int conn);

  // Stops accepting and ends the thread (what is queued is flushed for up to
  // `flush` of the options' clock first).
  void Shutdown(Duration flush = std::chrono::seconds(2));

 private:
  struct Conn;
  ControlServer() = default;
  void Loop();
  void Accept();
  // Leaves the listening socket out of the poll until `until` (accept pause), or
  // for good (draining); Listen() puts it back.
  void StopListening(std::optional<TimePoint> until);
  void Listen();
  // Makes room for one more connection waiting to authenticate.
  void EvictOldestUnauthenticated();
  void Read(const std::shared_ptr<Conn>& conn);
  void Handshake(const std::shared_ptr<Conn>& conn, const Frame& frame);
  void Refuse(const std::shared_ptr<Conn>& conn, const std::string& reason, bool tell_peer);
  void FlushLocked(Conn& conn);
  void Drop(const std::shared_ptr<Conn>& conn, const std::string& reason);
  // Puts `conn` on the loop's list of connections to flush (or close) next turn.
  void QueueLocked(const std::shared_ptr<Conn>& conn);
  void Wake();

  std::function<std::optional<std::string>(const std::string&)> key_for_role_;
  Handler* handler_ = nullptr;
  ControlServerOptions options_;
  int listen_fd_ = -1;
  int epoll_fd_ = -1;
  int wake_fd_ = -1;
  int port_ = 0;
  int next_id_ = 1;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> draining_{false};
  std::atomic<bool> wake_pending_{false};  // a write to wake_fd_ not yet read by the loop
  std::atomic<std::thread::id> loop_id_{};
  TimePoint drain_deadline_{};

  size_t max_unauthenticated_ = 0;
  // The server thread's only:
  bool listening_ = false;
  std::optional<TimePoint> listen_again_at_;  // the end of an accept pause

  std::mutex mu_;  // guards conns_, unauthenticated_ and every Conn's output and flags
  std::unordered_map<int, std::shared_ptr<Conn>> conns_;
  // Ids of the connections still in the handshake; ids grow, so oldest first.
  std::set<int> unauthenticated_;
  // Connections with output or a close request since the loop's last turn.
  std::vector<std::shared_ptr<Conn>> queued_;
};

}  // namespace trainrun
