#include "runtime/run/history_uploader.h"

#include <sys/stat.h>

#include <algorithm>

#include <fmt/format.h>

#include "base/fs_util.h"

namespace trainrun {

std::optional<FileStamp> StampOf(const std::string& path) {
  struct stat st {};
  if (stat(path.c_str(), &st) != 0) return std::nullopt;
  return FileStamp{static_cast<uint64_t>(st.st_size), MtimeNs(st)};
}

bool IsTransientUploadFailure(const Status& status) {
  return status.code() == StatusCode::kUnavailable;
}

HistoryUploader::HistoryUploader(Store* store, Reporter* reporter, HistoryUploaderOptions options)
    : store_(store), reporter_(reporter), options_(options) {}

void HistoryUploader::StartDeadline() {
  deadline_ = options_.clock->Now() + options_.finalize_timeout;
  store_->SetRetryDeadline(deadline_);
}

void HistoryUploader::LimitDeadline(TimePoint deadline) {
  if (deadline_ && *deadline_ <= deadline) return;
  deadline_ = deadline;
  store_->SetRetryDeadline(deadline_);
}

bool HistoryUploader::Expired() const { return deadline_ && options_.clock->Now() >= *deadline_; }

UploadReport HistoryUploader::Upload(const std::vector<TransferItem>& all,
                                     const std::string& what) {
  UploadReport report;
  std::vector<TransferItem> pending;
  for (const TransferItem& item : all) {
    auto it = uploaded_.find(item.key);
    std::optional<FileStamp> now = StampOf(item.local_path);
    if (it != uploaded_.end() && now && *now == it->second) {
      ++report.files;  // there already, unchanged
      report.bytes += item.size;
      continue;
    }
    pending.push_back(item);
  }
  Backoff backoff(options_.round_backoff);
  for (int round = 1;; ++round) {
    UploadReport done = UploadItems(store_, pending, options_.parallelism, {});
    report.files += done.files;
    report.bytes += done.bytes;
    std::vector<TransferItem> retry;
    Status first_transient;
    // Past the deadline every failure is final: that round is the last one.
    for (size_t i = 0; i < done.failed_items.size(); ++i) {
      const Status& why = done.failures[i];
      if (IsTransientUploadFailure(why) && deadline_ && !Expired()) {
        retry.push_back(pending[done.failed_items[i]]);
        if (first_transient.ok()) first_transient = why;
      } else {
        report.errors.push_back(done.errors[i]);
        report.failed_paths.push_back(done.failed_paths[i]);
        report.failures.push_back(why);
      }
    }
    if (retry.empty()) break;
    Duration delay = backoff.Next();
    if (deadline_)
      delay = std::min(delay, std::max(Duration(0), *deadline_ - options_.clock->Now()));
    const std::string message = fmt::format(
        "{}: {} file(s) did not reach {} ({}); they stay on local disk, next try in {:.1f} s{}",
        what, retry.size(), store_->Uri(), first_transient.message(), ToSeconds(delay),
        deadline_ ? fmt::format(", until the finalize timeout in {:.0f} s",
                                ToSeconds(*deadline_ - options_.clock->Now()))
                  : "");
    if (round == 1) {
      reporter_->Warning(message);
    } else {
      reporter_->Info(message);
    }
    options_.sleeper->Sleep(delay);
    pending = std::move(retry);
  }
  if (report.errors.empty() && !pending.empty() && backoff.delays_given() > 0) {
    reporter_->Info(fmt::format("{}: every file reached {} after retries", what, store_->Uri()));
  }
  return report;
}

}  // namespace trainrun
