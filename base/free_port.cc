#include "base/free_port.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <utility>

#include <fmt/format.h>

namespace trainrun {

HeldPort::HeldPort(HeldPort&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)), port_(other.port_) {}

HeldPort& HeldPort::operator=(HeldPort&& other) noexcept {
  if (this != &other) {
    Release();
    fd_ = std::exchange(other.fd_, -1);
    port_ = other.port_;
  }
  return *this;
}

void HeldPort::Release() {
  if (fd_ >= 0) close(fd_);
  fd_ = -1;
}

Result<HeldPort> HoldFreePort(const std::string& address) {
  // No SO_REUSEADDR: Linux lets two sockets share a port only when both set it,
  // so without it on ours no other bind succeeds while it is held. Never
  // connected, the socket leaves no TIME_WAIT behind when it is closed.
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return ErrnoStatus(errno, "socket");
  HeldPort held;
  held.fd_ = fd;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = 0;
  if (inet_pton(AF_INET, address.c_str(), &addr.sin_addr) != 1) {
    return InvalidArgumentError(fmt::format("\"{}\" is not an IPv4 address", address));
  }
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    return ErrnoStatus(errno, fmt::format("bind {}:0", address));
  }
  socklen_t len = sizeof(addr);
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    return ErrnoStatus(errno, "getsockname");
  }
  held.port_ = static_cast<int>(ntohs(addr.sin_port));
  return held;
}

Result<int> FindFreePort(const std::string& address) {
  TR_ASSIGN_OR_RETURN(HeldPort held, HoldFreePort(address));
  return held.port();
}

}  // namespace trainrun
