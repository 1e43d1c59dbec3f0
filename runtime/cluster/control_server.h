// The head's side of the control plane: a TCP listener and one thread that
// authenticates every connection (control_auth.h), reads frames
// (control_protocol.h) and hands authenticated ones to a Handler.
//
// Before a connection has authenticated it can only go through the handshake:
// its frames are limited to kMaxUnauthenticatedPayload, it has
// handshake_timeout to finish, at most max_unauthenticated such connections are
// kept, and anything else closes it. A refused peer is reported (OnRefused)
// with its address and the reason, never with anything it sent.
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
#include <string>
#include <thread>

#include "base/clock.h"
#include "runtime/cluster/control_auth.h"
#include "runtime/cluster/control_protocol.h"

namespace trainrun {

constexpr std::chrono::seconds kDefaultHandshakeTimeout{10};
constexpr size_t kDefaultMaxUnauthenticated = 1024;
// Output queued for one peer past this is a peer that stopped reading: closed.
constexpr size_t kMaxQueuedOutput = 256 << 20;

struct ControlServerOptions {
  std::string address = "0.0.0.0";  // where to listen
  int port = 0;                     // 0: any free port (tests)
  Duration handshake_timeout = kDefaultHandshakeTimeout;
  size_t max_unauthenticated = kDefaultMaxUnauthenticated;
  // Ticks, handshake timeouts and the flush of Shutdown read this clock (not
  // owned; it must outlive the server and be safe to read from the server's
  // thread). A fake clock takes effect within a kControlTick of real time after
  // a test advances it: the server never waits longer than that for sockets.
  Clock* clock = SystemClock();
};

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
    // A peer was turned away before authenticating, or an authenticated
    // connection was closed at a frame that failed authentication.
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

  // Stops accepting and ends the thread (what is queued is flushed for up to
  // `flush` of the options' clock first).
  void Shutdown(Duration flush = std::chrono::seconds(2));

 private:
  struct Conn;
  ControlServer() = default;
  void Loop();
  void Accept();
  void Read(const std::shared_ptr<Conn>& conn);
  void Handshake(const std::shared_ptr<Conn>& conn, const Frame& frame);
  void Refuse(const std::shared_ptr<Conn>& conn, const std::string& reason, bool tell_peer);
  void FlushLocked(Conn& conn);
  void Drop(const std::shared_ptr<Conn>& conn, const std::string& reason);
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
  TimePoint drain_deadline_{};

  std::mutex mu_;  // guards conns_ and every Conn's output and flags
  std::map<int, std::shared_ptr<Conn>> conns_;
};

}  // namespace trainrun
