// A cloud metadata endpoint on a loopback port for tests (Azure Scheduled Events,
// GCE's preempted, AWS spot instance-action): every GET gets the status and body
// set last. Bound to 127.0.0.1 port 0; one connection at a time.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace trainrun::testing {

// Answers every GET with the current status and body; records the requests' heads.
class MetadataServer {
 public:
  MetadataServer() {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
    bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
    socklen_t len = sizeof(addr);
    getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    listen(fd_, 16);
    thread_ = std::thread([this] { Serve(); });
  }
  ~MetadataServer() {
    shutdown(fd_, SHUT_RDWR);
    close(fd_);
    thread_.join();
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/events"; }
  void Answer(int status, std::string body) {
    std::lock_guard lock(mu_);
    status_ = status;
    body_ = std::move(body);
  }
  std::vector<std::string> requests() {
    std::lock_guard lock(mu_);
    return requests_;
  }

 private:
  void Serve() {
    while (true) {
      int c = accept(fd_, nullptr, nullptr);
      if (c < 0) return;
      std::string head;
      char ch;
      while (head.find("\r\n\r\n") == std::string::npos && read(c, &ch, 1) == 1) head += ch;
      std::string reply;
      {
        std::lock_guard lock(mu_);
        requests_.push_back(head);
        reply = "HTTP/1.1 " + std::to_string(status_) + " X\r\nConnection: close\r\n" +
                "Content-Length: " + std::to_string(body_.size()) + "\r\n\r\n" + body_;
      }
      (void)!write(c, reply.data(), reply.size());
      close(c);
    }
  }

  int fd_;
  int port_;
  std::thread thread_;
  std::mutex mu_;
  int status_ = 200;
  std::string body_;
  std::vector<std::string> requests_;
};

}  // namespace trainrun::testing
