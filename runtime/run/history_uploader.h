// HistoryUploader: getting a run's files into run history at Finalizing, even when
// the store is unreachable for a while.
//
// The files never move: they stay where the run wrote them, in the run directory
// on local disk (<workdir>/<experiment>/<runId>/), which is the spool. Each upload
// round sends what has not arrived yet; files that failed for a transient reason
// (the store unreachable, 5xx, throttling, a checksum mismatch) are sent again in
// the next round, after a backoff, until they all arrive or the finalize deadline
// passes. Permanent failures (access denied, a file that vanished) are not retried.
// Files the live uploader already sent, unchanged since, are skipped.
//
// Used from one thread (the pipeline's); uploads run on `parallelism` threads.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "base/backoff.h"
#include "runtime/report/reporter.h"
#include "runtime/run/history.h"
#include "runtime/store/store.h"

namespace trainrun {

constexpr auto kDefaultFinalizeTimeout = std::chrono::seconds(600);
constexpr auto kDefaultUploadRoundBackoffInitial = std::chrono::seconds(1);
constexpr auto kDefaultUploadRoundBackoffMax = std::chrono::seconds(30);

// What a local file looked like when it was uploaded.
struct FileStamp {
  uint64_t size = 0;
  int64_t mtime_ns = 0;
  bool operator==(const FileStamp&) const = default;
};
// The file's stamp now; nullopt when it cannot be read.
std::optional<FileStamp> StampOf(const std::string& path);
// Object key -> the stamp of the local file when it reached the store.
using FileStamps = std::map<std::string, FileStamp>;

struct HistoryUploaderOptions {
  // How long Finalizing may keep retrying after the first failure; counted from
  // StartDeadline().
  Duration finalize_timeout = kDefaultFinalizeTimeout;
  int parallelism = kDefaultUploadParallelism;
  BackoffOptions round_backoff{kDefaultUploadRoundBackoffInitial, kDefaultUploadRoundBackoffMax,
                               kDefaultBackoffMultiplier, true};
  Clock* clock = SystemClock();
  Sleeper* sleeper = RealSleeper();
};

class HistoryUploader {
 public:
  // Does not own `store` or `reporter`.
  HistoryUploader(Store* store, Reporter* reporter, HistoryUploaderOptions options = {});

  // Starts the finalize clock: no retry begins after now + finalize_timeout. Also
  // bounds the store's own request retries.
  void StartDeadline();
  // Brings the deadline forward to `deadline` when that is earlier (a scheduler's
  // SIGKILL is coming); starts it when StartDeadline() was not called.
  void LimitDeadline(TimePoint deadline);
  // Files that need not go up again while they are unchanged.
  void SetAlreadyUploaded(FileStamps stamps) { uploaded_ = std::move(stamps); }

  // Uploads `items` (named `what` in messages), retrying as described above
  // (without StartDeadline, once: no retries).
  // The report lists what never arrived, with the last reason for each.
  UploadReport Upload(const std::vector<TransferItem>& items, const std::string& what);

  // Whether the deadline has passed.
  bool Expired() const;

 private:
  Store* store_;
  Reporter* reporter_;
  HistoryUploaderOptions options_;
  std::optional<TimePoint> deadline_;
  FileStamps uploaded_;
};

// Whether a failed upload is worth trying again later.
bool IsTransientUploadFailure(const Status& status);

}  // namespace trainrun
