#include "runtime/store/http_client.h"

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <mutex>

#include <fmt/format.h>

#include "base/redact.h"
#include "base/text.h"
#include "runtime/store/store_libs.h"

namespace trainrun {
namespace {

// Per-transfer state the curl callbacks share.
struct Transfer {
  const CurlApi* api;
  const HttpRequest* request;
  HttpResponse* response;
  CURL* curl;
  const std::atomic<const CancelToken*>* cancel;
  uint64_t sent = 0;
  int write_errno = 0;
  bool too_big = false;
  bool canceled = false;  // the progress callback aborted the transfer
};

// libcurl calls it often while bytes move and about once a second when none do;
// non-zero aborts the transfer (CURLE_ABORTED_BY_CALLBACK).
int OnProgress(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  auto* t = static_cast<Transfer*>(user);
  if (!IsCanceled(t->cancel->load())) return 0;
  t->canceled = true;
  return 1;
}

size_t ReadBody(char* buffer, size_t size, size_t count, void* user) {
  auto* t = static_cast<Transfer*>(user);
  const HttpRequest& r = *t->request;
  size_t room = size * count;
  uint64_t left = r.BodySize() - t->sent;
  size_t n = static_cast<size_t>(std::min<uint64_t>(room, left));
  if (n == 0) return 0;
  if (r.body_fd >= 0) {
    ssize_t got;
    do {
      got = pread(r.body_fd, buffer, n, static_cast<off_t>(r.body_offset + t->sent));
    } while (got < 0 && errno == EINTR);
    if (got <= 0) return CURL_READFUNC_ABORT;  // the file shrank or cannot be read
    n = static_cast<size_t>(got);
  } else {
    std::memcpy(buffer, r.body.data() + t->sent, n);
  }
  t->sent += n;
  if (r.on_bytes) r.on_bytes(n);
  return n;
}

size_t WriteBody(char* data, size_t size, size_t count, void* user) {
  auto* t = static_cast<Transfer*>(user);
  size_t n = size * count;
  long status = 0;
  t->api->easy_getinfo(t->curl, CURLINFO_RESPONSE_CODE, &status);
  const HttpRequest& r = *t->request;
  if (r.sink_fd >= 0 && status >= 200 && status < 300) {
    size_t done = 0;
    while (done < n) {
      ssize_t w = pwrite(r.sink_fd, data + done, n - done,
                         static_cast<off_t>(r.sink_offset + t->response->sunk_bytes + done));
      if (w < 0 && errno == EINTR) continue;
      if (w < 0) {
        t->write_errno = errno;
        return 0;  // makes curl fail with CURLE_WRITE_ERROR
      }
      done += static_cast<size_t>(w);
    }
    t->response->sunk_bytes += n;
    if (r.on_bytes) r.on_bytes(n);
    return n;
  }
  if (t->response->body.size() + n > kMaxResponseInMemory) {
    t->too_big = true;
    return 0;
  }
  t->response->body.append(data, n);
  return n;
}

size_t OnHeader(char* data, size_t size, size_t count, void* user) {
  auto* t = static_cast<Transfer*>(user);
  std::string_view line(data, size * count);
  if (line.rfind("HTTP/", 0) == 0) {
    t->response->headers.clear();  // a new response (after 100 Continue, say)
  } else {
    size_t colon = line.find(':');
    if (colon != std::string_view::npos) {
      t->response->headers.emplace_back(ToLower(TrimSpace(line.substr(0, colon))),
                                        std::string(TrimSpace(line.substr(colon + 1))));
    }
  }
  return size * count;
}

}  // namespace

std::string HttpResponse::Header(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (k == name) return v;
  }
  return "";
}

HttpClient::HttpClient(HttpClientOptions options) : options_(options) {}

HttpClient::~HttpClient() {
  // Handles exist only if libcurl was loaded.
  for (void* h : idle_) Curl().value()->easy_cleanup(static_cast<CURL*>(h));
}

void* HttpClient::Acquire() {
  {
    std::lock_guard lock(mu_);
    if (!idle_.empty()) {
      void* h = idle_.back();
      idle_.pop_back();
      return h;
    }
  }
  Result<const CurlApi*> api = Curl();
  return api.ok() ? (*api)->easy_init() : nullptr;
}

void HttpClient::Release(void* handle) {
  std::lock_guard lock(mu_);
  idle_.push_back(handle);
}

