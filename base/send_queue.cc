#include "base/send_queue.h"

#include <sys/socket.h>

#include <cerrno>

namespace trainrun {

bool SendQueue::Flush(int fd) {
  while (!empty()) {
    if (fd < 0) {
      Clear();
      break;
    }
    ssize_t n = send(fd, out.data() + offset, pending(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      offset += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return true;
    Clear();  // a broken connection: the read side reports it
  }
  Clear();
  return false;
}

}  // namespace trainrun
