#include "tests/swarm/node_swarm.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <deque>
#include <functional>
#include <latch>
#include <thread>

#include <fmt/format.h>

#include "base/send_queue.h"
#include "runtime/cluster/control_auth.h"
#include "runtime/cluster/control_protocol.h"
#include "runtime/cluster/rendezvous.h"

namespace trainrun::testing {
namespace {

constexpr std::chrono::milliseconds kRetryDelay{100};
constexpr int kMaxConnects = 50;

TimePoint Now() { return std::chrono::steady_clock::now(); }

// A reset rather than a FIN: no TIME_WAIT keeps the local port.
void Reset(int fd) {
  linger l{1, 0};
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
  close(fd);
}

}  // namespace

struct NodeSwarm::Conn {
  enum class State { kIdle, kConnecting, kHello, kAuth, kJoined, kAssigned, kFailed };
  SwarmNode node;
  int fd = -1;
  State state = State::kIdle;
  std::unique_ptr<ClientHandshake> handshake;
  std::unique_ptr<FrameParser> parser;
  std::unique_ptr<FrameAuthenticator> outgoing;
  SendQueue out;
  bool want_write = false;
  bool awaiting_stop = false;  // counted in Slice::waiting
  TimePoint retry_at{};
  TimePoint next_beat{};
};

struct NodeSwarm::Slice {
  int epoll = -1;
  std::vector<Conn*> conns;
  // Rendezvous:
  int in_flight = 0;   // connecting or authenticating
  size_t settled = 0;  // assigned or failed
  std::deque<Conn*> retry;
  // FailAndWaitForStop:
  int waiting = 0;  // assigned, no Stop yet
  // Assigned nodes by their next heartbeat, soonest first (one interval for all).
  std::deque<Conn*> beats;
};

NodeSwarm::NodeSwarm(SwarmOptions options) : options_(std::move(options)) {
  const int simulated = std::max(0, options_.node_count - options_.first_rank);
  const int threads = std::clamp(options_.threads, 1, std::max(1, simulated));
  for (int t = 0; t < threads; ++t) {
    auto slice = std::make_unique<Slice>();
    slice->epoll = epoll_create1(EPOLL_CLOEXEC);
    slices_.push_back(std::move(slice));
  }
  for (int i = 0; i < simulated; ++i) {
    auto conn = std::make_unique<Conn>();
    conn->node.node_rank = options_.first_rank + i;
    // Contiguous slices: thread t serves about simulated / threads nodes.
    slices_[static_cast<size_t>(int64_t{i} * threads / simulated)]->conns.push_back(conn.get());
    conns_.push_back(std::move(conn));
  }
  Publish();
}

NodeSwarm::~NodeSwarm() {
  for (auto& conn : conns_) {
    if (conn->fd >= 0) Reset(conn->fd);
  }
  for (auto& slice : slices_) {
    if (slice->epoll >= 0) close(slice->epoll);
  }
}

void NodeSwarm::Publish() {
  view_.clear();
  view_.reserve(conns_.size());
  for (const auto& conn : conns_) view_.push_back(conn->node);
}

void NodeSwarm::RunSlices(const std::function<void(Slice&)>& body) {
  std::vector<std::thread> threads;
  for (size_t t = 1; t < slices_.size(); ++t) {
    threads.emplace_back([&, t] { body(*slices_[t]); });
  }
  body(*slices_[0]);
  for (auto& thread : threads) thread.join();
  Publish();
}

void NodeSwarm::Fail(Conn& conn, std::string error) {
  if (conn.state == Conn::State::kFailed) return;
  conn.node.error = std::move(error);
  conn.state = Conn::State::kFailed;
  if (conn.fd >= 0) Reset(conn.fd);
  conn.fd = -1;
}

bool NodeSwarm::Connect(Slice& slice, Conn& conn) {
  ++conn.node.connects;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(options_.port));
  if (inet_pton(AF_INET, options_.host.c_str(), &addr.sin_addr) != 1) {
    Fail(conn, fmt::format("{} is not an IPv4 address", options_.host));
    return false;
  }
  conn.fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (conn.fd < 0) {
    Fail(conn, fmt::format("socket: {} (the open-file limit?)", std::strerror(errno)));
    return false;
  }
  int one = 1;
  setsockopt(conn.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  if (connect(conn.fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 &&
      errno != EINPROGRESS) {
    Fail(conn,
         fmt::format("connect: {}{}", std::strerror(errno),
                     errno == EADDRNOTAVAIL ? " (no local port left: ip_local_port_range)" : ""));
    return false;
  }
  conn.state = Conn::State::kConnecting;
  conn.out.Clear();
  conn.want_write = true;
  epoll_event ev{};
  ev.events = EPOLLOUT | EPOLLIN;
  ev.data.ptr = &conn;
  epoll_ctl(slice.epoll, EPOLL_CTL_ADD, conn.fd, &ev);
  ++slice.in_flight;
  return true;
}

void NodeSwarm::Send(Slice& slice, Conn& conn, std::string frame) {
  if (conn.fd < 0) return;
  if (conn.outgoing) conn.outgoing->Seal(&frame);
  conn.out.out += frame;
  Flush(slice, conn);
}

void NodeSwarm::Flush(Slice& slice, Conn& conn) {
  const bool want = conn.out.Flush(conn.fd);
  if (conn.fd >= 0 && want != conn.want_write) {
    epoll_event ev{};
    ev.events = want ? (EPOLLIN | EPOLLOUT) : EPOLLIN;
    ev.data.ptr = &conn;
    epoll_ctl(slice.epoll, EPOLL_CTL_MOD, conn.fd, &ev);
    conn.want_write = want;
  }
}

void NodeSwarm::Retry(Slice& slice, Conn& conn, const std::string& why) {
  // Closed before the handshake completed (refused by a full backlog, or by the
  // head's cap on unauthenticated connections): like ControlClient, try again.
  --slice.in_flight;
  if (conn.node.connects >= kMaxConnects) {
    ++slice.settled;
    return Fail(conn, fmt::format("{} ({} attempts)", why, conn.node.connects));
  }
  Reset(conn.fd);
  conn.fd = -1;
  conn.state = Conn::State::kIdle;
  conn.retry_at = Now() + kRetryDelay;
  slice.retry.push_back(&conn);
}

void NodeSwarm::Read(Slice& slice, Conn& conn) {
  char buffer[16 << 10];
  while (conn.fd >= 0) {
    ssize_t n = recv(conn.fd, buffer, sizeof(buffer), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    if (n <= 0) {
      const std::string why = n == 0 ? "the head closed the connection"
                                     : fmt::format("connection error: {}", std::strerror(errno));
      if (conn.state == Conn::State::kHello || conn.state == Conn::State::kAuth) {
        return Retry(slice, conn, why);
      }
      if (conn.state == Conn::State::kJoined) ++slice.settled;
      if (conn.awaiting_stop) {
        conn.awaiting_stop = false;
        --slice.waiting;
      }
      return Fail(conn, why);
    }
    conn.parser->Feed(std::string_view(buffer, static_cast<size_t>(n)));
    Frame frame;
    while (conn.fd >= 0) {
      FrameParser::State state = conn.parser->Next(&frame);
      if (state == FrameParser::State::kNeedMore) break;
      if (state == FrameParser::State::kMalformed) {
        if (conn.state != Conn::State::kAssigned) ++slice.settled;
        if (conn.state == Conn::State::kHello || conn.state == Conn::State::kAuth) {
          --slice.in_flight;
        }
        return Fail(conn, "malformed frame from the head: " + conn.parser->error());
      }
      HandleFrame(slice, conn, static_cast<int>(frame.type), std::move(frame.payload));
    }
  }
}

void NodeSwarm::HandleFrame(Slice& slice, Conn& conn, int type_value, std::string payload) {
  const MessageType type = static_cast<MessageType>(type_value);
  Frame frame{type, std::move(payload)};
  const bool handshaking = conn.state == Conn::State::kHello || conn.state == Conn::State::kAuth;
  auto fail = [&](const std::string& why) {
    if (handshaking) --slice.in_flight;
    if (conn.state != Conn::State::kAssigned) ++slice.settled;
    if (conn.awaiting_stop) {
      conn.awaiting_stop = false;
      --slice.waiting;
    }
    Fail(conn, why);
  };
  Result<nlohmann::json> body = DecodeJsonPayload(frame);
  if (!body.ok()) return fail(body.status().message());
  if (type == MessageType::kRefused) return fail("refused: " + body->value("reason", ""));
  if (type == MessageType::kChallenge && conn.state == Conn::State::kHello) {
    Result<nlohmann::json> auth = conn.handshake->OnChallenge(*body);
    if (!auth.ok()) return fail(auth.status().message());
    conn.state = Conn::State::kAuth;
    return Send(slice, conn, EncodeJsonFrame(MessageType::kAuth, *auth));
  }
  if (type == MessageType::kWelcome && conn.state == Conn::State::kAuth) {
    Status proved = conn.handshake->OnWelcome(*body);
    if (!proved.ok()) return fail(proved.message());
    const SessionKeys& keys = conn.handshake->session_keys();
    conn.parser->Authenticate(std::make_unique<FrameAuthenticator>(keys.head_to_client));
    conn.parser->set_max_payload(kMaxControlPayload);
    conn.outgoing = std::make_unique<FrameAuthenticator>(keys.client_to_head);
    conn.state = Conn::State::kJoined;
    --slice.in_flight;
    NodeJoin join;
    join.node_rank = conn.node.node_rank;
    join.node_count = options_.node_count;
    join.host = fmt::format("swarm{}", conn.node.node_rank);
    join.process_count = options_.process_count;
    join.job_digest = options_.job_digest;
    join.trainrun_version = "swarm";
    join.heartbeat_timeout_ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(options_.heartbeat_timeout).count();
    return Send(slice, conn, EncodeJsonFrame(MessageType::kJoin, join.ToJson()));
  }
  if (type == MessageType::kAssign && conn.state == Conn::State::kJoined) {
    // Read directly, not through JobAssignment::FromJson: that sizes a slot for
    // every node of the job, right for one node but N times over in one process.
    SwarmNode& node = conn.node;
    node.master_addr = body->value("masterAddr", "");
    node.master_port = body->value("masterPort", 0);
    node.world_size = body->value("worldSize", 0);
    for (const auto& slot : body->value("nodes", nlohmann::json::array())) {
      if (slot.value("nodeRank", -1) == node.node_rank)
        node.first_rank = slot.value("firstRank", -1);
    }
    node.assigned = true;
    node.assigned_at = Now();
    conn.state = Conn::State::kAssigned;
    // Like a WorkerSession, whose first tick after the assignment beats: the
    // head's silence clock for this node is already running.
    Send(slice, conn, EncodeJsonFrame(MessageType::kHeartbeat, nlohmann::json::object()));
    ++node.heartbeats_sent;
    conn.next_beat = node.assigned_at + options_.heartbeat_interval;
    slice.beats.push_back(&conn);
    ++slice.settled;
    return;
  }
  if (type == MessageType::kStop && !conn.node.stopped) {
    conn.node.stopped = true;
    conn.node.stopped_at = Now();
    conn.node.stop_exit_code = body->value("exitCode", 0);
    if (conn.awaiting_stop) {
      conn.awaiting_stop = false;
      --slice.waiting;
    }
    return;
  }
  if (handshaking) {
    fail(fmt::format("{} during the handshake", MessageTypeName(type)));
  }
  if (type == MessageType::kHeartbeat) ++conn.node.heartbeats_received;
  // Anything else (Start, ...) only counts as read.
}

TimePoint NodeSwarm::BeatDue(Slice& slice) {
  // Like a WorkerSession, a node beats from its assignment on, whatever the
  // swarm is doing: a node silent for the heartbeat timeout is lost to the head.
  static const std::string beat =
      EncodeJsonFrame(MessageType::kHeartbeat, nlohmann::json::object());
  const TimePoint now = Now();
  while (!slice.beats.empty() && slice.beats.front()->next_beat <= now) {
    Conn& conn = *slice.beats.front();
    slice.beats.pop_front();
    if (conn.state != Conn::State::kAssigned) continue;
    Send(slice, conn, beat);
    ++conn.node.heartbeats_sent;
    conn.next_beat = std::max(conn.next_beat + options_.heartbeat_interval, now);
    slice.beats.push_back(&conn);
  }
  return slice.beats.empty() ? TimePoint::max() : slice.beats.front()->next_beat;
}

void NodeSwarm::RendezvousSlice(Slice& slice, TimePoint deadline) {
  const int limit = std::max<int>(1, options_.max_connecting / static_cast<int>(slices_.size()));
  std::deque<Conn*> pending(slice.conns.begin(), slice.conns.end());
  epoll_event ready[256];
  while (slice.settled < slice.conns.size()) {
    const TimePoint now = Now();
    if (now >= deadline) break;
    while (!slice.retry.empty() && slice.retry.front()->retry_at <= now) {
      pending.push_front(slice.retry.front());
      slice.retry.pop_front();
    }
    while (slice.in_flight < limit && !pending.empty()) {
      Conn* conn = pending.front();
      pending.pop_front();
      if (!Connect(slice, *conn)) ++slice.settled;
    }
    const TimePoint next_beat = BeatDue(slice);
    Duration wait = std::chrono::milliseconds(slice.retry.empty() ? 100 : 10);
    wait = std::min({wait, deadline - now, next_beat - now});
    const int n = epoll_wait(slice.epoll, ready, 256, PollTimeoutMs(wait));
    for (int i = 0; i < n; ++i) {
      Conn& conn = *static_cast<Conn*>(ready[i].data.ptr);
      if (conn.fd < 0) continue;
      if (conn.state == Conn::State::kConnecting) {
        int err = 0;
        socklen_t len = sizeof(err);
        getsockopt(conn.fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err == EINPROGRESS) continue;
        if (err != 0) {
          Retry(slice, conn, fmt::format("connect: {}", std::strerror(err)));
          continue;
        }
        conn.handshake =
            std::make_unique<ClientHandshake>(options_.key, kRoleNode, conn.node.node_rank);
        conn.parser = std::make_unique<FrameParser>(kMaxUnauthenticatedPayload);
        conn.outgoing.reset();
        conn.state = Conn::State::kHello;
        Send(slice, conn, EncodeJsonFrame(MessageType::kHello, conn.handshake->Hello()));
        continue;
      }
      if (ready[i].events & EPOLLOUT) Flush(slice, conn);
      if (ready[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) Read(slice, conn);
    }
  }
  for (Conn* conn : slice.conns) {
    if (conn->state != Conn::State::kAssigned && conn->state != Conn::State::kFailed) {
      Fail(*conn, "not assigned by the deadline");
    }
  }
}

Status NodeSwarm::Rendezvous(TimePoint deadline) {
  started_ = Now();
  RunSlices([&](Slice& slice) { RendezvousSlice(slice, deadline); });
  size_t unassigned = 0;
  const SwarmNode* first = nullptr;
  for (const SwarmNode& node : view_) {
    if (node.assigned) continue;
    ++unassigned;
    if (first == nullptr) first = &node;
  }
  if (first == nullptr) return Status::Ok();
  return UnavailableError(fmt::format("{} of {} simulated node(s) not assigned; node {}: {}",
                                      unassigned, view_.size(), first->node_rank, first->error));
}

void NodeSwarm::ServeSlice(Slice& slice, TimePoint until) {
  epoll_event ready[256];
  const TimePoint next = std::min(BeatDue(slice), until);
  const int n = epoll_wait(slice.epoll, ready, 256, PollTimeoutMs(next - Now()));
  for (int i = 0; i < n; ++i) {
    Conn& conn = *static_cast<Conn*>(ready[i].data.ptr);
    if (conn.fd < 0) continue;
    if (ready[i].events & EPOLLOUT) Flush(slice, conn);
    if (ready[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) Read(slice, conn);
  }
}

void NodeSwarm::BeatSlice(Slice& slice, TimePoint until) {
  while (Now() < until) ServeSlice(slice, until);
}

void NodeSwarm::Beat(Duration duration) {
  const TimePoint until = Now() + duration;
  RunSlices([&](Slice& slice) { BeatSlice(slice, until); });
}

void NodeSwarm::StopSlice(Slice& slice, int failing_rank, TimePoint deadline, TimePoint* sent) {
  for (Conn* conn : slice.conns) {
    if (conn->node.node_rank == failing_rank && conn->state == Conn::State::kAssigned) {
      *sent = Now();
      const int64_t wall_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                                  std::chrono::system_clock::now().time_since_epoch())
                                  .count();
      Send(slice, *conn,
           EncodeJsonFrame(MessageType::kRankFailed, {{"rank", std::max(0, conn->node.first_rank)},
                                                      {"exitCode", 1},
                                                      {"signal", 0},
                                                      {"reason", "exited with 1 (simulated)"},
                                                      {"pid", 0},
                                                      {"timeMs", wall_ms}}));
    }
  }
  while (slice.waiting > 0 && Now() < deadline) ServeSlice(slice, deadline);
}

Result<TimePoint> NodeSwarm::FailAndWaitForStop(int node_rank, TimePoint deadline) {
  for (auto& slice : slices_) {
    slice->waiting = 0;
    for (Conn* conn : slice->conns) {
      conn->awaiting_stop = conn->state == Conn::State::kAssigned && !conn->node.stopped;
      if (conn->awaiting_stop) ++slice->waiting;
    }
  }
  // Every thread is at its epoll before the failure is sent, so no Stop waits
  // in a socket for a thread that has not started yet.
  std::latch all_waiting(static_cast<ptrdiff_t>(slices_.size()));
  TimePoint sent{};
  RunSlices([&](Slice& slice) {
    all_waiting.arrive_and_wait();
    StopSlice(slice, node_rank, deadline, &sent);
  });
  if (sent == TimePoint{}) {
    return InvalidArgumentError(
        fmt::format("node {} is not an assigned simulated node", node_rank));
  }
  size_t missing = 0;
  for (const SwarmNode& node : view_) missing += node.assigned && !node.stopped ? 1 : 0;
  if (missing > 0) {
    return UnavailableError(fmt::format("{} simulated node(s) got no Stop", missing));
  }
  return sent;
}

}  // namespace trainrun::testing
