#include "runtime/cluster/control_server.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "base/fd_limit.h"
#include "base/net_util.h"
#include "base/send_queue.h"

namespace trainrun {
namespace {

constexpr uint64_t kListenTag = UINT64_MAX;
constexpr uint64_t kWakeTag = UINT64_MAX - 1;

}  // namespace

size_t DefaultMaxUnauthenticated(uint64_t fd_limit) {
  return std::clamp<uint64_t>(fd_limit / kUnauthenticatedFdShare, 1,
                              kMaxUnauthenticatedConnections);
}

struct ControlServer::Conn {
  int id = 0;
  int fd = -1;
  std::string peer;
  std::string local_ip;
  TimePoint opened{};
  FrameParser parser;
  std::unique_ptr<ServerHandshake> handshake;
  bool hello_seen = false;
  bool authenticated = false;  // written by the loop, read under mu_
  // Guarded by ControlServer::mu_:
  std::unique_ptr<FrameAuthenticator> outgoing;  // seals what is queued once authenticated
  SendQueue out;
  bool want_write = false;
  bool close_after_flush = false;
  bool closed = false;
  bool queued = false;  // in ControlServer::queued_
};

Result<std::unique_ptr<ControlServer>> ControlServer::Start(
    ControlServerOptions options,
    std::function<std::optional<std::string>(const std::string&)> key_for_role, Handler* handler) {
  std::unique_ptr<ControlServer> server(new ControlServer());
  server->options_ = options;
  server->key_for_role_ = std::move(key_for_role);
  server->handler_ = handler;
  server->max_unauthenticated_ = options.max_unauthenticated != 0
                                     ? options.max_unauthenticated
                                     : DefaultMaxUnauthenticated(SoftFdLimit());
  TR_ASSIGN_OR_RETURN(server->listen_fd_, ListenTcp(options.address, options.port));
  server->port_ = SocketPort(server->listen_fd_);
  server->epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
  server->wake_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (server->epoll_fd_ < 0 || server->wake_fd_ < 0) return ErrnoStatus(errno, "epoll/eventfd");
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = kWakeTag;
  epoll_ctl(server->epoll_fd_, EPOLL_CTL_ADD, server->wake_fd_, &ev);
  server->Listen();
  server->thread_ = std::thread([s = server.get()] { s->Loop(); });
  return server;
}

ControlServer::~ControlServer() {
  Shutdown(Duration::zero());
  std::lock_guard lock(mu_);
  for (auto& [id, conn] : conns_) {
    if (conn->fd >= 0) close(conn->fd);
  }
  conns_.clear();
  for (int fd : {listen_fd_, epoll_fd_, wake_fd_}) {
    if (fd >= 0) close(fd);
  }
}

void ControlServer::Shutdown(Duration flush) {
  if (!thread_.joinable()) return;
  drain_deadline_ = options_.clock->Now() + flush;
  draining_ = true;
  Wake();
  thread_.join();
}

void ControlServer::Wake() {
  // The loop itself handles what it queued before it waits again; from other
  // threads one write per wake-up is enough (the loop clears the flag before it
  // takes the queue, so a Send after that writes again).
  if (std::this_thread::get_id() == loop_id_.load()) return;
  if (wake_pending_.exchange(true)) return;
  uint64_t one = 1;
  ssize_t ignored = write(wake_fd_, &one, sizeof(one));
  (void)ignored;
}

bool ControlServer::Send(int conn_id, std::string frame) {
  {
    std::lock_guard lock(mu_);
    auto it = conns_.find(conn_id);
    if (it == conns_.end() || it->second->closed || it->second->close_after_flush) return false;
    Conn& conn = *it->second;
    if (conn.out.pending() + frame.size() > kMaxQueuedOutput) {
      conn.close_after_flush = true;  // a peer that stopped reading
      conn.out.Clear();
    } else {
      // Sealed in queue order, under the lock: the sequence numbers follow the wire.
      if (conn.outgoing) conn.outgoing->Seal(&frame);
      conn.out.out += frame;
    }
    QueueLocked(it->second);
  }
  Wake();
  return true;
}

void ControlServer::Close(int conn_id) {
  {
    std::lock_guard lock(mu_);
    auto it = conns_.find(conn_id);
    if (it == conns_.end()) return;
    it->second->close_after_flush = true;
    QueueLocked(it->second);
  }
  Wake();
}

void ControlServer::QueueLocked(const std::shared_ptr<Conn>& conn) {
  if (conn->queued) return;
  conn->queued = true;
  queued_.push_back(conn);
}

std::string ControlServer::LocalIpOf(int conn_id) {
  std::lock_guard lock(mu_);
  auto it = conns_.find(conn_id);
  return it == conns_.end() ? "" : it->second->local_ip;
}

std::string ControlServer::PeerOf(int conn_id) {
  std::lock_guard lock(mu_);
  auto it = conns_.find(conn_id);
  return it == conns_.end() ? "" : it->second->peer;
}

bool ControlServer::HasUnreadInput(int conn_id) {
  std::lock_guard lock(mu_);
  auto it = conns_.find(conn_id);
  if (it == conns_.end() || it->second->fd < 0) return false;
  int unread = 0;
  return ioctl(it->second->fd, FIONREAD, &unread) == 0 && unread > 0;
}

void ControlServer::Listen() {
  listen_again_at_.reset();
  if (listening_) return;
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = kListenTag;
  listening_ = epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, listen_fd_, &ev) == 0;
}

