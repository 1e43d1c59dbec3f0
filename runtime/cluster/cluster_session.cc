#include "runtime/cluster/cluster_session.h"

namespace trainrun {

void StopLatch::Set(StopNotice notice) {
  if (notice_) return;
  notice_ = std::move(notice);
  if (handler_) handler_(*notice_);
}

void StopLatch::SetHandler(std::function<void(const StopNotice&)> handler) {
  handler_ = std::move(handler);
  if (notice_ && handler_) handler_(*notice_);
}

int64_t WallMillis() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace trainrun
