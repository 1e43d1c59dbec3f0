#include "runtime/store/file_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <filesystem>

#include <fmt/format.h>

#include "base/fs_util.h"

namespace trainrun {
namespace {

namespace fs = std::filesystem;

// Files that are being written: ".name.tmp-xxxxxxxx" (see fs_util.cc).
bool IsTempName(const std::string& name) {
  return !name.empty() && name[0] == '.' && name.find(".tmp-") != std::string::npos;
}

ObjectInfo InfoFromStat(const std::string& key, const struct stat& st) {
  ObjectInfo info;
  info.key = key;
  info.size = static_cast<uint64_t>(st.st_size);
  info.modified =
      WallTime(std::chrono::seconds(st.st_mtim.tv_sec)) +
      std::chrono::duration_cast<WallTime::duration>(std::chrono::nanoseconds(st.st_mtim.tv_nsec));
  info.etag = fmt::format("{:x}-{:x}-{:x}-{:x}", st.st_ino, st.st_size, st.st_mtim.tv_sec,
                          st.st_mtim.tv_nsec);
  return info;
}

}  // namespace

FileStore::FileStore(std::string root) : root_(std::move(root)) {
  while (root_.size() > 1 && root_.back() == '/') root_.pop_back();
}

std::string FileStore::Uri() const { return "file://" + root_; }

std::string FileStore::PathOf(const std::string& key) const { return root_ + "/" + key; }

Status FileStore::PutFile(const std::string& key, const std::string& local_path) {
  TR_RETURN_IF_ERROR(ValidateKey(key));
  return CopyFileAtomic(local_path, PathOf(key));
}

Status FileStore::PutBytes(const std::string& key, std::string_view data) {
  TR_RETURN_IF_ERROR(ValidateKey(key));
  return WriteFileAtomic(PathOf(key), data);
}

Status FileStore::CreateBytes(const std::string& key, std::string_view data) {
  TR_RETURN_IF_ERROR(ValidateKey(key));
  const std::string path = PathOf(key);
  TR_RETURN_IF_ERROR(MakeDirs(std::filesystem::path(path).parent_path().string()));
  const std::string temp = TempNameFor(path);
  int fd = open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) return ErrnoStatus(errno, temp);
  Status s = WriteAll(fd, data.data(), data.size(), temp);
  if (close(fd) != 0 && s.ok()) s = ErrnoStatus(errno, temp);
  if (s.ok() && link(temp.c_str(), path.c_str()) != 0) {
    s = errno == EEXIST ? AlreadyExistsError(fmt::format("{}/{}: exists", Uri(), key))
                        : ErrnoStatus(errno, path);
  }
  unlink(temp.c_str());
  return s;
}

Status FileStore::GetFile(const std::string& key, const std::string& local_path) {
  TR_RETURN_IF_ERROR(ValidateKey(key));
  struct stat st {};
  if (stat(PathOf(key).c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
    return NotFoundError(fmt::format("{}/{}: no such object", Uri(), key));
  }
  return CopyFileAtomic(PathOf(key), local_path);
}

Result<std::string> FileStore::GetBytes(const std::string& key, uint64_t offset,
                                        std::optional<uint64_t> length) {
  TR_RETURN_IF_ERROR(ValidateKey(key));
  const std::string path = PathOf(key);
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return NotFoundError(fmt::format("{}/{}: no such object", Uri(), key));
    return ErrnoStatus(errno, path);
  }
  struct stat st {};
  fstat(fd, &st);
  if (!S_ISREG(st.st_mode)) {
    close(fd);
    return NotFoundError(fmt::format("{}/{}: no such object", Uri(), key));
  }
  uint64_t size = static_cast<uint64_t>(st.st_size);
  uint64_t end = length ? std::min(size, offset + *length) : size;
  std::string out;
  if (offset < end) {
    out.resize(end - offset);
    size_t done = 0;
    while (done < out.size()) {
      ssize_t n =
          pread(fd, out.data() + done, out.size() - done, static_cast<off_t>(offset + done));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      done += static_cast<size_t>(n);
    }
    out.resize(done);
  }
  close(fd);
  return out;
}

Result<ObjectInfo> FileStore::Stat(const std::string& key) {
  TR_RETURN_IF_ERROR(ValidateKey(key));
  struct stat st {};
  if (stat(PathOf(key).c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
    return NotFoundError(fmt::format("{}/{}: no such object", Uri(), key));
  }
  return InfoFromStat(key, st);
}

Result<std::vector<ObjectInfo>> FileStore::List(const std::string& prefix) {
  std::vector<ObjectInfo> out;
  // Walk the deepest folder the prefix names, then filter by the rest.
  std::string dir_part =
      prefix.substr(0, prefix.rfind('/') == std::string::npos ? 0 : prefix.rfind('/') + 1);
  fs::path start = dir_part.empty() ? fs::path(root_) : fs::path(PathOf(dir_part));
  std::error_code ec;
  if (!fs::is_directory(start, ec)) return out;
  fs::recursive_directory_iterator it(start, fs::directory_options::skip_permission_denied, ec);
  if (ec) return ErrnoStatus(ec.value(), start.string());
  for (; it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (ec) return ErrnoStatus(ec.value(), start.string());
    const std::string name = it->path().filename().string();
    if (IsTempName(name)) continue;
    struct stat st {};
    if (lstat(it->path().c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
    std::string key = fs::relative(it->path(), root_, ec).generic_string();
    if (ec) return ErrnoStatus(ec.value(), it->path().string());
    if (key.compare(0, prefix.size(), prefix) != 0) continue;
    out.push_back(InfoFromStat(key, st));
  }
  std::sort(out.begin(), out.end(),
            [](const ObjectInfo& a, const ObjectInfo& b) { return a.key < b.key; });
  return out;
}

Result<std::vector<std::string>> FileStore::ListChildren(const std::string& prefix) {
  std::vector<std::string> out;
  fs::path dir = prefix.empty() ? fs::path(root_) : fs::path(PathOf(prefix));
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return out;
  TR_ASSIGN_OR_RETURN(std::vector<fs::directory_entry> entries, ListDirectory(dir));
  for (const fs::directory_entry& entry : entries) {
    const std::string name = entry.path().filename().string();
    if (IsTempName(name)) continue;
    out.push_back(entry.is_directory(ec) ? name + "/" : name);
  }
  std::sort(out.begin(), out.end());
  return out;
}

Status FileStore::Delete(const std::string& key) {
  TR_RETURN_IF_ERROR(ValidateKey(key));
  if (unlink(PathOf(key).c_str()) != 0 && errno != ENOENT) return ErrnoStatus(errno, PathOf(key));
  return Status::Ok();
}

}  // namespace trainrun