void ControlServer::StopListening(std::optional<TimePoint> until) {
  if (listening_) epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, listen_fd_, nullptr);
  listening_ = false;
  listen_again_at_ = until;
}

void ControlServer::EvictOldestUnauthenticated() {
  std::shared_ptr<Conn> victim;
  {
    std::lock_guard lock(mu_);
    // One that has not even said hello is the likelier idler; a real node says
    // hello as soon as it connects.
    for (int id : unauthenticated_) {
      const auto& conn = conns_.at(id);
      if (!conn->hello_seen) {
        victim = conn;
        break;
      }
    }
    if (!victim && !unauthenticated_.empty()) victim = conns_.at(*unauthenticated_.begin());
  }
  if (victim) {
    Refuse(victim,
           fmt::format("closed: {} connections were waiting to authenticate (the limit) and a "
                       "newer one came",
                       max_unauthenticated_),
           false);
  }
}

void ControlServer::Accept() {
  for (int batch = 0; batch < kAcceptBatch; ++batch) {
    int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
        // The connection stays in the backlog; the level-triggered listening
        // socket would report it again at once, for as long as no descriptor
        // frees up. Look again after a pause instead.
        const int err = errno;
        StopListening(options_.clock->Now() + kAcceptPause);
        handler_->OnRefused("(not accepted)",
                            fmt::format("accept: {}; not accepting for {} ms", std::strerror(err),
                                        kAcceptPause.count()));
      }
      return;  // EAGAIN: nothing left to accept
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    auto conn = std::make_shared<Conn>();
    conn->fd = fd;
    conn->peer = PeerName(fd);
    conn->local_ip = SocketIp(fd);
    conn->opened = options_.clock->Now();
    conn->handshake = std::make_unique<ServerHandshake>(key_for_role_);
    bool full;
    {
      std::lock_guard lock(mu_);
      full = unauthenticated_.size() >= max_unauthenticated_;
    }
    if (full) EvictOldestUnauthenticated();
    {
      std::lock_guard lock(mu_);
      conn->id = next_id_++;
      conns_[conn->id] = conn;
      unauthenticated_.insert(conn->id);
    }
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = static_cast<uint64_t>(conn->id);
    epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev);
  }
}

void ControlServer::Refuse(const std::shared_ptr<Conn>& conn, const std::string& reason,
                           bool tell_peer) {
  handler_->OnRefused(conn->peer, reason);
  if (tell_peer) {
    // Best effort, in one write: the peer may be gone already.
    std::string frame = EncodeJsonFrame(MessageType::kRefused, {{"reason", reason}});
    ssize_t ignored = send(conn->fd, frame.data(), frame.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    (void)ignored;
  }
  std::lock_guard lock(mu_);
  conn->closed = true;
  epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, conn->fd, nullptr);
  close(conn->fd);
  conn->fd = -1;
  conns_.erase(conn->id);
  unauthenticated_.erase(conn->id);
}

