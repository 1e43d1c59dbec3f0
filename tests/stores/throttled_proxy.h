// A TCP proxy on 127.0.0.1 that passes a test server's answers at a fixed rate:
// everything a client sends goes on at once, everything the server sends back
// shares one budget of `bytes_per_second` (all connections together), so a test
// knows how long a download through it must take. Counts the bytes it passed back
// and the connections still open. No GoogleTest here.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace trainrun::testing {

class ThrottledProxy {
 public:
  // Listens on a free port of 127.0.0.1 and forwards to 127.0.0.1:`target_port`.
  ThrottledProxy(int target_port, double bytes_per_second)
      : target_port_(target_port), rate_(bytes_per_second) {
    listen_fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
    bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
    listen(listen_fd_, 64);
    socklen_t len = sizeof(addr);
    getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    accept_thread_ = std::thread([this] { AcceptLoop(); });
  }
  ~ThrottledProxy() {
    stop_ = true;
    accept_thread_.join();
    close(listen_fd_);
    for (std::thread& t : pumps_) t.join();
  }
  ThrottledProxy(const ThrottledProxy&) = delete;
  ThrottledProxy& operator=(const ThrottledProxy&) = delete;

  int port() const { return port_; }
  double bytes_per_second() const { return rate_; }
  // Bytes passed from the server to the clients so far.
  uint64_t bytes_down() const { return bytes_down_.load(); }
  // Client connections accepted and not yet closed by either side.
  int open_connections() const { return open_.load(); }

 private:
  static constexpr size_t kChunk = 8192;

  void AcceptLoop() {
    while (!stop_) {
      pollfd p{listen_fd_, POLLIN, 0};
      if (poll(&p, 1, 50) <= 0) continue;
      int client = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (client < 0) continue;
      int server = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      sockaddr_in addr{};
      addr.sin_family = AF_INET;
      addr.sin_port = htons(static_cast<uint16_t>(target_port_));
      inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
      if (connect(server, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
        close(client);
        close(server);
        continue;
      }
      ++open_;
      pumps_.emplace_back([this, client, server] { Pump(client, server); });
    }
  }

  // Waits until `n` more bytes fit the shared budget.
  void Throttle(size_t n) {
    std::chrono::steady_clock::time_point until;
    {
      std::lock_guard lock(mu_);
      const auto now = std::chrono::steady_clock::now();
      next_ = std::max(next_, now) + std::chrono::duration_cast<std::chrono::nanoseconds>(
                                         std::chrono::duration<double>(n / rate_));
      until = next_;
    }
    while (!stop_ && std::chrono::steady_clock::now() < until) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }

  // Both directions of one connection, until either side closes (or the proxy
  // stops).
  void Pump(int client, int server) {
    char buffer[kChunk];
    pollfd fds[2] = {{client, POLLIN, 0}, {server, POLLIN, 0}};
    bool open = true;
    while (open && !stop_) {
      if (poll(fds, 2, 50) <= 0) continue;
      for (int i = 0; i < 2 && open; ++i) {
        if ((fds[i].revents & (POLLIN | POLLHUP | POLLERR)) == 0) continue;
        ssize_t got = recv(fds[i].fd, buffer, i == 1 ? kChunk : sizeof(buffer), 0);
        if (got <= 0) {
          open = false;
          break;
        }
        if (i == 1) Throttle(static_cast<size_t>(got));
        const int to = i == 0 ? server : client;
        for (ssize_t done = 0; done < got;) {
          ssize_t w = send(to, buffer + done, static_cast<size_t>(got - done), MSG_NOSIGNAL);
          if (w <= 0) {
            open = false;
            break;
          }
          done += w;
        }
        if (open && i == 1) bytes_down_ += static_cast<uint64_t>(got);
      }
    }
    close(client);
    close(server);
    --open_;
  }

  int target_port_;
  double rate_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> bytes_down_{0};
  std::atomic<int> open_{0};
  std::mutex mu_;
  std::chrono::steady_clock::time_point next_{};  // when the budget allows the next byte
  std::thread accept_thread_;
  std::vector<std::thread> pumps_;  // only the accept thread adds, until it is joined
};

}  // namespace trainrun::testing
