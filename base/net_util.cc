#include "base/net_util.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <fmt/format.h>

namespace trainrun {
namespace {

std::string Ntop(const in_addr& addr) {
  char text[INET_ADDRSTRLEN] = {};
  inet_ntop(AF_INET, &addr, text, sizeof(text));
  return text;
}

std::string Format(const sockaddr_storage& ss) {
  if (ss.ss_family != AF_INET) return "?";
  const auto* in = reinterpret_cast<const sockaddr_in*>(&ss);
  return fmt::format("{}:{}", Ntop(in->sin_addr), ntohs(in->sin_port));
}

}  // namespace

std::vector<LocalAddress> LocalIpv4Addresses() {
  std::vector<LocalAddress> out;
  ifaddrs* list = nullptr;
  if (getifaddrs(&list) != 0) return out;
  for (ifaddrs* a = list; a != nullptr; a = a->ifa_next) {
    if (a->ifa_addr == nullptr || a->ifa_addr->sa_family != AF_INET) continue;
    if ((a->ifa_flags & IFF_UP) == 0) continue;
    LocalAddress local;
    local.interface = a->ifa_name;
    local.address = Ntop(reinterpret_cast<sockaddr_in*>(a->ifa_addr)->sin_addr);
    if (a->ifa_netmask != nullptr) {
      uint32_t mask = ntohl(reinterpret_cast<sockaddr_in*>(a->ifa_netmask)->sin_addr.s_addr);
      local.prefix_length = __builtin_popcount(mask);
    }
    local.loopback = (a->ifa_flags & IFF_LOOPBACK) != 0;
    out.push_back(local);
  }
  freeifaddrs(list);
  return out;
}

std::string InterfaceOf(const std::string& address) {
  for (const LocalAddress& a : LocalIpv4Addresses()) {
    if (a.address == address) return a.interface;
  }
  return "";
}

std::string LocalHostName() {
  char name[256] = {};
  gethostname(name, sizeof(name) - 1);
  return name;
}

Result<std::vector<std::string>> ResolveIpv4(const std::string& host) {
  in_addr literal{};
  if (inet_pton(AF_INET, host.c_str(), &literal) == 1) return std::vector<std::string>{host};
  addrinfo hints{};
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  int rc = getaddrinfo(host.c_str(), nullptr, &hints, &found);
  if (rc != 0) {
    return UnavailableError(fmt::format("cannot resolve host \"{}\": {}", host, gai_strerror(rc)));
  }
  std::vector<std::string> addresses;
  for (addrinfo* a = found; a != nullptr; a = a->ai_next) {
    std::string text = Ntop(reinterpret_cast<sockaddr_in*>(a->ai_addr)->sin_addr);
    if (std::find(addresses.begin(), addresses.end(), text) == addresses.end()) {
      addresses.push_back(text);
    }
  }
  freeaddrinfo(found);
  return addresses;
}

Result<int> ConnectTcp(const std::string& host, int port, Duration timeout) {
  const TimePoint deadline = SystemClock()->Now() + timeout;
  TR_ASSIGN_OR_RETURN(std::vector<std::string> addresses, ResolveIpv4(host));
  std::string last_error = "no address";
  for (const std::string& address : addresses) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) return ErrnoStatus(errno, "socket");
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    inet_pton(AF_INET, address.c_str(), &addr.sin_addr);
    int rc = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
    int err = rc == 0 ? 0 : errno;
    if (err == EINPROGRESS) {
      pollfd p{fd, POLLOUT, 0};
      int ready;
      do {
        ready = poll(&p, 1, PollTimeoutMs(deadline - SystemClock()->Now()));
      } while (ready < 0 && errno == EINTR);
      if (ready == 0) {
        err = ETIMEDOUT;
      } else {
        socklen_t len = sizeof(err);
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
      }
    }
    if (err == 0) {
      fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
      int one = 1;
      setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
      return fd;
    }
    close(fd);
    last_error = fmt::format("{}:{}: {}", address, port, std::strerror(err));
    if (SystemClock()->Now() >= deadline) break;
  }
  return UnavailableError(fmt::format("cannot connect to {}:{} ({})", host, port, last_error));
}

Result<int> ListenTcp(const std::string& address, int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return ErrnoStatus(errno, "socket");
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (inet_pton(AF_INET, address.c_str(), &addr.sin_addr) != 1) {
    close(fd);
    return InvalidArgumentError(fmt::format("\"{}\" is not an IPv4 address", address));
  }
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 || listen(fd, 4096) != 0) {
    int err = errno;
    close(fd);
    Status s = ErrnoStatus(err, fmt::format("listen on {}:{}", address, port));
    return err == EADDRINUSE ? UnavailableError(s.message() +
                                                " (another job's head on this node? give a "
                                                "different --control-port)")
                             : s;
  }
  return fd;
}

std::string SocketName(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof(ss);
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return "?";
  return Format(ss);
}

std::string PeerName(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof(ss);
  if (getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return "?";
  return Format(ss);
}

std::string SocketIp(int fd) {
  std::string name = SocketName(fd);
  return name.substr(0, name.rfind(':'));
}

int SocketPort(int fd) {
  std::string name = SocketName(fd);
  size_t colon = name.rfind(':');
  return colon == std::string::npos ? 0 : std::atoi(name.c_str() + colon + 1);
}

Status SendAll(int fd, std::string_view data, Duration timeout) {
  const TimePoint deadline = SystemClock()->Now() + timeout;
  size_t offset = 0;
  while (offset < data.size()) {
    ssize_t n = send(fd, data.data() + offset, data.size() - offset, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      offset += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      pollfd p{fd, POLLOUT, 0};
      int ready = poll(&p, 1, PollTimeoutMs(deadline - SystemClock()->Now()));
      if (ready == 0) {
        return UnavailableError(
            fmt::format("{} took nothing for {:.0f} s", PeerName(fd), ToSeconds(timeout)));
      }
      continue;
    }
    return UnavailableError(fmt::format("send to {}: {}", PeerName(fd), std::strerror(errno)));
  }
  return Status::Ok();
}

}  // namespace trainrun
