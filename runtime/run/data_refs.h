// Data references: making each `data.<name>` of the job available to the ranks.
//
// clang-format off
//   mount     local paths: a read-only bind mount of the source at pathOnCompute when
//             trainrun may mount (in a private mount namespace, so it vanishes with
//             the run); otherwise a symlink, and the system log says which.
//             az:// and s3://: a read-only FUSE mount through rclone (fuse_mount.h),
//             unmounted at the end; without rclone or /dev/fuse, an error that
//             suggests `download` (never a silent download)
//   download  local paths: a copy, after checking there is room for it.
//             az://, s3://, https://: a parallel, verified download through the
//             node's cache (object_download.h), so a rerun downloads nothing
//   direct    the location itself, as given (a URI goes to the script as is)
// clang-format on
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "base/status.h"
#include "runtime/report/reporter.h"
#include "runtime/run/fuse_mount.h"
#include "runtime/run/job_config.h"

namespace trainrun {

struct PreparedData {
  std::string name;
  std::string path;    // what the ranks get: a local path, or the URI for direct
  std::string source;  // the resolved location
  std::string method;  // "read-only bind mount", "symlink", "copy", "direct"
  uint64_t files = 0;  // copied, for download
  uint64_t bytes = 0;
  uint64_t downloaded_files = 0;  // from an object store this time
  uint64_t downloaded_bytes = 0;
  uint64_t cached_files = 0;  // from the node's cache
};

class DataPreparer {
 public:
  // `job_dir` resolves relative locations; `workdir` (the ranks' cwd) resolves
  // relative pathOnCompute; `data_dir` holds the defaults (<data_dir>/<name>).
  // `fuse` says how FUSE mounts are made (the defaults are the real rclone).
  DataPreparer(std::string job_dir, std::string workdir, std::string data_dir, Reporter* reporter,
               FuseMountOptions fuse = {});
  // Unmounts what Prepare() mounted (FUSE mounts first).
  ~DataPreparer();

  // Makes one reference available. A FUSE mount's rclone starts through `helpers`,
  // which must outlive this DataPreparer (may be null when no reference is an
  // object-store mount). Errors name the reference (data.<name>) and the path or
  // URI at fault (credentials removed); a missing source is kNotFound, a mount that
  // this node cannot make kNotSupported.
  Result<PreparedData> Prepare(const DataReference& ref, ProcessSet* helpers);

  // For each exit that the supervision loop sees and that is not a rank's
  // (SupervisorOptions::on_helper_exit): when `pid` was a data mount's rclone and the
  // mount was in use, reports a warning that names the reference and says its data
  // is gone ("data.mnist: the FUSE mount's rclone (pid 42) exited with exit code 1;
  // the data at /mnt/mnist is gone ..."). Returns that message, or "" when `pid` was
  // no such helper or it ended as expected (an unmount).
  std::string HelperExited(int pid, const ExitStatus& status);

  // The local path a reference resolves to, without preparing anything (dry runs).
  std::string PlannedPath(const DataReference& ref) const;

  // From now on Prepare() gives up soon after `cancel` is canceled, with kCanceled
  // naming the reference and what it was doing: between the files of a local
  // copy, in every object-store transfer (those in flight are aborted), and in the
  // wait for a FUSE mount. Not owned; it must outlive this DataPreparer; null: never.
  void SetCancel(const CancelToken* cancel);

 private:
  Result<std::string> ResolveSource(const DataReference& ref) const;
  Status Mount(const std::string& source, const std::string& target, PreparedData* out);
  Status Download(const DataReference& ref, const std::string& source, const std::string& target,
                  PreparedData* out);
  Status PrepareObject(const DataReference& ref, ProcessSet* helpers, PreparedData* out);

  std::string job_dir_;
  std::string workdir_;
  std::string data_dir_;
  Reporter* reporter_;
  FuseMountOptions fuse_options_;  // .cancel is cancel_
  const CancelToken* cancel_ = nullptr;
  std::vector<std::string> mounts_;
  struct NamedFuseMount {
    std::string name;  // the data reference's
    std::unique_ptr<FuseMount> mount;
  };
  std::vector<NamedFuseMount> fuse_mounts_;
};

}  // namespace trainrun
