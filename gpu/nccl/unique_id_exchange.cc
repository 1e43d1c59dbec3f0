#include "gpu/nccl/unique_id_exchange.h"

#include <arpa/inet.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <optional>
#include <set>
#include <thread>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "base/backoff.h"
#include "base/net_util.h"

namespace trainrun::nccl {
namespace {

constexpr char kMagic[4] = {'T', 'R', 'I', 'D'};
constexpr uint16_t kVersion = 1;
constexpr size_t kHelloBytes = 16;
constexpr size_t kAnswerHeaderBytes = 12;
constexpr uint16_t kVerdictId = 0;
constexpr uint16_t kVerdictRefused = 1;
// A peer that connected gets this long to say hello, so one silent connection cannot
// hold the others back for the whole timeout.
constexpr auto kHelloTimeout = std::chrono::seconds(5);
// The longest single connect attempt; refused connects return at once anyway.
constexpr auto kConnectAttempt = std::chrono::seconds(2);

void PutU16(std::string& out, uint16_t v) {
  uint16_t n = htons(v);
  out.append(reinterpret_cast<const char*>(&n), sizeof(n));
}
void PutU32(std::string& out, uint32_t v) {
  uint32_t n = htonl(v);
  out.append(reinterpret_cast<const char*>(&n), sizeof(n));
}
uint16_t GetU16(const char* p) {
  uint16_t n;
  std::memcpy(&n, p, sizeof(n));
  return ntohs(n);
}
uint32_t GetU32(const char* p) {
  uint32_t n;
  std::memcpy(&n, p, sizeof(n));
  return ntohl(n);
}

std::string Answer(uint16_t verdict, const std::string& id) {
  std::string out(kMagic, sizeof(kMagic));
  PutU16(out, kVersion);
  PutU16(out, verdict);
  PutU32(out, static_cast<uint32_t>(id.size()));
  out += id;
  return out;
}

// Reads exactly `n` bytes before `deadline`. kUnavailable when the peer closes or
// stays silent, naming `what`.
Status ReadExact(int fd, char* buffer, size_t n, TimePoint deadline, std::string_view what) {
  size_t got = 0;
  while (got < n) {
    pollfd p{fd, POLLIN, 0};
    int ready = poll(&p, 1, PollTimeoutMs(deadline - SystemClock()->Now()));
    if (ready < 0 && errno == EINTR) continue;
    if (ready < 0) return ErrnoStatus(errno, fmt::format("poll ({})", what));
    if (ready == 0) {
      return UnavailableError(fmt::format("{}: no answer from {} in time", what, PeerName(fd)));
    }
    ssize_t r = recv(fd, buffer + got, n - got, MSG_DONTWAIT);
    if (r > 0) {
      got += static_cast<size_t>(r);
    } else if (r == 0) {
      return UnavailableError(fmt::format("{}: {} closed the connection after {} of {} bytes", what,
                                          PeerName(fd), got, n));
    } else if (errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK) {
      return UnavailableError(
          fmt::format("{}: reading from {}: {}", what, PeerName(fd), std::strerror(errno)));
    }
  }
  return Status::Ok();
}

Duration Left(TimePoint deadline) {
  return std::max(Duration::zero(), deadline - SystemClock()->Now());
}

std::string MissingRanks(const std::set<int>& served, int world_size) {
  std::vector<std::string> missing;
  for (int r = 1; r < world_size; ++r) {
    if (!served.count(r)) missing.push_back(std::to_string(r));
  }
  return fmt::format("{}", fmt::join(missing, ", "));
}

}  // namespace

Result<UniqueIdServer> UniqueIdServer::Listen(int port) {
  TR_ASSIGN_OR_RETURN(int fd, ListenTcp("0.0.0.0", port));
  return UniqueIdServer(fd, SocketPort(fd));
}

UniqueIdServer::UniqueIdServer(UniqueIdServer&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)), port_(other.port_) {}

UniqueIdServer& UniqueIdServer::operator=(UniqueIdServer&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) close(fd_);
    fd_ = std::exchange(other.fd_, -1);
    port_ = other.port_;
  }
  return *this;
}

UniqueIdServer::~UniqueIdServer() {
  if (fd_ >= 0) close(fd_);
}

