// LiveUploader: run history that follows a running run. Every `interval` a
// background thread uploads the files of the watched folders (./logs,
// history.directoriesToWatch, the ranks' logs, trainrun's system log) that are new or
// changed since their last upload, so `trainrun history logs RUN --follow` shows a
// live run from any machine. A file is re-sent whole when it changed (object
// stores cannot append); unchanged files cost a stat each pass.
//
// An unreachable store costs nothing but a warning: the files stay on local disk
// and Finalizing uploads them (HistoryUploader), skipping those already sent.
#pragma once

#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "runtime/report/reporter.h"
#include "runtime/run/history_uploader.h"
#include "runtime/store/store.h"

namespace trainrun {

constexpr auto kDefaultLiveUploadInterval = std::chrono::seconds(5);
constexpr int kLiveUploadParallelism = 4;

struct WatchedDir {
  std::string local_dir;   // created later is fine; missing is empty
  std::string key_prefix;  // "exp/run/logs"
};

class LiveUploader {
 public:
  // Does not own `store` or `reporter`. Symlinks are followed only inside
  // `containment_root` (as at Finalizing).
  LiveUploader(Store* store, Reporter* reporter, std::vector<WatchedDir> dirs,
               std::string containment_root, Duration interval = kDefaultLiveUploadInterval);
  ~LiveUploader();
  LiveUploader(const LiveUploader&) = delete;
  LiveUploader& operator=(const LiveUploader&) = delete;

  // Starts the background thread; the first pass is one interval from now.
  void Start();
  // Stops it; a pass in progress gives up on requests still being retried. No
  // final pass: Finalizing uploads what is left.
  void Stop();

  // What reached the store and is known unchanged since. Call after Stop().
  FileStamps uploaded() const;
  // Passes completed (for tests and the system log).
  int passes() const;

  // One pass now, on the calling thread (tests).
  void PassOnce();

 private:
  void Loop();

  Store* store_;
  Reporter* reporter_;
  std::vector<WatchedDir> dirs_;
  std::string containment_root_;
  Duration interval_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;     // guarded by mu_
  FileStamps uploaded_;   // guarded by mu_
  int passes_ = 0;        // guarded by mu_
  bool failing_ = false;  // only the loop thread
  std::thread thread_;
};

}  // namespace trainrun
