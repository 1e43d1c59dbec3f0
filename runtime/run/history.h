// Run history: the layout of runs in a Store, uploads of a run's folders, and the
// reading side behind `trainrun history`.
//
// clang-format off
//   <experimentName>/<runId>/run.json
//                            outputs/...      ./outputs of the working directory
//                            logs/...         ./logs (and history.directoriesToWatch)
//                            user_logs/std_log_process_<rank>.txt
//                            system_logs/...  trainrun's own log
//                            metrics/rank_<rank>.jsonl  what the ranks log (metrics.h)
// clang-format on
#pragma once

#include <sys/stat.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "runtime/run/run_record.h"
#include "runtime/store/store.h"

namespace trainrun {

constexpr int kDefaultUploadParallelism = 8;

struct RunKey {
  std::string experiment;
  std::string run_id;
  // "experiment/run_id/"
  std::string Prefix() const { return experiment + "/" + run_id + "/"; }
};

// One file to upload: local path and destination key.
struct TransferItem {
  std::string local_path;
  std::string key;
  uint64_t size = 0;
  int64_t mtime_ns = 0;  // as PlanUpload saw the file
};

// A stat's modification time in nanoseconds.
int64_t MtimeNs(const struct stat& st);

struct UploadReport {
  uint64_t files = 0;
  uint64_t bytes = 0;
  std::vector<SkippedSymlink> skipped_symlinks;
  std::vector<std::string> errors;        // "local path -> key: reason", one per file
  std::vector<std::string> failed_paths;  // local paths that did not arrive
  std::vector<size_t> failed_items;       // their indices in the items uploaded
  std::vector<Status> failures;           // and why, in the same order
};

// Lists what uploading `local_dir` to `key_prefix` means: every regular file, and
// what symlinks point to as long as the target is inside `containment_root`.
// Symlinks pointing outside (or nowhere) are reported in `skipped`, with `path`
// relative to `record_prefix`, and not followed. Real folders are walked before
// symlinks to folders, so a real folder is always uploaded under its own name and a
// symlink to a folder already uploaded is reported in `skipped` (kAlreadyUploaded).
// A missing `local_dir` is empty.
Status PlanUpload(const std::string& local_dir, const std::string& key_prefix,
                  const std::string& containment_root, const std::string& record_prefix,
                  std::vector<TransferItem>* items, std::vector<SkippedSymlink>* skipped);

// Uploads `items` with up to `parallelism` transfers at once. Failures do not stop
// the others; they are listed in the report. `progress` (may be empty) is called
// from the uploading threads after each file.
UploadReport UploadItems(Store* store, const std::vector<TransferItem>& items, int parallelism,
                         const std::function<void(uint64_t files, uint64_t bytes)>& progress);

class RunHistory {
 public:
  // Does not own `store`.
  explicit RunHistory(Store* store) : store_(store) {}

  Store* store() const { return store_; }

  // Writes run.json (atomically: readers see the old or the new record).
  Status WriteRecord(const RunRecord& record);
  // Writes the first run.json of a run, which claims its run id: exclusively
  // (Store::CreateBytes), so of several starts with the same id at once, on any
  // hosts, one succeeds and the others get kAlreadyExists and change nothing.
  Status CreateRecord(const RunRecord& record);
  Result<RunRecord> ReadRecord(const RunKey& key);

  // Finds a run by id, in `experiment` or in any experiment when empty. kNotFound
  // names the store; an id found in several experiments is kInvalidArgument
  // listing them.
  Result<RunKey> FindRun(const std::string& run_id, const std::string& experiment = "");

  // Every run (in `experiment` when not empty), newest first. Runs whose record
  // cannot be read are skipped and named in `problems` when not null.
  Result<std::vector<RunRecord>> ListRuns(const std::string& experiment = "",
                                          std::vector<std::string>* problems = nullptr);

 private:
  // `only` when not empty, else every experiment folder in the store.
  Result<std::vector<std::string>> Experiments(const std::string& only);

  Store* store_;
};

}  // namespace trainrun
