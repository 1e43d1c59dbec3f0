// FuseMount: a read-only FUSE mount of an object-store URI (az://, s3://) for a data
// reference with mechanism `mount`, through rclone (`rclone mount`, Debian's rclone
// package with fuse3), which must be on PATH, with /dev/fuse usable.
//
// Credentials reach rclone through its environment (RCLONE_CONFIG_TRAINRUN_*), never
// its command line: the S3 variables as trainrun reads them; for Azure a read-only
// SAS for the container that trainrun signs with the account key (or the SAS the
// environment gives). rclone runs as trainrun's child, dies with it, logs to
// `log_path`, and is unmounted (fusermount) and stopped by the destructor.
#pragma once

#include <memory>
#include <string>

#include "runtime/store/store.h"

namespace trainrun {

constexpr auto kFuseMountTimeout = std::chrono::seconds(30);
// How long a SAS made for a mount stays valid.
constexpr auto kMountSasLifetime = std::chrono::hours(24 * 7);

// Why FUSE mounts of object stores cannot work here ("" when they can).
std::string FuseUnavailableReason();

class FuseMount {
 public:
  // Mounts `uri` at `target` (created when missing, must be empty) read-only and
  // waits until the mount is there. Errors name the URI (credentials removed) and
  // the log.
  static Result<std::unique_ptr<FuseMount>> Mount(const std::string& uri, const std::string& target,
                                                  const std::string& log_path,
                                                  const EnvLookup& env);
  // Unmounts and stops rclone.
  ~FuseMount();
  FuseMount(const FuseMount&) = delete;
  FuseMount& operator=(const FuseMount&) = delete;

  // Unmounts now; errors name the mount point.
  Status Unmount();
  const std::string& target() const { return target_; }
  const std::string& tool() const { return tool_; }

 private:
  FuseMount(std::string target, std::string tool, int pid)
      : target_(std::move(target)), tool_(std::move(tool)), pid_(pid) {}

  std::string target_;
  std::string tool_;
  int pid_;
  bool mounted_ = true;
};

// Whether `path` is a mount point now (/proc/self/mountinfo).
bool IsMountPoint(const std::string& path);

}  // namespace trainrun
