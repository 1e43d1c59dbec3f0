// HttpClient: HTTP(S) requests over libcurl for the object stores.
//
// A request's body comes from memory or from a range of a file; a response's body
// goes to memory or into a file at an offset, so transfers never hold a whole file.
// Connections are kept alive and reused (a pool of curl handles). Send() makes one
// attempt; SendWithRetry() rebuilds (re-signs) the request for every attempt and
// retries dropped connections, timeouts, 408, 429 and 5xx with backoff.
//
// Messages name the method and the URL with credentials removed (RedactUri), never a
// header. Every method is safe from several threads at once.
//
// A client given a CancelToken (SetCancel) aborts every transfer in flight soon
// after the token is canceled (libcurl's progress callback returns non-zero; it runs
// at least about once a second even on a silent connection), starts none after, and
// stops retrying: such calls fail with kCanceled.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/backoff.h"
#include "base/cancel.h"
#include "base/status.h"

namespace trainrun {

constexpr auto kDefaultConnectTimeout = std::chrono::seconds(10);
// A transfer that moves less than 1 byte/s for this long is a dropped connection.
constexpr auto kDefaultStallTimeout = std::chrono::seconds(60);
// Error bodies and listings are small; anything bigger must go to a file.
constexpr uint64_t kMaxResponseInMemory = 256 << 20;

using HttpHeaders = std::vector<std::pair<std::string, std::string>>;

struct HttpRequest {
  std::string method = "GET";  // GET, HEAD, PUT, POST, DELETE
  std::string url;             // absolute, query included, already encoded
  HttpHeaders headers;         // sent as given (Content-Length is set by the client)
  // The body: `body`, or `body_length` bytes of `body_fd` from `body_offset`.
  std::string body;
  int body_fd = -1;
  uint64_t body_offset = 0;
  uint64_t body_length = 0;
  // A 2xx response body goes to `sink_fd` at `sink_offset` (pwrite) when >= 0,
  // else into HttpResponse::body. Error bodies always go to memory.
  int sink_fd = -1;
  uint64_t sink_offset = 0;
  // Told the bytes sent or received, as they move (may be empty).
  std::function<void(uint64_t)> on_bytes;

  uint64_t BodySize() const { return body_fd >= 0 ? body_length : body.size(); }
};

struct HttpResponse {
  long status = 0;
  HttpHeaders headers;  // names lowercased, the final response's only
  std::string body;
  uint64_t sunk_bytes = 0;  // written to sink_fd

  // The first header named `name` (lowercase), or "".
  std::string Header(std::string_view name) const;
  bool ok() const { return status >= 200 && status < 300; }
};

struct HttpClientOptions {
  Duration connect_timeout = kDefaultConnectTimeout;
  Duration stall_timeout = kDefaultStallTimeout;
};

class HttpClient {
 public:
  explicit HttpClient(HttpClientOptions options = {});
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // One attempt. Any HTTP status is a response; only a transport failure (refused,
  // reset, timed out, TLS) is an error, kUnavailable.
  Result<HttpResponse> Send(const HttpRequest& request);

  // Calls `build` for each attempt (so a signature carries a fresh date) and sends
  // it, retrying transport failures and retryable statuses (IsRetryableStatus) as
  // `retry` says. Returns the last response or error. `build` errors are returned
  // at once.
  Result<HttpResponse> SendWithRetry(const std::function<Result<HttpRequest>()>& build,
                                     const RetryOptions& retry);

  // Transfers watch `cancel` (not owned; it must outlive the client; null: none)
  // from now on, those in flight included.
  void SetCancel(const CancelToken* cancel) { cancel_.store(cancel); }

 private:
  void* Acquire();
  void Release(void* handle);

  HttpClientOptions options_;
  std::atomic<const CancelToken*> cancel_{nullptr};
  std::mutex mu_;
  std::vector<void*> idle_;  // CURL* handles with live connections; guarded by mu_
};

// 408, 429, 500, 502, 503, 504: the service asks to come back later.
bool IsRetryableStatus(long status);

// RFC 3986 percent-encoding of everything but A-Z a-z 0-9 - _ . ~ (and '/' when
// `keep_slash`), as SigV4 and Azure want it.
std::string UriEncode(std::string_view text, bool keep_slash);
// Decodes %XX (and leaves anything else as is).
std::string UriDecode(std::string_view text);
// A query string's parameters ("a=1&b=x%20y"), names and values decoded, in
// order; a parameter without '=' has an empty value.
std::vector<std::pair<std::string, std::string>> ParseQuery(std::string_view query);

// "http://host:port/path?query" split into its parts; false when it is not an
// absolute http(s) URL.
struct ParsedUrl {
  std::string scheme;  // http or https
  std::string host;    // with ":port" when given
  std::string path;    // starts with '/', still encoded
  std::string query;   // without '?'
};
bool ParseUrl(std::string_view url, ParsedUrl* out);

// RFC 1123 dates, as HTTP headers carry them: "Sun, 22 Nov 2026 00:21:29 GMT".
std::string HttpDate(WallTime t);
// False when `text` is not one.
bool ParseHttpDate(const std::string& text, WallTime* out);

}  // namespace trainrun
