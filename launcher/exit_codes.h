// The exit codes of README.md ("Exit codes of `trainrun run`"), and the one place a
// Status becomes one.
#pragma once

#include "base/status.h"

namespace trainrun {

constexpr int kExitOk = 0;
constexpr int kExitTimeout = 124;
constexpr int kExitCanceled = 143;
constexpr int kExitUsage = 64;
constexpr int kExitInvalidJob = 65;
constexpr int kExitNoInput = 66;      // `trainrun history`: no such run or file
constexpr int kExitUnavailable = 69;  // rendezvous failed or a node was lost
constexpr int kExitInternal = 70;
constexpr int kExitUploadFailed = 74;
// Preflight found this node (or another of the job's) unhealthy before the user's
// script started: EX_TEMPFAIL, "try again later", which a scheduler's requeue on
// another node fixes (README, "Preflight").
constexpr int kExitPreflightFailed = 75;

// kInvalidArgument -> 64; kInvalidJob, kNotSupported, kAlreadyExists and kNotFound
// (a job input that is not there) -> 65; kUnavailable -> 69; kUploadFailed -> 74;
// kCanceled -> 143; anything else -> 70.
int ExitCodeFor(const Status& status);

}  // namespace trainrun
