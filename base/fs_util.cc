#include "base/fs_util.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <random>

#include <fmt/format.h>

namespace trainrun {

namespace fs = std::filesystem;

std::string TempNameFor(const std::string& path) {
  static thread_local std::mt19937_64 rng(std::random_device{}());
  fs::path p(path);
  return (p.parent_path() /
          fmt::format(".{}.tmp-{:08x}", p.filename().string(), static_cast<uint32_t>(rng())))
      .string();
}

Status WriteAll(int fd, const char* data, size_t size, const std::string& name) {
  while (size > 0) {
    ssize_t n = write(fd, data, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(errno, name);
    }
    data += n;
    size -= static_cast<size_t>(n);
  }
  return Status::Ok();
}

Status MakeDirs(const std::string& path) {
  std::error_code ec;
  fs::create_directories(path, ec);
  if (ec) return ErrnoStatus(ec.value(), fmt::format("cannot create directory {}", path));
  return Status::Ok();
}

Result<std::vector<fs::directory_entry>> ListDirectory(const fs::path& dir) {
  std::vector<fs::directory_entry> entries;
  std::error_code ec;
  fs::directory_iterator it(dir, ec);
  for (; !ec && it != fs::directory_iterator(); it.increment(ec)) entries.push_back(*it);
  if (ec) return ErrnoStatus(ec.value(), dir.string());
  return entries;
}

Status WriteFileAtomic(const std::string& path, std::string_view content) {
  TR_RETURN_IF_ERROR(MakeDirs(fs::path(path).parent_path().string()));
  std::string temp = TempNameFor(path);
  int fd = open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) return ErrnoStatus(errno, temp);
  Status s = WriteAll(fd, content.data(), content.size(), temp);
  if (close(fd) != 0 && s.ok()) s = ErrnoStatus(errno, temp);
  if (s.ok() && rename(temp.c_str(), path.c_str()) != 0) s = ErrnoStatus(errno, path);
  if (!s.ok()) unlink(temp.c_str());
  return s;
}

std::string AbsolutePath(const std::string& path) {
  std::error_code ec;
  fs::path absolute = fs::absolute(path, ec);
  return ec ? path : absolute.lexically_normal().string();
}

namespace {

// Copies [offset, offset + length) of `in` to the same offsets of `out`, in the
// kernel where it can (copy_file_range), else through a buffer.
Status CopyRange(int in, int out, off_t offset, off_t length, const std::string& from,
                 const std::string& to) {
  loff_t in_off = offset;
  loff_t out_off = offset;
  off_t left = length;
  bool fallback = false;
  while (left > 0) {
    ssize_t n;
    if (!fallback) {
      n = copy_file_range(in, &in_off, out, &out_off, static_cast<size_t>(left), 0);
      if (n < 0 && (errno == EXDEV || errno == ENOSYS || errno == EINVAL || errno == EOPNOTSUPP)) {
        fallback = true;
        continue;
      }
    } else {
      char buf[1 << 16];
      n = pread(in, buf, std::min<off_t>(left, sizeof(buf)), in_off);
      // A short write sets no errno (a full disk says ENOSPC only on the next try),
      // so write until all of it is written or a write fails.
      for (ssize_t written = 0; n > 0 && written < n;) {
        ssize_t w = pwrite(out, buf + written, static_cast<size_t>(n - written), out_off + written);
        if (w < 0 && errno != EINTR) return ErrnoStatus(errno, to);
        if (w > 0) written += w;
      }
      if (n > 0) {
        in_off += n;
        out_off += n;
      }
    }
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(errno, fmt::format("copying {} to {}", from, to));
    }
    if (n == 0) break;  // the file shrank meanwhile
    left -= n;
  }
  return Status::Ok();
}

}  // namespace

Status CopyFileAtomic(const std::string& from, const std::string& to, uint64_t* bytes) {
  int in = open(from.c_str(), O_RDONLY | O_CLOEXEC);
  if (in < 0) return ErrnoStatus(errno, from);
  struct stat st {};
  if (fstat(in, &st) != 0) {
    int err = errno;
    close(in);
    return ErrnoStatus(err, from);
  }
  Status s = MakeDirs(fs::path(to).parent_path().string());
  if (!s.ok()) {
    close(in);
    return s;
  }
  std::string temp = TempNameFor(to);
  int out = open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, st.st_mode & 07777);
  if (out < 0) {
    int err = errno;
    close(in);
    return ErrnoStatus(err, temp);
  }
  // Only the data segments are copied (SEEK_DATA/SEEK_HOLE), so a sparse file stays
  // sparse; the final size comes from ftruncate.
  const off_t size = st.st_size;
  off_t pos = 0;
  while (s.ok() && pos < size) {
    off_t data = lseek(in, pos, SEEK_DATA);
    off_t hole = size;
    if (data < 0 && errno == ENXIO) break;  // only a hole is left
    if (data < 0) {
      data = pos;  // a file system without SEEK_DATA: one segment, the rest
    } else {
      hole = lseek(in, data, SEEK_HOLE);
      if (hole < 0 || hole > size) hole = size;
    }
    s = CopyRange(in, out, data, hole - data, from, temp);
    pos = hole;
  }
  if (s.ok() && ftruncate(out, size) != 0) s = ErrnoStatus(errno, temp);
  close(in);
  if (close(out) != 0 && s.ok()) s = ErrnoStatus(errno, temp);
  if (s.ok() && rename(temp.c_str(), to.c_str()) != 0) s = ErrnoStatus(errno, to);
  if (!s.ok()) {
    unlink(temp.c_str());
    return s;
  }
  if (bytes != nullptr) *bytes += static_cast<uint64_t>(size);
  return Status::Ok();
}

Result<std::string> ReadFileToString(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus(errno, path);
  std::string content;
  char buf[1 << 16];
  while (true) {
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      close(fd);
      return ErrnoStatus(err, path);
    }
    if (n == 0) break;
    content.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  return content;
}

bool IsInside(const std::string& path, const std::string& root) {
  std::error_code ec;
  fs::path p = fs::canonical(path, ec);
  if (ec) return false;
  fs::path r = fs::canonical(root, ec);
  if (ec) return false;
  auto [root_end, unused] = std::mismatch(r.begin(), r.end(), p.begin(), p.end());
  return root_end == r.end();
}

Result<uint64_t> FreeBytes(const std::string& path) {
  struct statvfs st {};
  if (statvfs(path.c_str(), &st) != 0) return ErrnoStatus(errno, path);
  return static_cast<uint64_t>(st.f_bavail) * st.f_frsize;
}

std::string FormatBytes(uint64_t bytes) {
  const char* units[] = {"B", "kB", "MB", "GB", "TB", "PB"};
  double value = static_cast<double>(bytes);
  int unit = 0;
  while (value >= 1000 && unit < 5) {
    value /= 1000;
    ++unit;
  }
  if (unit == 0) return fmt::format("{} B", bytes);
  return fmt::format("{:.{}f} {}", value, value < 10 ? 1 : 0, units[unit]);
}

}  // namespace trainrun
