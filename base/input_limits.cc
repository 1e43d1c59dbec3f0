#include "base/input_limits.h"

#include <fmt/format.h>

namespace trainrun {

Status CheckPathLength(std::string_view path) {
  if (path.size() > kMaxPathBytes) {
    return InvalidArgumentError(
        fmt::format("is {} bytes long; a path may have at most {}", path.size(), kMaxPathBytes));
  }
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string_view::npos) end = path.size();
    if (end - start > kMaxNameBytes) {
      // Quote only the start of the component: the whole of it would drown the message.
      return InvalidArgumentError(
          fmt::format("path component \"{}...\" is {} bytes long; a file name may have at most {}",
                      path.substr(start, 32), end - start, kMaxNameBytes));
    }
    start = end + 1;
  }
  return Status::Ok();
}

}  // namespace trainrun
