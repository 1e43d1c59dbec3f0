// Checkpoints kept in a store (README "Checkpoints"): a folder the ranks write,
// uploaded unit by unit while they run, and restored before they start.
//
// A *unit* is a top-level entry of the folder: a file (`epoch3.pt`) or a directory
// with everything in it (`step-1200/`). Names starting with '.' are never uploaded
// (write `.epoch3.pt.tmp`, then rename it). A unit is uploaded once it is complete:
//   - the script signalled it: a file `.trainrun/commit/<unit>` in the folder (the
//     Python helper trainrun/checkpoint.py writes it), removed once the unit is up;
//   - or it has not changed (names, sizes, modification times) for the quiet period.
// A unit that changed again is uploaded again.
//
// Key layout under the checkpoint prefix P:
//   P/<unit>[/<path in it>]            the files, as in the folder
//   P/.trainrun/node-<N>.json          node N's manifest: its complete units, oldest first
// The manifest is written after a unit's files and before a changed unit is sent
// again without it, so a unit listed there is whole: a restore reads only what the
// manifests list, never a file still on its way. Retention (keep the last K) drops
// a unit from the manifest first, then deletes its files.
//
// Upload bandwidth is capped on average per file: after a file of S bytes the next
// upload waits until S / cap seconds have passed since the previous one began.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "base/backoff.h"
#include "base/clock.h"
#include "base/status.h"
#include "runtime/report/reporter.h"
#include "runtime/run/history_uploader.h"
#include "runtime/store/store.h"

namespace trainrun {

// Where the script's signals go, relative to the checkpoint folder.
constexpr const char* kCheckpointCommitDir = ".trainrun/commit";
// Where the manifests go, relative to the checkpoint prefix.
constexpr const char* kCheckpointManifestDir = ".trainrun";

struct CheckpointSyncOptions {
  std::string local_dir;                             // the checkpoint folder (absolute)
  std::string key_prefix;                            // P: "" or a key without a trailing '/'
  int node_rank = 0;                                 // whose manifest this node writes
  Duration quiet_period = std::chrono::seconds(10);  // zero: only signals
  Duration scan_interval = std::chrono::seconds(1);
  int keep_last = 3;                  // 0: keep every unit
  uint64_t max_bytes_per_second = 0;  // 0: no cap
  Clock* clock = SystemClock();
  Sleeper* sleeper = RealSleeper();  // waits for the bandwidth cap, in slices
};

// One unit in a manifest: its files (relative to the folder) and sizes.
struct CheckpointUnit {
  std::string name;
  std::string completed;  // ISO 8601
  std::vector<std::pair<std::string, uint64_t>> files;
};

// The manifest key of `node_rank` under `prefix`.
std::string CheckpointManifestKey(const std::string& prefix, int node_rank);

class CheckpointUploader {
 public:
  // Does not own `store` or `reporter`; both must outlive it. Reads this node's
  // manifest, if any, so that a second start on the same prefix (a new attempt)
  // keeps its units and their order.
  CheckpointUploader(Store* store, Reporter* reporter, CheckpointSyncOptions options);
  ~CheckpointUploader();
  CheckpointUploader(const CheckpointUploader&) = delete;
  CheckpointUploader& operator=(const CheckpointUploader&) = delete;

  // Starts the background thread: a pass every scan interval.
  void Start();
  // Stops it; a pass in progress gives up between files (and on requests being
  // retried). Safe to call twice.
  void Stop();

  // One pass now on the calling thread: uploads every complete unit that is new or
  // changed, then applies retention. Call only while the thread is not running
  // (tests, FinalPass). Upload failures are warned about once and retried next pass.
  void PassOnce();
  // After the ranks have ended (call after Stop()): one pass without the bandwidth
  // cap, in which every unit also counts as complete when `ranks_ended_cleanly` (no
  // rank was killed mid-write). Returns the failures, for Finalizing.
  UploadReport FinalPass(bool ranks_ended_cleanly);

  // Units in this node's manifest, oldest first.
  std::vector<CheckpointUnit> manifest() const;
  // Units uploaded by this object (counting re-uploads).
  int uploads() const;

 private:
  struct Seen {
    std::string signature;  // names, sizes, mtimes of its files
    TimePoint since{};      // when this signature was first seen
    std::string uploaded;   // the signature that reached the store
  };
  void Loop();
  void Pass(bool final_pass, bool all_complete, UploadReport* report);
  Status UploadUnit(const std::string& unit, const std::vector<std::string>& files, bool capped);
  Status WriteManifest();
  void ApplyRetention();
  bool Stopping();

  Store* store_;
  Reporter* reporter_;
  CheckpointSyncOptions options_;
  std::map<std::string, Seen> seen_;   // only the pass's thread
  std::vector<CheckpointUnit> units_;  // guarded by mu_
  TimePoint next_upload_{};            // only the pass's thread
  bool failing_ = false;               // only the pass's thread
  int uploads_ = 0;                    // guarded by mu_

  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;  // guarded by mu_
  std::thread thread_;
};

struct RestoreReport {
  int units = 0;
  int files = 0;    // downloaded
  int skipped = 0;  // already there with the same size
  uint64_t bytes = 0;
  bool manifest = false;  // read from manifests (else every object under the prefix)
};

// Restores the checkpoints under `prefix` of `store` into `local_dir`: the files of
// every unit in every node's manifest, or, when there is none (a folder not written
// by trainrun), every object under the prefix. Each file is written under a
// temporary name and renamed (GetFile); one already there with the same size is
// kept. Nothing under the prefix restores nothing (units == 0). Fails with the
// store's error naming the key; files restored before it stay.
Result<RestoreReport> RestoreCheckpointFiles(Store* store, const std::string& prefix,
                                             const std::string& local_dir);

}  // namespace trainrun
