#include "runtime/store/object_transfer.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <condition_variable>
#include <filesystem>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "base/fs_util.h"
#include "base/hashing.h"
#include "base/parallel_for.h"

namespace trainrun {

namespace fs = std::filesystem;

namespace {

// kUnavailable (worth another try) when the bytes received are not the object's.
Status CheckMd5(const std::string& actual, const std::string& expected, const std::string& what) {
  if (actual == expected) return Status::Ok();
  return UnavailableError(fmt::format("{}: MD5 of the received bytes is {}, the store says {}",
                                      what, HexEncode(actual), HexEncode(expected)));
}

}  // namespace

PartPlan PlanParts(uint64_t size, uint64_t min_part_size, uint64_t max_parts) {
  PartPlan plan;
  if (size == 0) return plan;
  plan.part_size = std::max<uint64_t>(min_part_size, (size + max_parts - 1) / max_parts);
  plan.count = (size + plan.part_size - 1) / plan.part_size;
  return plan;
}

Status ForEachPart(uint64_t size, const PartPlan& plan, int parallelism,
                   const std::function<Status(uint64_t, uint64_t, uint64_t)>& fn) {
  return ParallelFor(plan.count, parallelism, [&](size_t i) {
    const uint64_t offset = i * plan.part_size;
    return fn(i, offset, std::min(plan.part_size, size - offset));
  });
}

namespace {

// Hashes a file being downloaded in parts, in order, as the parts land: the MD5 is
// ready moments after the last byte instead of after a second pass over the file.
class FollowingMd5 {
 public:
  FollowingMd5(int fd, uint64_t size, uint64_t part_size, uint64_t parts)
      : fd_(fd), size_(size), part_size_(part_size), done_(parts, false) {
    thread_ = std::thread([this] { Run(); });
  }
  ~FollowingMd5() { Abort(); }

  void PartDone(uint64_t index) {
    {
      std::lock_guard lock(mu_);
      done_[index] = true;
    }
    cv_.notify_one();
  }
  void Abort() {
    {
      std::lock_guard lock(mu_);
      aborted_ = true;
    }
    cv_.notify_one();
    if (thread_.joinable()) thread_.join();
  }
  // The digest once every part is done; an error if reading failed.
  Result<std::string> Finish() {
    if (thread_.joinable()) thread_.join();
    if (!status_.ok()) return status_;
    return digest_;
  }

 private:
  void Run() {
    Md5Stream md5;
    std::vector<char> buffer(1 << 20);
    for (uint64_t part = 0; part < done_.size(); ++part) {
      {
        std::unique_lock lock(mu_);
        cv_.wait(lock, [&] { return aborted_ || done_[part]; });
        if (aborted_) return;
      }
      uint64_t begin = part * part_size_, end = std::min(size_, begin + part_size_);
      for (uint64_t at = begin; at < end;) {
        ssize_t n = pread(fd_, buffer.data(), std::min<uint64_t>(buffer.size(), end - at),
                          static_cast<off_t>(at));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
          status_ = ErrnoStatus(n < 0 ? errno : EIO, "reading back a download");
          return;
        }
        md5.Update(std::string_view(buffer.data(), static_cast<size_t>(n)));
        at += static_cast<uint64_t>(n);
      }
    }
    digest_ = md5.Finish();
  }

  int fd_;
  uint64_t size_, part_size_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<bool> done_;  // guarded by mu_
  bool aborted_ = false;    // guarded by mu_
  Status status_;
  std::string digest_;
  std::thread thread_;
};

}  // namespace

Status DownloadObject(
    const std::string& local_path, uint64_t part_size, int parallelism,
    const std::function<Result<RangeResult>(int, uint64_t, uint64_t, const std::string&)>& fetch,
    const std::function<Status(const std::string&)>& verify) {
  TR_RETURN_IF_ERROR(MakeDirs(fs::path(local_path).parent_path().string()));
  const std::string temp = TempNameFor(local_path);
  int fd = open(temp.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) return ErrnoStatus(errno, temp);
  auto run = [&]() -> Status {
    TR_ASSIGN_OR_RETURN(RangeResult first, fetch(fd, 0, part_size, ""));
    const uint64_t size = first.total_size;
    // A server that ignores ranges sends everything at once: that is whole too.
    if (first.bytes != std::min(size, part_size) && first.bytes != size) {
      return UnavailableError(fmt::format("{}: received {} bytes of the first {}", local_path,
                                          first.bytes, std::min(size, part_size)));
    }
    std::unique_ptr<FollowingMd5> md5;
    if (size > part_size && first.bytes < size) {
      // Reserve the space first: a full disk fails here, not after most of a download.
      int err = posix_fallocate(fd, 0, static_cast<off_t>(size));
      if (err != 0 && err != EOPNOTSUPP && err != EINVAL) {
        return ErrnoStatus(err, fmt::format("{} ({} needed)", local_path, FormatBytes(size)));
      }
      PartPlan rest;
      rest.part_size = part_size;
      rest.count = (size - part_size + part_size - 1) / part_size;
      if (!first.md5.empty()) {
        md5 = std::make_unique<FollowingMd5>(fd, size, part_size, rest.count + 1);
        md5->PartDone(0);
      }
      Status parts =
          ForEachPart(size - part_size, rest, parallelism,
                      [&](uint64_t index, uint64_t off, uint64_t len) -> Status {
                        const uint64_t offset = part_size + off;
                        TR_ASSIGN_OR_RETURN(RangeResult part, fetch(fd, offset, len, first.etag));
                        if (part.bytes != len) {
                          return UnavailableError(
                              fmt::format("{}: bytes {}-{}: received {}, expected {}", local_path,
                                          offset, offset + len - 1, part.bytes, len));
                        }
                        if (md5) md5->PartDone(index + 1);
                        return Status::Ok();
                      });
      if (!parts.ok()) {
        if (md5) md5->Abort();
        return parts;
      }
    }
    struct stat st {};
    if (fstat(fd, &st) != 0) return ErrnoStatus(errno, temp);
    if (static_cast<uint64_t>(st.st_size) != size) {
      return UnavailableError(
          fmt::format("{}: received {} bytes, the object has {}", local_path, st.st_size, size));
    }
    if (first.md5.empty()) return Status::Ok();
    TR_ASSIGN_OR_RETURN(std::string actual, md5 ? md5->Finish() : Md5OfFile(temp));
    return CheckMd5(actual, first.md5, local_path);
  };
  Status s = run();
  if (close(fd) != 0 && s.ok()) s = ErrnoStatus(errno, temp);
  if (s.ok() && verify) s = verify(temp);
  if (s.ok() && rename(temp.c_str(), local_path.c_str()) != 0) s = ErrnoStatus(errno, local_path);
  if (!s.ok()) unlink(temp.c_str());
  return s;
}

Status VerifyFileMd5(const std::string& path, const std::string& expected_md5,
                     const std::string& what) {
  TR_ASSIGN_OR_RETURN(std::string actual, Md5OfFile(path));
  return CheckMd5(actual, expected_md5, what);
}

}  // namespace trainrun
