// A tmpfs of a few MiB mounted on a fresh folder, for tests of what happens when a
// disk is full. Needs root (CAP_SYS_ADMIN); skip_reason() says why it could not be
// made. Unmounted (lazily, so a process still inside cannot keep it) when it goes
// out of scope.
#pragma once

#include <sys/mount.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>

#include "tests/test_util.h"

namespace trainrun::testing {

class SmallTmpfs {
 public:
  explicit SmallTmpfs(const std::string& size = "2m") {
    if (geteuid() != 0) {
      skip_ = "needs root to mount a small tmpfs (mount -t tmpfs -o size=" + size + ")";
      return;
    }
    std::string options = "size=" + size + ",mode=0755";
    if (mount("tmpfs", dir_.path().c_str(), "tmpfs", 0, options.c_str()) != 0) {
      skip_ = std::string("cannot mount a tmpfs: ") + std::strerror(errno);
      return;
    }
    mounted_ = true;
  }
  ~SmallTmpfs() {
    if (mounted_) umount2(dir_.path().c_str(), MNT_DETACH);
  }
  SmallTmpfs(const SmallTmpfs&) = delete;
  SmallTmpfs& operator=(const SmallTmpfs&) = delete;

  const std::string& skip_reason() const { return skip_; }
  const std::string& path() const { return dir_.path(); }
  std::string operator/(const std::string& name) const { return dir_ / name; }

  // Writes zeros into `name` until the file system is full; returns the bytes written.
  uint64_t Fill(const std::string& name = "filler") const {
    std::ofstream out(dir_ / name, std::ios::binary);
    const std::string block(4096, '\0');
    uint64_t bytes = 0;
    while (out.write(block.data(), block.size()) && out.flush()) bytes += block.size();
    return bytes;
  }
  uint64_t FreeBytes() const {
    struct statvfs st {};
    if (statvfs(dir_.path().c_str(), &st) != 0) return 0;
    return static_cast<uint64_t>(st.f_bavail) * st.f_frsize;
  }

 private:
  TempDir dir_;
  std::string skip_;
  bool mounted_ = false;
};

}  // namespace trainrun::testing