void ControlServer::Drop(const std::shared_ptr<Conn>& conn, const std::string& reason) {
  bool was_authenticated;
  {
    std::lock_guard lock(mu_);
    if (conn->closed) return;
    conn->closed = true;
    was_authenticated = conn->authenticated;
    epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, conn->fd, nullptr);
    close(conn->fd);
    conn->fd = -1;
    conns_.erase(conn->id);
    unauthenticated_.erase(conn->id);
  }
  if (was_authenticated) handler_->OnClosed(conn->id, reason);
}

void ControlServer::Handshake(const std::shared_ptr<Conn>& conn, const Frame& frame) {
  Result<nlohmann::json> body = DecodeJsonPayload(frame);
  if (!body.ok()) return Refuse(conn, body.status().message(), true);
  if (frame.type == MessageType::kHello && !conn->hello_seen) {
    conn->hello_seen = true;
    Result<nlohmann::json> challenge = conn->handshake->OnHello(*body);
    if (!challenge.ok()) return Refuse(conn, challenge.status().message(), true);
    Send(conn->id, EncodeJsonFrame(MessageType::kChallenge, *challenge));
    return;
  }
  if (frame.type == MessageType::kAuth && conn->hello_seen) {
    Result<nlohmann::json> welcome = conn->handshake->OnAuth(*body);
    if (!welcome.ok()) {
      return Refuse(conn,
                    fmt::format("{} (claimed role {}, node {})", welcome.status().message(),
                                conn->handshake->role(), conn->handshake->node_rank()),
                    true);
    }
    Send(conn->id, EncodeJsonFrame(MessageType::kWelcome, *welcome));
    // Every frame after Welcome and Auth carries a tag, both ways.
    const SessionKeys& keys = conn->handshake->session_keys();
    {
      std::lock_guard lock(mu_);
      conn->authenticated = true;
      conn->outgoing = std::make_unique<FrameAuthenticator>(keys.head_to_client);
      unauthenticated_.erase(conn->id);
    }
    conn->parser.Authenticate(std::make_unique<FrameAuthenticator>(keys.client_to_head));
    conn->parser.set_max_payload(kMaxControlPayload);
    handler_->OnAuthenticated(conn->id, conn->handshake->role(), conn->handshake->node_rank());
    return;
  }
  Refuse(conn, fmt::format("{} message before authenticating", MessageTypeName(frame.type)), true);
}

void ControlServer::Read(const std::shared_ptr<Conn>& conn) {
  char buffer[64 << 10];
  while (!conn->closed) {
    ssize_t n = recv(conn->fd, buffer, sizeof(buffer), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    if (n <= 0) {
      std::string reason = n == 0 ? "connection closed by the peer"
                                  : fmt::format("connection error: {}", std::strerror(errno));
      if (!conn->authenticated) {
        if (conn->hello_seen) handler_->OnRefused(conn->peer, "closed during the handshake");
        Drop(conn, reason);
        return;
      }
      return Drop(conn, reason);
    }
    conn->parser.Feed(std::string_view(buffer, static_cast<size_t>(n)));
    // A short read took what the socket held: the level-triggered epoll reports
    // the connection again when more comes, so no second recv() that would only
    // say EAGAIN (one syscall less per message: 4,096 nodes beat 4,096 times a
    // second).
    const bool drained = static_cast<size_t>(n) < sizeof(buffer);
    Frame frame;
    while (!conn->closed) {
      FrameParser::State state = conn->parser.Next(&frame);
      if (state == FrameParser::State::kNeedMore) break;
      if (state == FrameParser::State::kMalformed) {
        if (!conn->authenticated) return Refuse(conn, conn->parser.error(), true);
        if (conn->parser.authentication_failed()) {
          // Reported once: the connection is closed here, nothing more is read.
          handler_->OnRefused(conn->peer, conn->parser.error() + "; closed the connection");
          return Drop(conn, fmt::format("closed the connection from {}: {}", conn->peer,
                                        conn->parser.error()));
        }
        return Drop(conn, "malformed frame: " + conn->parser.error());
      }
      if (!conn->authenticated) {
        Handshake(conn, frame);
      } else {
        handler_->OnMessage(conn->id, frame);
      }
    }
    if (drained) return;
  }
}

void ControlServer::FlushLocked(Conn& conn) {
  const bool want = conn.out.Flush(conn.fd);
  if (want != conn.want_write && conn.fd >= 0) {
    epoll_event ev{};
    ev.events = want ? (EPOLLIN | EPOLLOUT) : EPOLLIN;
    ev.data.u64 = static_cast<uint64_t>(conn.id);
    epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, conn.fd, &ev);
    conn.want_write = want;
  }
}

