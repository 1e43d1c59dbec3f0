// Output queued for a non-blocking socket, written without blocking: the one
// send loop of the control server (runtime/cluster/control_server.cc) and the
// simulated nodes (tests/swarm/node_swarm.cc).
#pragma once

#include <cstddef>
#include <string>

namespace trainrun {

// What is queued for a socket: `out` from `offset` on is not written yet.
struct SendQueue {
  std::string out;
  size_t offset = 0;

  // True when nothing is left to write.
  bool empty() const { return offset >= out.size(); }
  // Bytes not written yet.
  size_t pending() const { return out.size() - offset; }
  void Clear() {
    out.clear();
    offset = 0;
  }

  // Writes as much of what is left as non-blocking `fd` takes now (send with
  // MSG_NOSIGNAL | MSG_DONTWAIT, again after EINTR), stopping at EAGAIN. Once
  // everything is written the queue is cleared. On a broken connection (any
  // other error, fd < 0) what is queued is dropped: whoever reads the socket
  // reports the failure. True when something is left, to write once the socket
  // can take more (EPOLLOUT). Never blocks; does not own or close `fd`.
  bool Flush(int fd);
};

}  // namespace trainrun
