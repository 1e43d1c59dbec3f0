// Space set aside on a file system while it still has room, so that one small file
// (the final run record) can be written after the disk has filled up.
//
// The reserve is an ordinary hidden file whose blocks are allocated up front
// (posix_fallocate). Writing into blocks a file already owns needs no free space,
// and renaming a file over another frees the old one, so WriteAs() succeeds on a
// file system with no free byte left.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "base/status.h"

namespace trainrun {

class SpaceReserve {
 public:
  SpaceReserve() = default;  // holds nothing; WriteAs() fails
  // Removes the reserve file when it was not used.
  ~SpaceReserve();
  SpaceReserve(SpaceReserve&& other) noexcept;
  SpaceReserve& operator=(SpaceReserve&& other) noexcept;
  SpaceReserve(const SpaceReserve&) = delete;
  SpaceReserve& operator=(const SpaceReserve&) = delete;

  // Creates the file `path` holding `bytes` allocated bytes. Fails with the file
  // system's error (ENOSPC when there is not that much room), leaving no file.
  static Result<SpaceReserve> Create(std::string path, uint64_t bytes);

  // Whether the reserve is still there to be used.
  bool available() const { return !path_.empty(); }
  uint64_t bytes() const { return bytes_; }
  const std::string& path() const { return path_; }

  // Writes `content` into the reserved blocks and renames the reserve to `target`,
  // so `target` is either the whole new content or what it was before. Uses the
  // reserve up (available() is false after success). Fails, leaving the reserve as
  // it was, when nothing is reserved or `content` is larger than bytes(); fails
  // with the file system's error otherwise.
  Status WriteAs(const std::string& target, std::string_view content);

 private:
  SpaceReserve(std::string path, uint64_t bytes) : path_(std::move(path)), bytes_(bytes) {}
  void Remove();

  std::string path_;
  uint64_t bytes_ = 0;
};

}  // namespace trainrun
