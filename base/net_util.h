// TCP sockets and the machine's network interfaces, with errors as Status
// values that name the host, address or interface.
#pragma once

#include <string>
#include <vector>

#include "base/clock.h"
#include "base/status.h"

namespace trainrun {

struct LocalAddress {
  std::string interface;  // "eth0"
  std::string address;    // "10.0.0.2" (IPv4)
  int prefix_length = 0;  // 24
  bool loopback = false;
};

// Every IPv4 address of every interface that is up.
std::vector<LocalAddress> LocalIpv4Addresses();

// The interface that holds `address`, or "" when none does.
std::string InterfaceOf(const std::string& address);

// This machine's host name.
std::string LocalHostName();

// The IPv4 addresses `host` resolves to (a dotted quad resolves to itself).
// Errors name the host.
Result<std::vector<std::string>> ResolveIpv4(const std::string& host);

// Connects to host:port, trying each address until `timeout` passes. Returns a
// blocking, close-on-exec socket with TCP_NODELAY. kUnavailable names host and
// port (connection refused, unreachable, timed out).
Result<int> ConnectTcp(const std::string& host, int port, Duration timeout);

// Listens on address:port (0.0.0.0 for every interface; port 0 for any) with
// SO_REUSEADDR. Returns the non-blocking, close-on-exec socket.
Result<int> ListenTcp(const std::string& address, int port);

// The local and remote ends of a connected socket as "10.0.0.2:40312", and just
// the IP.
std::string SocketName(int fd);
std::string PeerName(int fd);
std::string SocketIp(int fd);
int SocketPort(int fd);

// Writes all of `data` to a blocking socket; a peer that takes nothing for
// `timeout` is an error (kUnavailable).
Status SendAll(int fd, std::string_view data, Duration timeout);

}  // namespace trainrun
