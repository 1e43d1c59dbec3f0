#include "runtime/run/preemption_watch.h"

#include <sys/stat.h>

#include <algorithm>

#include <fmt/format.h>

#include "base/redact.h"

namespace trainrun {

namespace {

int64_t MtimeNsOf(const struct stat& st) {
  return static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
}

}  // namespace

PreemptionWatch::PreemptionWatch(PreemptionWatchOptions options,
                                 std::function<void(const std::string& why)> on_notice)
    : options_(std::move(options)),
      on_notice_(std::move(on_notice)),
      // A metadata endpoint answers at once or not at all: a short limit keeps
      // Stop() quick and the next poll on time.
      http_(HttpClientOptions{kPreemptionRequestTimeout, kPreemptionRequestTimeout}) {
  struct stat st {};
  if (!options_.notice_file.empty() && stat(options_.notice_file.c_str(), &st) == 0) {
    stale_mtime_ns_ = std::max<int64_t>(1, MtimeNsOf(st));
  }
}

PreemptionWatch::~PreemptionWatch() { Stop(); }

void PreemptionWatch::Start() {
  if (!enabled() || thread_.joinable()) return;
  thread_ = std::thread([this] { Loop(); });
}

void PreemptionWatch::Stop() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

std::optional<std::string> PreemptionWatch::CheckOnce(bool poll_url) {
  struct stat st {};
  if (!options_.notice_file.empty() && stat(options_.notice_file.c_str(), &st) == 0 &&
      std::max<int64_t>(1, MtimeNsOf(st)) != stale_mtime_ns_) {
    return fmt::format("the preemption notice file {} appeared", options_.notice_file);
  }
  if (!poll_url || options_.url.empty()) return std::nullopt;
  HttpRequest request;
  request.url = options_.url;
  request.headers = options_.headers;
  Result<HttpResponse> response = http_.Send(request);
  if (!response.ok() || !response->ok()) return std::nullopt;
  if (!options_.body_contains.empty() &&
      response->body.find(options_.body_contains) == std::string::npos) {
    return std::nullopt;
  }
  return fmt::format("the preemption notice URL {} answered {}{}", RedactUri(options_.url),
                     response->status,
                     options_.body_contains.empty()
                         ? ""
                         : fmt::format(" with \"{}\" in its body", options_.body_contains));
}

void PreemptionWatch::Loop() {
  const Duration tick = options_.notice_file.empty()
                            ? options_.url_interval
                            : std::min(options_.file_interval, options_.url_interval);
  TimePoint next_poll = SystemClock()->Now();
  std::unique_lock lock(mu_);
  while (!stop_) {
    lock.unlock();
    const TimePoint now = SystemClock()->Now();
    const bool poll = !options_.url.empty() && now >= next_poll;
    if (poll) next_poll = now + options_.url_interval;
    std::optional<std::string> notice = CheckOnce(poll);
    lock.lock();
    if (stop_) return;
    if (notice) {
      lock.unlock();
      on_notice_(*notice);
      return;
    }
    cv_.wait_for(lock, tick, [this] { return stop_; });
  }
}

}  // namespace trainrun
