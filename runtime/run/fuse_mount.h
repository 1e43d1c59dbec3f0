// FuseMount: a read-only FUSE mount of an object-store URI (az://, s3://) for a data
// reference with mechanism `mount`, through rclone (`rclone mount`, Debian's rclone
// package with fuse3), which must be on PATH, with /dev/fuse usable.
//
// Credentials reach rclone through its environment (RCLONE_CONFIG_TRAINRUN_*), never
// its command line: the S3 variables as trainrun reads them; for Azure a read-only
// SAS for the container that trainrun signs with the account key (or the SAS the
// environment gives). rclone starts through the ProcessSet like every child of
// trainrun (its own process group, SIGTERM when trainrun dies), logs to `log_path`,
// and is unmounted (fusermount) and stopped by the destructor. Its end while the
// mount is in use is an event the owner reports (HelperExited).
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>

#include "base/cancel.h"
#include "runtime/process/process.h"
#include "runtime/store/store.h"

namespace trainrun {

constexpr auto kFuseMountTimeout = std::chrono::seconds(30);
// How long a SAS made for a mount stays valid.
constexpr auto kMountSasLifetime = std::chrono::hours(24 * 7);

// Why FUSE mounts of object stores cannot work here ("" when they can).
std::string FuseUnavailableReason();

// How a mount is made; the defaults are the real thing. Tests put a stand-in in
// rclone's place where FUSE is not available.
struct FuseMountOptions {
  // The rclone executable; empty = `rclone` on PATH, once FuseUnavailableReason()
  // says FUSE mounts can work here. A given one is run without that check.
  std::string rclone;
  // Whether the mount at `target` is ready; empty = IsMountPoint(target).
  std::function<bool(const std::string& target)> ready;
  // The wait for the mount ends with kCanceled (rclone stopped) soon after this is
  // canceled. Not owned; null: never.
  const CancelToken* cancel = nullptr;
};

class FuseMount {
 public:
  // Mounts `uri` at `target` (created when missing, must be empty) read-only and
  // waits until the mount is there. rclone starts through `processes`, which must
  // outlive the mount, from the thread that calls its Wait(). Errors name the URI
  // (credentials removed) and the log.
  static Result<std::unique_ptr<FuseMount>> Mount(const std::string& uri, const std::string& target,
                                                  const std::string& log_path, const EnvLookup& env,
                                                  ProcessSet* processes,
                                                  const FuseMountOptions& options = {});
  // Unmounts and stops rclone.
  ~FuseMount();
  FuseMount(const FuseMount&) = delete;
  FuseMount& operator=(const FuseMount&) = delete;

  // Unmounts now; errors name the mount point.
  Status Unmount();
  const std::string& target() const { return target_; }
  const std::string& tool() const { return tool_; }
  // rclone's pid; -1 once it ended or was stopped.
  int pid() const { return pid_; }

  // Tells the mount that rclone ended with `status` (its exit, reaped by whoever
  // waits on the ProcessSet). Returns what that means for the run, e.g. "the FUSE
  // mount's rclone (pid 42) exited with exit code 1; the data at /mnt/x is gone
  // (rclone's last log line: ...; log: ...)", credentials removed; "" when the mount
  // was already being unmounted. Afterwards pid() is -1.
  std::string HelperExited(const ExitStatus& status);

 private:
  FuseMount(std::string target, std::string tool, int pid, ProcessSet* processes,
            std::string log_path, std::map<std::string, std::string> secrets)
      : target_(std::move(target)),
        tool_(std::move(tool)),
        pid_(pid),
        processes_(processes),
        log_path_(std::move(log_path)),
        secrets_(std::move(secrets)) {}

  std::string target_;
  std::string tool_;
  int pid_;
  ProcessSet* processes_;
  std::string log_path_;
  std::map<std::string, std::string> secrets_;  // rclone's configuration, to redact
  bool mounted_ = true;
};

// Whether `path` is a mount point now (/proc/self/mountinfo).
bool IsMountPoint(const std::string& path);

}  // namespace trainrun
