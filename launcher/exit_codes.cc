#include "launcher/exit_codes.h"

namespace trainrun {

int ExitCodeFor(const Status& status) {
  switch (status.code()) {
    case StatusCode::kOk: return kExitOk;
    case StatusCode::kInvalidArgument: return kExitUsage;
    case StatusCode::kInvalidJob:
    case StatusCode::kNotSupported:
    case StatusCode::kAlreadyExists:
    case StatusCode::kNotFound: return kExitInvalidJob;
    case StatusCode::kUnavailable: return kExitUnavailable;
    case StatusCode::kUploadFailed: return kExitUploadFailed;
    case StatusCode::kCanceled: return kExitCanceled;
    case StatusCode::kPermissionDenied:
    case StatusCode::kIoError:
    case StatusCode::kInternal: return kExitInternal;
  }
  return kExitInternal;
}

}  // namespace trainrun
