#include "runtime/cluster/control_client.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>

#include <fmt/format.h>

#include "base/net_util.h"
#include "runtime/cluster/control_auth.h"

namespace trainrun {
namespace {

// Failures worth another attempt: nobody listening yet, a head that hung up in
// the middle. Refusals are final.
bool Retryable(const Status& s) { return s.code() == StatusCode::kUnavailable; }

constexpr auto kHandshakeTimeout = std::chrono::seconds(15);

}  // namespace

Result<std::unique_ptr<ControlClient>> ControlClient::Connect(
    ControlClientOptions options, const std::function<void(const std::string&)>& on_retry) {
  Result<std::unique_ptr<ControlClient>> result = UnavailableError("no attempt made");
  RetryOptions retry;
  retry.backoff = options.backoff;
  retry.deadline = options.deadline;  // the last wait ends there, for one more try
  retry.clock = options.clock;
  retry.canceled = options.canceled;
  retry.max_attempts = options.deadline ? std::numeric_limits<int>::max() : 1;
  const int attempts = RetryCall(
      retry,
      [&](int) {
        result = ConnectOnce(options);
        return !result.ok() && Retryable(result.status()) ? AttemptOutcome::kRetry
                                                          : AttemptOutcome::kDone;
      },
      [&](int, Duration) {
        if (on_retry) on_retry(result.status().message());
      });
  if (result.ok() || !Retryable(result.status())) return result;
  return UnavailableError(fmt::format("could not reach the head at {}:{} after {} attempt(s): {}",
                                      options.host, options.port, attempts,
                                      result.status().message()));
}

Result<std::unique_ptr<ControlClient>> ControlClient::ConnectOnce(
    const ControlClientOptions& options) {
  std::unique_ptr<ControlClient> client(new ControlClient());
  client->options_ = options;
  const TimePoint now = options.clock->Now();
  TimePoint attempt_deadline = now + kHandshakeTimeout;
  if (options.deadline && *options.deadline < attempt_deadline) {
    attempt_deadline = std::max(*options.deadline, now + std::chrono::seconds(1));
  }
  TR_ASSIGN_OR_RETURN(int fd, ConnectTcp(options.host, options.port, attempt_deadline - now));
  client->fd_ = fd;
  client->local_ip_ = SocketIp(fd);
  TR_RETURN_IF_ERROR(client->Handshake(attempt_deadline));
  client->wake_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  return client;
}

ControlClient::~ControlClient() {
  Close();
  if (reader_.joinable()) reader_.join();
  if (fd_ >= 0) close(fd_);
  if (wake_fd_ >= 0) close(wake_fd_);
}

Status ControlClient::Handshake(TimePoint deadline) {
  ClientHandshake handshake(options_.key, options_.role, options_.node_rank);
  TR_RETURN_IF_ERROR(SendJson(MessageType::kHello, handshake.Hello()));
  parser_.set_max_payload(kMaxUnauthenticatedPayload);
  for (MessageType expected : {MessageType::kChallenge, MessageType::kWelcome}) {
    TR_ASSIGN_OR_RETURN(std::optional<Frame> received, Receive(deadline));
    if (!received) {
      return UnavailableError(
          fmt::format("the head at {}:{} did not answer in time", options_.host, options_.port));
    }
    const Frame& frame = *received;
    if (frame.type == MessageType::kRefused) {
      Result<nlohmann::json> body = DecodeJsonPayload(frame);
      std::string reason = body.ok() ? body->value("reason", "no reason given") : "no reason given";
      StatusCode code = reason.find("token") != std::string::npos ? StatusCode::kPermissionDenied
                                                                  : StatusCode::kInvalidArgument;
      return Status(code, fmt::format("the head at {}:{} refused this node: {}", options_.host,
                                      options_.port, reason));
    }
    if (frame.type != expected) {
      return Status(
          StatusCode::kPermissionDenied,
          fmt::format("the head at {}:{} sent {} instead of {}", options_.host, options_.port,
                      MessageTypeName(frame.type), MessageTypeName(expected)));
    }
    TR_ASSIGN_OR_RETURN(nlohmann::json body, DecodeJsonPayload(frame));
    if (expected == MessageType::kChallenge) {
      TR_ASSIGN_OR_RETURN(nlohmann::json auth, handshake.OnChallenge(body));
      TR_RETURN_IF_ERROR(SendJson(MessageType::kAuth, auth));
    } else {
      Status proved = handshake.OnWelcome(body);
      if (!proved.ok())
        return proved.WithContext(fmt::format("{}:{}", options_.host, options_.port));
    }
  }
  // Every frame from now on carries a tag, both ways.
  const SessionKeys& keys = handshake.session_keys();
  parser_.Authenticate(std::make_unique<FrameAuthenticator>(keys.head_to_client));
  {
    std::lock_guard lock(send_mu_);
    outgoing_ = std::make_unique<FrameAuthenticator>(keys.client_to_head);
  }
  parser_.set_max_payload(kMaxControlPayload);
  return Status::Ok();
}

Status ControlClient::Send(const std::string& frame) {
  std::lock_guard lock(send_mu_);
  if (fd_ < 0) return UnavailableError("not connected to the head");
  if (!outgoing_) return SendAll(fd_, frame, options_.send_timeout);
  std::string sealed;
  sealed.reserve(frame.size() + kFrameTagSize);
  sealed = frame;
  outgoing_->Seal(&sealed);
  return SendAll(fd_, sealed, options_.send_timeout);
}

Result<std::optional<Frame>> ControlClient::Receive(TimePoint deadline) {
  Frame frame;
  char buffer[64 << 10];
  while (true) {
    FrameParser::State state = parser_.Next(&frame);
    if (state == FrameParser::State::kFrame) return std::optional<Frame>(std::move(frame));
    if (state == FrameParser::State::kMalformed) return MalformedFrameStatus();
    const Duration left = deadline - options_.clock->Now();
    if (left <= Duration::zero()) return std::optional<Frame>();
    pollfd p{fd_, POLLIN, 0};
    // At most a tick at a time, so a fake clock advanced past the deadline is
    // seen (see ControlClientOptions::clock).
    int ready = poll(&p, 1, PollTimeoutMs(std::min<Duration>(left, kControlTick)));
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) continue;
    ssize_t n = recv(fd_, buffer, sizeof(buffer), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      return UnavailableError(
          fmt::format("the head at {}:{} closed the connection", options_.host, options_.port));
    }
    parser_.Feed(std::string_view(buffer, static_cast<size_t>(n)));
  }
}