Status UniqueIdServer::Serve(const std::string& id, int world_size, Duration timeout) {
  if (id.size() > kMaxUniqueIdBytes) {
    return InvalidArgumentError(
        fmt::format("unique id of {} bytes; at most {}", id.size(), kMaxUniqueIdBytes));
  }
  const TimePoint deadline = SystemClock()->Now() + timeout;
  std::set<int> served;
  while (static_cast<int>(served.size()) < world_size - 1) {
    pollfd p{fd_, POLLIN, 0};
    int ready = poll(&p, 1, PollTimeoutMs(Left(deadline)));
    if (ready < 0 && errno == EINTR) continue;
    if (ready < 0) return ErrnoStatus(errno, "poll (unique id server)");
    if (ready == 0) {
      return UnavailableError(fmt::format(
          "rank(s) {} of {} never came for the NCCL unique id on port {} within {:.0f} s",
          MissingRanks(served, world_size), world_size, port_, ToSeconds(timeout)));
    }
    int conn = accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (conn < 0) continue;  // the peer gave up between poll and accept, or EAGAIN
    char hello[kHelloBytes];
    TimePoint hello_deadline = std::min(deadline, SystemClock()->Now() + kHelloTimeout);
    Status read = ReadExact(conn, hello, sizeof(hello), hello_deadline, "unique id hello");
    if (!read.ok() || std::memcmp(hello, kMagic, sizeof(kMagic)) != 0 ||
        GetU16(hello + 4) != kVersion) {
      close(conn);  // not one of ours
      continue;
    }
    const int rank = static_cast<int>(GetU32(hello + 8));
    const int their_world = static_cast<int>(GetU32(hello + 12));
    std::string refusal;
    if (their_world != world_size) {
      refusal = fmt::format("rank {} says the world size is {}, rank 0 says {}", rank, their_world,
                            world_size);
    } else if (rank <= 0 || rank >= world_size) {
      refusal = fmt::format("rank {} is outside 1..{}", rank, world_size - 1);
    } else if (served.count(rank)) {
      refusal = fmt::format("rank {} asked for the unique id twice (two ranks with RANK={}?)", rank,
                            rank);
    }
    const bool refused = !refusal.empty();
    Status sent =
        SendAll(conn, Answer(refused ? kVerdictRefused : kVerdictId, refused ? std::string() : id),
                Left(deadline));
    const std::string peer = PeerName(conn);
    close(conn);
    if (refused) return InvalidArgumentError(fmt::format("{} ({})", refusal, peer));
    if (!sent.ok()) return sent.WithContext(fmt::format("sending the unique id to rank {}", rank));
    served.insert(rank);
  }
  return Status::Ok();
}

Result<std::string> FetchUniqueId(const ExchangeOptions& options) {
  const TimePoint deadline = SystemClock()->Now() + options.timeout;
  const std::string where = fmt::format("{}:{}", options.master_addr, options.master_port);
  Backoff backoff(
      BackoffOptions{.initial = std::chrono::milliseconds(20), .max = std::chrono::seconds(1)});
  int fd = -1;
  std::string last_error;
  while (true) {
    Result<int> conn = ConnectTcp(options.master_addr, options.master_port,
                                  std::min<Duration>(kConnectAttempt, Left(deadline)));
    if (conn.ok()) {
      fd = *conn;
      break;
    }
    last_error = conn.status().message();
    Duration wait = backoff.Next();
    if (SystemClock()->Now() + wait >= deadline) {
      return UnavailableError(fmt::format(
          "rank {}: rank 0 did not hand out the NCCL unique id at {} within {:.0f} s ({})",
          options.rank, where, ToSeconds(options.timeout), last_error));
    }
    std::this_thread::sleep_for(wait);
  }

  std::string hello(kMagic, sizeof(kMagic));
  PutU16(hello, kVersion);
  PutU16(hello, 0);
  PutU32(hello, static_cast<uint32_t>(options.rank));
  PutU32(hello, static_cast<uint32_t>(options.world_size));
  Status status = SendAll(fd, hello, Left(deadline));
  char header[kAnswerHeaderBytes];
  if (status.ok()) {
    status = ReadExact(fd, header, sizeof(header), deadline, "unique id answer");
  }
  std::string id;
  if (status.ok()) {
    const uint32_t length = GetU32(header + 8);
    if (std::memcmp(header, kMagic, sizeof(kMagic)) != 0 || GetU16(header + 4) != kVersion) {
      status = IoError(fmt::format("{} answered with something that is not a unique id", where));
    } else if (GetU16(header + 6) == kVerdictRefused) {
      status = InvalidArgumentError(fmt::format(
          "rank 0 at {} refused rank {} with world size {} (it expects another world size, "
          "or another rank already has this RANK)",
          where, options.rank, options.world_size));
    } else if (GetU16(header + 6) != kVerdictId || length > kMaxUniqueIdBytes) {
      status = IoError(fmt::format("{} sent a malformed unique id answer (verdict {}, {} bytes)",
                                   where, GetU16(header + 6), length));
    } else {
      id.resize(length);
      status = ReadExact(fd, id.data(), length, deadline, "unique id");
    }
  }
  close(fd);
  if (!status.ok()) return status.WithContext(fmt::format("rank {}", options.rank));
  return id;
}

Result<std::string> ExchangeUniqueId(const ExchangeOptions& options,
                                     const std::function<Result<std::string>()>& make_id) {
  if (options.world_size < 1 || options.rank < 0 || options.rank >= options.world_size) {
    return InvalidArgumentError(
        fmt::format("rank {} is not in a world of size {}", options.rank, options.world_size));
  }
  if (options.rank != 0) return FetchUniqueId(options);
  // Listen first: ranks that come before the id exists wait in the backlog.
  std::optional<UniqueIdServer> server;
  if (options.world_size > 1) {
    TR_ASSIGN_OR_RETURN(UniqueIdServer listening, UniqueIdServer::Listen(options.master_port));
    server.emplace(std::move(listening));
  }
  TR_ASSIGN_OR_RETURN(std::string id, make_id());
  if (server) TR_RETURN_IF_ERROR(server->Serve(id, options.world_size, options.timeout));
  return id;
}

}  // namespace trainrun::nccl
