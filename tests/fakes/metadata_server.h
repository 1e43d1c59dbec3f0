// A cloud metadata endpoint on a loopback port for tests (Azure Scheduled Events,
// GCE's preempted, AWS spot instance-action): every GET gets the status and body
// set last. Bound to 127.0.0.1 port 0; one connection at a time.
#pragma once

#include <mutex>
#include <string>
#include <vector>

#include "tests/fakes/loopback_server.h"

namespace trainrun::testing {

// Answers every GET with the current status and body; records the requests' heads.
class MetadataServer {
 public:
  std::string url() const { return server_.url("/events"); }
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
  void Serve(int c) {
    std::string head = ReadHttpHead(c);
    std::string reply;
    {
      std::lock_guard lock(mu_);
      requests_.push_back(head);
      reply = HttpReply(status_, body_, "Connection: close\r\n");
    }
    (void)!write(c, reply.data(), reply.size());
  }

  std::mutex mu_;
  int status_ = 200;
  std::string body_;
  std::vector<std::string> requests_;
  LoopbackServer server_{[this](int c) { Serve(c); }};  // last: stops before the rest goes
};

}  // namespace trainrun::testing