Status ControlClient::MalformedFrameStatus() const {
  if (parser_.authentication_failed()) {
    return Status(StatusCode::kPermissionDenied,
                  fmt::format("closed the connection to the head at {}:{}: {}", options_.host,
                              options_.port, parser_.error()));
  }
  return Status(StatusCode::kPermissionDenied,
                fmt::format("the head at {}:{} sent a malformed frame: {}", options_.host,
                            options_.port, parser_.error()));
}

void ControlClient::StartReader(std::function<void(const Frame&)> on_frame,
                                std::function<void()> on_tick,
                                std::function<void(const std::string&)> on_closed) {
  on_frame_ = std::move(on_frame);
  on_tick_ = std::move(on_tick);
  on_closed_ = std::move(on_closed);
  reader_ = std::thread([this] { ReaderLoop(); });
}

void ControlClient::Close() {
  stop_ = true;
  if (wake_fd_ >= 0) {
    uint64_t one = 1;
    ssize_t ignored = write(wake_fd_, &one, sizeof(one));
    (void)ignored;
  }
  std::lock_guard lock(send_mu_);
  if (fd_ >= 0) shutdown(fd_, SHUT_RDWR);
}

void ControlClient::ReaderLoop() {
  char buffer[64 << 10];
  Clock* clock = options_.clock;
  TimePoint next_tick = clock->Now();
  std::string reason;
  Frame frame;
  // Frames that arrived with the handshake's last read.
  FrameParser::State buffered;
  while ((buffered = parser_.Next(&frame)) == FrameParser::State::kFrame) on_frame_(frame);
  if (buffered == FrameParser::State::kMalformed) {
    reason = MalformedFrameStatus().message();
    Close();
  }
  while (!stop_) {
    const TimePoint now = clock->Now();
    if (now >= next_tick) {
      next_tick = now + kControlTick;
      if (on_tick_) on_tick_();
    }
    // Bounded by a tick of real time, as in the control server: a fake clock
    // that a test advanced is seen at the next tick, not never.
    pollfd fds[2] = {{fd_, POLLIN, 0}, {wake_fd_, POLLIN, 0}};
    int ready =
        poll(fds, 2, PollTimeoutMs(std::min<Duration>(next_tick - clock->Now(), kControlTick)));
    if (ready < 0 && errno != EINTR) {
      reason = fmt::format("poll: {}", std::strerror(errno));
      break;
    }
    if (ready <= 0 || (fds[0].revents == 0)) continue;
    ssize_t n = recv(fd_, buffer, sizeof(buffer), 0);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n <= 0 && stop_) break;
    if (n <= 0) {
      reason = n == 0 ? "the head closed the connection"
                      : fmt::format("connection to the head failed: {}", std::strerror(errno));
      break;
    }
    parser_.Feed(std::string_view(buffer, static_cast<size_t>(n)));
    while (true) {
      FrameParser::State state = parser_.Next(&frame);
      if (state == FrameParser::State::kNeedMore) break;
      if (state == FrameParser::State::kMalformed) {
        reason = MalformedFrameStatus().message();
        Close();  // the head sees the connection end at once, not at a heartbeat timeout
        break;
      }
      on_frame_(frame);
    }
  }
  if (reason.empty()) reason = "closed by trainrun";
  if (on_closed_) on_closed_(reason);
}

}  // namespace trainrun