Result<HttpResponse> HttpClient::Send(const HttpRequest& request) {
  const std::string what = fmt::format("{} {}", request.method, RedactUri(request.url));
  if (const CancelToken* cancel = cancel_.load(); IsCanceled(cancel)) {
    return CanceledError(*cancel, what);
  }
  TR_ASSIGN_OR_RETURN(const CurlApi* api, Curl());
  CURL* curl = static_cast<CURL*>(Acquire());
  if (curl == nullptr) return InternalError("curl_easy_init failed");
  api->easy_reset(curl);  // keeps the connection cache
  HttpResponse response;
  Transfer transfer{api, &request, &response, curl, &cancel_};
  char error[CURL_ERROR_SIZE] = {};

  api->easy_setopt(curl, CURLOPT_URL, request.url.c_str());
  api->easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  api->easy_setopt(curl, CURLOPT_ERRORBUFFER, error);
  api->easy_setopt(
      curl, CURLOPT_CONNECTTIMEOUT_MS,
      static_cast<long>(
          std::chrono::duration_cast<std::chrono::milliseconds>(options_.connect_timeout).count()));
  api->easy_setopt(curl, CURLOPT_LOW_SPEED_LIMIT, 1L);
  api->easy_setopt(
      curl, CURLOPT_LOW_SPEED_TIME,
      static_cast<long>(
          std::chrono::duration_cast<std::chrono::seconds>(options_.stall_timeout).count()));
  api->easy_setopt(curl, CURLOPT_TCP_KEEPALIVE, 1L);
  api->easy_setopt(curl, CURLOPT_WRITEFUNCTION, WriteBody);
  api->easy_setopt(curl, CURLOPT_WRITEDATA, &transfer);
  api->easy_setopt(curl, CURLOPT_HEADERFUNCTION, OnHeader);
  api->easy_setopt(curl, CURLOPT_HEADERDATA, &transfer);
  api->easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
  api->easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
  api->easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, OnProgress);
  api->easy_setopt(curl, CURLOPT_XFERINFODATA, &transfer);

  const bool has_body = request.method == "PUT" || request.method == "POST";
  if (request.method == "HEAD") {
    api->easy_setopt(curl, CURLOPT_NOBODY, 1L);
  } else if (has_body) {
    // Upload mode for every body, so the body is streamed and never copied.
    api->easy_setopt(curl, CURLOPT_UPLOAD, 1L);
    api->easy_setopt(curl, CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(request.BodySize()));
    api->easy_setopt(curl, CURLOPT_READFUNCTION, ReadBody);
    api->easy_setopt(curl, CURLOPT_READDATA, &transfer);
    if (request.method == "POST") api->easy_setopt(curl, CURLOPT_CUSTOMREQUEST, "POST");
  } else if (request.method != "GET") {
    api->easy_setopt(curl, CURLOPT_CUSTOMREQUEST, request.method.c_str());
  }

  curl_slist* headers = nullptr;
  for (const auto& [name, value] : request.headers) {
    headers = api->slist_append(headers, fmt::format("{}: {}", name, value).c_str());
  }
  // No "Expect: 100-continue" round trip, and nothing curl would add unsigned.
  headers = api->slist_append(headers, "Expect:");
  headers = api->slist_append(headers, "Accept:");
  api->easy_setopt(curl, CURLOPT_HTTPHEADER, headers);

  CURLcode code = api->easy_perform(curl);
  api->easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &response.status);
  api->slist_free_all(headers);
  Release(curl);

  if (transfer.canceled) return CanceledError(*cancel_.load(), what);
  if (transfer.write_errno != 0) {
    return ErrnoStatus(transfer.write_errno, fmt::format("{}: writing the download", what));
  }
  if (transfer.too_big) {
    return InternalError(
        fmt::format("{}: response larger than {} bytes", what, kMaxResponseInMemory));
  }
  if (code != CURLE_OK) {
    if (code == CURLE_ABORTED_BY_CALLBACK || code == CURLE_READ_ERROR) {
      return IoError(fmt::format("{}: the local file changed or could not be read", what));
    }
    return UnavailableError(
        fmt::format("{}: {}", what, error[0] != '\0' ? error : api->easy_strerror(code)));
  }
  return response;
}