void ControlServer::Loop() {
  loop_id_ = std::this_thread::get_id();
  Clock* clock = options_.clock;
  TimePoint next_tick = clock->Now() + kControlTick;
  epoll_event ready[64];
  while (true) {
    // Never asleep for more than a tick of real time, whatever the clock says:
    // a fake clock moves only when a test advances it, and nothing wakes this
    // loop then; bounded, the loop sees the new time within one tick. With the
    // real clock the next tick is never further away, so this changes nothing.
    const TimePoint now = clock->Now();
    if (draining_ && (listening_ || listen_again_at_)) StopListening(std::nullopt);
    if (listen_again_at_ && now >= *listen_again_at_) Listen();
    const int timeout_ms = PollTimeoutMs(std::min<Duration>(next_tick - now, kControlTick));
    bool queued;
    {
      // What this thread queued after the last flush (OnTick's broadcasts, a
      // Close) has no wake-up of its own (Wake): no sleep before it is written.
      std::lock_guard lock(mu_);
      queued = !queued_.empty();
    }
    int n = epoll_wait(epoll_fd_, ready, 64,
                       queued ? 0 : (draining_ ? std::min(timeout_ms, 10) : timeout_ms));
    if (n < 0 && errno != EINTR) break;
    for (int i = 0; i < n; ++i) {
      const uint64_t tag = ready[i].data.u64;
      if (tag == kListenTag) {
        if (listening_) Accept();
        continue;
      }
      if (tag == kWakeTag) {
        wake_pending_ = false;
        uint64_t count;
        while (read(wake_fd_, &count, sizeof(count)) > 0) {
        }
        continue;
      }
      std::shared_ptr<Conn> conn;
      {
        std::lock_guard lock(mu_);
        auto it = conns_.find(static_cast<int>(tag));
        if (it != conns_.end()) conn = it->second;
      }
      if (!conn) continue;
      if (ready[i].events & EPOLLOUT) {
        std::lock_guard lock(mu_);
        QueueLocked(conn);
      }
      if (ready[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) Read(conn);
    }
    // Write what was queued since the last turn (by any thread, or a socket that
    // can take more), and close what was asked to close: only those
    // connections, so a turn costs what happened in it, not one visit of every
    // connection (with thousands of nodes that visit was the head's cost per
    // message).
    std::vector<std::shared_ptr<Conn>> to_close;
    bool pending_output = false;
    {
      std::lock_guard lock(mu_);
      std::vector<std::shared_ptr<Conn>> queued;
      queued.swap(queued_);
      for (auto& conn : queued) {
        conn->queued = false;
        if (conn->closed) continue;
        FlushLocked(*conn);
        if (conn->close_after_flush && conn->out.empty()) to_close.push_back(conn);
      }
      // Shutting down: wait for every connection's output (once per turn, only then).
      if (draining_) {
        for (auto& [id, conn] : conns_) pending_output = pending_output || !conn->out.empty();
      }
    }
    for (auto& conn : to_close) Drop(conn, "closed by trainrun");
    if (draining_ && (!pending_output || clock->Now() >= drain_deadline_)) break;
    if (clock->Now() >= next_tick) {
      next_tick = clock->Now() + kControlTick;
      // Unauthenticated connections get handshake_timeout to prove themselves.
      // Oldest first, so the scan stops at the first one still in time.
      std::vector<std::shared_ptr<Conn>> late;
      {
        std::lock_guard lock(mu_);
        for (int id : unauthenticated_) {
          const auto& conn = conns_.at(id);
          if (clock->Now() - conn->opened <= options_.handshake_timeout) break;
          late.push_back(conn);
        }
      }
      for (auto& conn : late) Refuse(conn, "did not authenticate in time", false);
      if (!draining_) handler_->OnTick();
    }
  }
}

}  // namespace trainrun
