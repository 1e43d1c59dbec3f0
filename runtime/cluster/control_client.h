// A node's side of the control plane: connect to the head with backoff until a
// deadline, authenticate (control_auth.h), then send frames from any thread and
// receive them on a reader thread.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "base/backoff.h"
#include "runtime/cluster/control_protocol.h"

namespace trainrun {

constexpr std::chrono::seconds kDefaultSendTimeout{30};
constexpr std::chrono::milliseconds kConnectBackoffInitial{100};
constexpr std::chrono::seconds kConnectBackoffMax{3};

struct ControlClientOptions {
  std::string host;  // the head's host name or address
  int port = 0;
  std::string role;  // kRoleNode or kRoleRsh
  int node_rank = 0;
  std::string key;  // RoleKey(token, role)
  // Keep trying until then (the rendezvous timeout); none = one attempt.
  std::optional<TimePoint> deadline;
  BackoffOptions backoff{kConnectBackoffInitial, kConnectBackoffMax, kDefaultBackoffMultiplier,
                         true};
  Duration send_timeout = kDefaultSendTimeout;  // a head that takes nothing this long is gone
  // Polled between connection attempts and during the backoff waits: true ends
  // Connect's retries (a cancel while the head is not there yet). Empty: never.
  std::function<bool()> canceled;
  // The deadline, Receive's deadlines and the reader's ticks read this clock
  // (not owned; it must outlive the client and be safe to read from the
  // reader's thread). A fake clock takes effect within a kControlTick of real
  // time after a test advances it: no wait on the socket is longer than that.
  // Connection timeouts, backoff waits and send_timeout stay real time.
  Clock* clock = SystemClock();
};

class ControlClient {
 public:
  // Connects and authenticates. Unreachable heads are retried with backoff
  // until the deadline (kUnavailable then, with the last error); `on_retry`
  // (may be empty) hears each failed attempt. A head that refuses us (wrong
  // token, node rank taken, ...) or that cannot prove it knows the token is not
  // retried: kPermissionDenied or kUnavailable with the head's reason.
  static Result<std::unique_ptr<ControlClient>> Connect(
      ControlClientOptions options, const std::function<void(const std::string&)>& on_retry = {});
  // Stops the reader and closes the connection.
  ~ControlClient();

  // Sends one frame, encoded without a tag (thread-safe); after the handshake it
  // is sealed with the next sequence number first. kUnavailable when the
  // connection is broken.
  Status Send(const std::string& frame);
  Status SendJson(MessageType type, const nlohmann::json& body) {
    return Send(EncodeJsonFrame(type, body));
  }

  // Receives the next frame, waiting until `deadline`: none when the deadline
  // passes first, kUnavailable on a closed connection. Only before StartReader.
  Result<std::optional<Frame>> Receive(TimePoint deadline);

  // Starts the reader thread: `on_frame` for every frame, `on_tick` about every
  // kControlTick, and `on_closed` once when the connection ends (then the
  // thread exits). Callbacks run on the reader thread. A malformed frame, or one
  // that fails authentication, closes the connection (the head sees it end); the
  // reason says which, naming the head.
  void StartReader(std::function<void(const Frame&)> on_frame, std::function<void()> on_tick,
                   std::function<void(const std::string&)> on_closed);

  // Closes the connection; the reader (if any) reports on_closed and ends.
  void Close();

  // Our side of the connection ("10.0.0.2"): the address this node reaches the
  // head by.
  const std::string& local_ip() const { return local_ip_; }

 private:
  ControlClient() = default;
  // One connection and handshake, bounded by kHandshakeTimeout and the deadline.
  static Result<std::unique_ptr<ControlClient>> ConnectOnce(const ControlClientOptions& options);
  Status Handshake(TimePoint deadline);
  // Why the parser stopped: a frame that failed authentication, or a malformed one.
  Status MalformedFrameStatus() const;
  void ReaderLoop();

  ControlClientOptions options_;
  int fd_ = -1;
  int wake_fd_ = -1;
  std::string local_ip_;
  FrameParser parser_{kMaxControlPayload};
  std::mutex send_mu_;
  std::unique_ptr<FrameAuthenticator> outgoing_;  // guarded by send_mu_; set by the handshake
  std::thread reader_;
  std::atomic<bool> stop_{false};
  std::function<void(const Frame&)> on_frame_;
  std::function<void()> on_tick_;
  std::function<void(const std::string&)> on_closed_;
};

}  // namespace trainrun
