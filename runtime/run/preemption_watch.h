// PreemptionWatch: a cloud's notice that this node is about to be taken back
// (README "Preemption"), seen early enough for the ranks to write a checkpoint.
//
// Two sources, each off unless configured:
//   - a file whose appearance is the notice (a node agent or a Kubernetes hook
//     writes it), looked at every file interval. A file already there when the
//     watch is made is stale (an earlier start's): only a new modification time
//     (it is written again, or removed and made anew) is a notice then;
//   - an HTTP(S) URL polled with GET every poll interval, as the clouds' metadata
//     endpoints are (Azure Scheduled Events, GCE's `preempted`, AWS spot
//     `instance-action`): the notice is a 2xx response whose body contains a given
//     string (any 2xx when none is given). Other statuses and failed requests are
//     not notices (an endpoint that is not there yet, a 404 before the action).
// The first notice calls `on_notice` once, from the watch's thread, with a line
// naming the source; the watch then ends.
#pragma once

#include <condition_variable>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "base/clock.h"
#include "runtime/store/http_client.h"

namespace trainrun {

constexpr auto kPreemptionFileInterval = std::chrono::seconds(1);
constexpr auto kPreemptionRequestTimeout = std::chrono::seconds(2);

struct PreemptionWatchOptions {
  std::string notice_file;  // "" : none
  std::string url;          // "" : none
  std::string body_contains;
  HttpHeaders headers;
  Duration url_interval = std::chrono::seconds(5);
  Duration file_interval = kPreemptionFileInterval;
};

class PreemptionWatch {
 public:
  PreemptionWatch(PreemptionWatchOptions options,
                  std::function<void(const std::string& why)> on_notice);
  ~PreemptionWatch();
  PreemptionWatch(const PreemptionWatch&) = delete;
  PreemptionWatch& operator=(const PreemptionWatch&) = delete;

  // Whether the notice file was already there when the watch was made.
  bool stale_file() const { return stale_mtime_ns_ != 0; }
  // Whether anything is configured to watch.
  bool enabled() const { return !options_.notice_file.empty() || !options_.url.empty(); }
  // Starts the thread (nothing when !enabled()).
  void Start();
  // Ends it; a request in flight ends within kPreemptionRequestTimeout. Safe twice.
  void Stop();

  // Looks at the file now (and polls the URL when `poll_url`): the notice, or
  // nullopt. Any thread; does not call on_notice.
  std::optional<std::string> CheckOnce(bool poll_url);

 private:
  void Loop();

  PreemptionWatchOptions options_;
  std::function<void(const std::string&)> on_notice_;
  int64_t stale_mtime_ns_ = 0;  // the notice file's mtime at construction; 0: none
  HttpClient http_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;  // guarded by mu_
  std::thread thread_;
};

}  // namespace trainrun
