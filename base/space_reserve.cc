#include "base/space_reserve.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <utility>

#include <fmt/format.h>

namespace trainrun {

SpaceReserve::~SpaceReserve() { Remove(); }

SpaceReserve::SpaceReserve(SpaceReserve&& other) noexcept
    : path_(std::exchange(other.path_, {})), bytes_(std::exchange(other.bytes_, 0)) {}

SpaceReserve& SpaceReserve::operator=(SpaceReserve&& other) noexcept {
  if (this != &other) {
    Remove();
    path_ = std::exchange(other.path_, {});
    bytes_ = std::exchange(other.bytes_, 0);
  }
  return *this;
}

void SpaceReserve::Remove() {
  if (!path_.empty()) unlink(path_.c_str());
  path_.clear();
  bytes_ = 0;
}

Result<SpaceReserve> SpaceReserve::Create(std::string path, uint64_t bytes) {
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return ErrnoStatus(errno, path);
  // posix_fallocate returns the error rather than setting errno; where the file
  // system has no fallocate, glibc writes a byte into every block instead.
  int err = posix_fallocate(fd, 0, static_cast<off_t>(bytes));
  if (close(fd) != 0 && err == 0) err = errno;
  if (err != 0) {
    unlink(path.c_str());
    return ErrnoStatus(err, fmt::format("cannot reserve {} bytes in {}", bytes, path));
  }
  return SpaceReserve(std::move(path), bytes);
}

Status SpaceReserve::WriteAs(const std::string& target, std::string_view content) {
  if (path_.empty()) return IoError(fmt::format("no space reserved for {}", target));
  if (content.size() > bytes_) {
    return IoError(fmt::format("{} needs {} bytes, more than the {} reserved in {}", target,
                               content.size(), bytes_, path_));
  }
  // No O_TRUNC: truncating would give the blocks back before they are written.
  int fd = open(path_.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus(errno, path_);
  size_t done = 0;
  Status s;
  while (done < content.size()) {
    ssize_t n = pwrite(fd, content.data() + done, content.size() - done, static_cast<off_t>(done));
    if (n < 0) {
      if (errno == EINTR) continue;
      s = ErrnoStatus(errno, path_);
      break;
    }
    done += static_cast<size_t>(n);
  }
  // Only now the unused tail goes back to the file system.
  if (s.ok()) {
    if (ftruncate(fd, static_cast<off_t>(content.size())) == 0) {
      bytes_ = content.size();
    } else {
      s = ErrnoStatus(errno, path_);
    }
  }
  if (close(fd) != 0 && s.ok()) s = ErrnoStatus(errno, path_);
  if (s.ok() && rename(path_.c_str(), target.c_str()) != 0) s = ErrnoStatus(errno, target);
  if (!s.ok()) return s;
  path_.clear();
  bytes_ = 0;
  return Status::Ok();
}

}  // namespace trainrun
