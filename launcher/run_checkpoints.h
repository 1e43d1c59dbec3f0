// Checkpoints and preemption for `trainrun run` (README "Checkpoints",
// "Preemption"): where a run's checkpoints live in a store, their restore before
// the ranks start, their upload while the ranks run and right after they end, and
// the preemption notices that stop the run early. Each is one call or one object,
// so that every attempt of a run can restore, upload and watch again. Internal to
// the launcher.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "launcher/run_context.h"
#include "launcher/run_load.h"
#include "runtime/run/checkpoint_sync.h"
#include "runtime/run/preemption_watch.h"
#include "runtime/run/run_layout.h"

namespace trainrun {

// The key under a run's history prefix where its checkpoints go by default.
constexpr const char* kCheckpointsDir = "checkpoints";

// A store and the prefix under it that hold checkpoints.
struct CheckpointPlace {
  std::unique_ptr<Store> owned;  // when not run history's store
  Store* store = nullptr;        // owned, or the run's history store
  std::string prefix;            // no trailing '/'
  std::string Uri() const;       // for messages: the store's URI and the prefix
};

// The checkpoint folder of the run: <working directory>/<checkpoints.path>.
std::string CheckpointDir(const JobConfig& job, const LocalRunLayout& layout);

// Where run `run_id` of the job's experiment keeps its checkpoints:
// checkpoints.uri/<experiment>/<run_id>, else <history>/<experiment>/<run_id>/checkpoints.
// Fails with kInvalidJob naming checkpoints.uri when it cannot be opened.
Result<CheckpointPlace> CheckpointPlaceOf(const LoadedRun& run, const std::string& run_id);

// Before the ranks start (each attempt): creates the checkpoint folder and restores
// into it the checkpoints of `resumeFrom` (a run id: that run's place; a URI: that
// folder of that store) or, without it, this run's own (a new attempt or a new node
// finds what the last one uploaded). Nothing to restore is fine for the run's own;
// for resumeFrom it is kNotFound (exit 65). Store errors fail with their code; a
// cancel stops the downloads (kCanceled). Reports what was restored and records
// it in run.json's details.checkpoints. Nothing when checkpoints are off.
Status RestoreCheckpoints(const RunContext& ctx, const LoadedRun& run,
                          const LocalRunLayout& layout);

// The upload of checkpoints around the ranks of one attempt.
class CheckpointSync {
 public:
  // Starts uploading the checkpoint folder of `layout` to this run's place while
  // the ranks run; null when checkpoints are off, or (with a warning) when the
  // place cannot be opened.
  static std::unique_ptr<CheckpointSync> Start(const RunContext& ctx, const LoadedRun& run,
                                               const LocalRunLayout& layout);
  ~CheckpointSync();

  // Once the ranks have ended, before anything else is uploaded: stops the
  // background upload, then uploads what is complete (everything but hidden files
  // when `ranks_ended_cleanly`), without the bandwidth cap, retrying no later than
  // `deadline`. Returns the failures (for Finalizing's upload errors).
  UploadReport UploadLast(bool ranks_ended_cleanly, std::optional<TimePoint> deadline);

 private:
  CheckpointSync() = default;
  CheckpointPlace place_;
  Reporter* reporter_ = nullptr;
  std::unique_ptr<CheckpointUploader> uploader_;
};

// Watches the job's preemptionNoticeFile and preemptionNoticeUrl while the ranks
// run; a notice is reported as a warning and turned into a SIGTERM to trainrun
// itself: the same stop as a scheduler's (the ranks' grace period, checkpoints
// first, Canceled, 143). Null when neither is configured. Stopped by its destructor.
std::unique_ptr<PreemptionWatch> StartPreemptionWatch(const RunContext& ctx, const JobConfig& job);

}  // namespace trainrun