Result<HttpResponse> HttpClient::SendWithRetry(const std::function<Result<HttpRequest>()>& build,
                                               const RetryOptions& retry) {
  Result<HttpResponse> last = UnavailableError("no attempt made");
  RetryOptions options = retry;
  const CancelToken* cancel = cancel_.load();
  if (!options.canceled && cancel != nullptr) {
    options.canceled = [cancel] { return cancel->canceled(); };
  }
  RetryCall(options, [&](int) {
    Result<HttpRequest> request = build();
    if (!request.ok()) {
      last = request.status();
      return AttemptOutcome::kDone;
    }
    last = Send(*request);
    if (!last.ok()) {
      return last.status().code() == StatusCode::kUnavailable ? AttemptOutcome::kRetry
                                                              : AttemptOutcome::kDone;
    }
    return IsRetryableStatus(last->status) ? AttemptOutcome::kRetry : AttemptOutcome::kDone;
  });
  // A cancel between attempts leaves the last retryable failure: say why it ended.
  if (IsCanceled(cancel) && (!last.ok() || IsRetryableStatus(last->status)) &&
      (last.ok() || last.status().code() != StatusCode::kCanceled)) {
    return CanceledError(
        *cancel, last.ok() ? fmt::format("HTTP {}", last->status) : last.status().message());
  }
  return last;
}

bool IsRetryableStatus(long status) {
  return status == 408 || status == 429 || status == 500 || status == 502 || status == 503 ||
         status == 504;
}

std::string UriEncode(std::string_view text, bool keep_slash) {
  std::string out;
  out.reserve(text.size());
  for (unsigned char c : text) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' ||
        (keep_slash && c == '/')) {
      out += static_cast<char>(c);
    } else {
      out += fmt::format("%{:02X}", c);
    }
  }
  return out;
}

std::string UriDecode(std::string_view text) {
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '%' && i + 2 < text.size() &&
        std::isxdigit(static_cast<unsigned char>(text[i + 1])) &&
        std::isxdigit(static_cast<unsigned char>(text[i + 2]))) {
      out += static_cast<char>(std::stoi(std::string(text.substr(i + 1, 2)), nullptr, 16));
      i += 2;
    } else {
      out += text[i];
    }
  }
  return out;
}

std::vector<std::pair<std::string, std::string>> ParseQuery(std::string_view query) {
  std::vector<std::pair<std::string, std::string>> params;
  size_t start = 0;
  while (start < query.size()) {
    size_t end = query.find('&', start);
    if (end == std::string_view::npos) end = query.size();
    std::string_view p = query.substr(start, end - start);
    start = end + 1;
    if (p.empty()) continue;
    size_t eq = p.find('=');
    params.emplace_back(UriDecode(p.substr(0, eq)),
                        eq == std::string_view::npos ? "" : UriDecode(p.substr(eq + 1)));
  }
  return params;
}

bool ParseUrl(std::string_view url, ParsedUrl* out) {
  size_t scheme_end = url.find("://");
  if (scheme_end == std::string_view::npos) return false;
  out->scheme = ToLower(url.substr(0, scheme_end));
  if (out->scheme != "http" && out->scheme != "https") return false;
  std::string_view rest = url.substr(scheme_end + 3);
  size_t path_start = rest.find_first_of("/?#");
  out->host = std::string(rest.substr(0, path_start));
  if (out->host.empty()) return false;
  std::string_view tail = path_start == std::string_view::npos ? "" : rest.substr(path_start);
  size_t hash = tail.find('#');
  if (hash != std::string_view::npos) tail = tail.substr(0, hash);
  size_t q = tail.find('?');
  out->path = std::string(tail.substr(0, q));
  if (out->path.empty()) out->path.assign(1, '/');
  out->query = q == std::string_view::npos ? "" : std::string(tail.substr(q + 1));
  return true;
}

std::string HttpDate(WallTime t) {
  std::time_t secs = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[64];
  // The C locale's day and month names, which HTTP wants.
  std::strftime(buf, sizeof(buf), "%a, %d %b %Y %H:%M:%S GMT", &tm);
  return buf;
}

bool ParseHttpDate(const std::string& text, WallTime* out) {
  std::tm tm{};
  const char* end = strptime(text.c_str(), "%a, %d %b %Y %H:%M:%S", &tm);
  if (end == nullptr) return false;
  *out = std::chrono::system_clock::from_time_t(timegm(&tm));
  return true;
}

}  // namespace trainrun
