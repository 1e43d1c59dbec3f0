// A TCP server on a loopback port for tests that talk HTTP to a fake (a cloud
// metadata endpoint, an object store that answers from a script): bound to
// 127.0.0.1 port 0, one connection at a time on the server's own thread.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <functional>
#include <string>
#include <thread>

namespace trainrun::testing {

// Hands each accepted connection to `serve` on the server's thread, then closes it.
// The destructor stops accepting and waits for `serve` to return: make this the last
// member of a class whose other members `serve` uses, so it goes first.
class LoopbackServer {
 public:
  explicit LoopbackServer(std::function<void(int fd)> serve) : serve_(std::move(serve)) {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
    bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
    socklen_t len = sizeof(addr);
    getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    listen(fd_, 16);
    thread_ = std::thread([this] {
      for (int c; (c = accept(fd_, nullptr, nullptr)) >= 0; close(c)) serve_(c);
    });
  }
  ~LoopbackServer() {
    shutdown(fd_, SHUT_RDWR);
    close(fd_);
    thread_.join();
  }
  LoopbackServer(const LoopbackServer&) = delete;
  LoopbackServer& operator=(const LoopbackServer&) = delete;

  // "http://127.0.0.1:PORT" followed by `path`.
  std::string url(const std::string& path) const {
    return "http://127.0.0.1:" + std::to_string(port_) + path;
  }

 private:
  std::function<void(int)> serve_;
  int fd_;
  int port_;
  std::thread thread_;
};

// One HTTP request's head, through its blank line, read a byte at a time so nothing
// after it is taken; "" when the peer closed before sending anything.
inline std::string ReadHttpHead(int fd) {
  std::string head;
  char ch;
  while (head.find("\r\n\r\n") == std::string::npos && read(fd, &ch, 1) == 1) head += ch;
  return head;
}

// An HTTP/1.1 response with `body` and its Content-Length.
inline std::string HttpReply(int status, const std::string& body = "",
                             const std::string& headers = "") {
  return "HTTP/1.1 " + std::to_string(status) + " X\r\n" + headers +
         "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
}

}  // namespace trainrun::testing
