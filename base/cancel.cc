#include "base/cancel.h"

#include <fmt/format.h>

namespace trainrun {

void CancelToken::Cancel(const std::string& reason) {
  {
    std::lock_guard lock(mu_);
    if (canceled_.load(std::memory_order_relaxed)) return;
    reason_ = reason;
    canceled_.store(true, std::memory_order_release);
  }
  cv_.notify_all();
}

std::string CancelToken::reason() const {
  std::lock_guard lock(mu_);
  return reason_;
}

bool CancelToken::WaitFor(Duration d) const {
  std::unique_lock lock(mu_);
  cv_.wait_for(lock, d, [this] { return canceled_.load(std::memory_order_relaxed); });
  return canceled();
}

Status CanceledError(const CancelToken& token, const std::string& what) {
  const std::string reason = token.reason();
  return Status(StatusCode::kCanceled,
                fmt::format("{}: canceled{}", what, reason.empty() ? "" : " (" + reason + ")"));
}

}  // namespace trainrun
