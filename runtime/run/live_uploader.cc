#include "runtime/run/live_uploader.h"

#include <fmt/format.h>

#include "runtime/run/history.h"

namespace trainrun {

LiveUploader::LiveUploader(Store* store, Reporter* reporter, std::vector<WatchedDir> dirs,
                           std::string containment_root, Duration interval)
    : store_(store),
      reporter_(reporter),
      dirs_(std::move(dirs)),
      containment_root_(std::move(containment_root)),
      interval_(interval) {}

LiveUploader::~LiveUploader() { Stop(); }

void LiveUploader::Start() {
  if (thread_.joinable()) return;
  thread_ = std::thread([this] { Loop(); });
}

void LiveUploader::Stop() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (!thread_.joinable()) return;
  // A pass stuck retrying an unreachable store gives up now instead of after its
  // retries; Finalizing sets its own deadline afterwards.
  store_->SetRetryDeadline(SystemClock()->Now());
  thread_.join();
  store_->SetRetryDeadline(std::nullopt);
}

FileStamps LiveUploader::uploaded() const {
  std::lock_guard lock(mu_);
  return uploaded_;
}

int LiveUploader::passes() const {
  std::lock_guard lock(mu_);
  return passes_;
}

void LiveUploader::Loop() {
  std::unique_lock lock(mu_);
  while (!stop_) {
    cv_.wait_for(lock, interval_, [this] { return stop_; });
    if (stop_) return;
    lock.unlock();
    PassOnce();
    lock.lock();
  }
}

void LiveUploader::PassOnce() {
  std::vector<TransferItem> items;
  std::vector<SkippedSymlink> skipped;  // reported at Finalizing
  for (const WatchedDir& dir : dirs_) {
    PlanUpload(dir.local_dir, dir.key_prefix, containment_root_, "", &items, &skipped)
        .IgnoreError();
  }
  std::vector<TransferItem> changed;
  std::vector<FileStamp> stamps;
  {
    std::lock_guard lock(mu_);
    for (const TransferItem& item : items) {
      // Stamped when planned, before the upload: a file that grows meanwhile goes up
      // again next pass.
      const FileStamp now{item.size, item.mtime_ns};
      auto it = uploaded_.find(item.key);
      if (it != uploaded_.end() && it->second == now) continue;
      changed.push_back(item);
      stamps.push_back(now);
    }
  }
  UploadReport report = UploadItems(store_, changed, kLiveUploadParallelism, {});
  std::vector<bool> failed(changed.size(), false);
  for (size_t i : report.failed_items) failed[i] = true;
  {
    std::lock_guard lock(mu_);
    for (size_t i = 0; i < changed.size(); ++i) {
      if (!failed[i]) uploaded_[changed[i].key] = stamps[i];
    }
    ++passes_;
  }
  if (!report.failures.empty() && !failing_) {
    failing_ = true;
    reporter_->Warning(fmt::format(
        "live upload of logs to {} failed ({}); the files are safe on local disk and trainrun "
        "keeps trying",
        store_->Uri(), report.failures.front().message()));
  } else if (report.failures.empty() && failing_) {
    failing_ = false;
    reporter_->Info(fmt::format("live upload of logs to {} works again", store_->Uri()));
  }
}

}  // namespace trainrun
