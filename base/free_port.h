// Picking a TCP port that is free now, for MASTER_PORT.
#pragma once

#include <string>

#include "base/status.h"

namespace trainrun {

// Binds port 0 on `address` (IPv4 dotted quad; "0.0.0.0" for every interface),
// reads the port the kernel chose, and closes the socket. Another process could take
// it before the ranks bind it; the kernel hands out ephemeral ports in a rotating
// order, which makes that unlikely. Where the port is used only later, HoldFreePort.
Result<int> FindFreePort(const std::string& address = "0.0.0.0");

// A free port kept free for a later user: the socket that chose it stays bound
// until Release() (or destruction), so nobody else can bind the port in the
// meantime, with SO_REUSEADDR or without, and the kernel does not hand it out as
// the local port of an outgoing connection. The socket is not listening: a
// connection to the port is refused, not queued. Move-only; owns the socket.
class HeldPort {
 public:
  HeldPort() = default;
  HeldPort(HeldPort&& other) noexcept;
  HeldPort& operator=(HeldPort&& other) noexcept;
  HeldPort(const HeldPort&) = delete;
  HeldPort& operator=(const HeldPort&) = delete;
  ~HeldPort() { Release(); }

  int port() const { return port_; }  // 0 when none was chosen
  bool held() const { return fd_ >= 0; }
  // Closes the socket: the port is free for its user to bind (the port number
  // stays readable). Nothing when not held.
  void Release();

 private:
  friend Result<HeldPort> HoldFreePort(const std::string& address);
  int fd_ = -1;
  int port_ = 0;
};

// As FindFreePort, but the port stays bound until the HeldPort releases it.
// Fails with the errno of socket or bind, or kInvalidArgument for an address
// that is not IPv4.
Result<HeldPort> HoldFreePort(const std::string& address = "0.0.0.0");

}  // namespace trainrun
