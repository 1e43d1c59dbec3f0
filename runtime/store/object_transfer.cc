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

uint64_t ByteBudget::Take(uint64_t bytes) {
  bytes = std::min(bytes, limit_);
  std::unique_lock lock(mu_);
  cv_.wait(lock, [&] { return taken_ + bytes <= limit_; });
  taken_ += bytes;
  return bytes;
}

void ByteBudget::Give(uint64_t bytes) {
  {
    std::lock_guard lock(mu_);
    taken_ -= bytes;
  }
  cv_.notify_all();
}

Result<std::string> ReadFileRange(int fd, uint64_t offset, uint64_t length,
                                  const std::string& path) {
  std::string data(length, '\0');
  uint64_t done = 0;
  while (done < length) {
    ssize_t n = pread(fd, data.data() + done, length - done, static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoStatus(errno, path);
    if (n == 0) return IoError(fmt::format("{}: the file shrank while being uploaded", path));
    done += static_cast<uint64_t>(n);
  }
  return data;
}

PartBody::PartBody(std::string bytes, int fd, uint64_t offset, std::string path, ByteBudget* budget,
                   uint64_t taken)
    : bytes_(std::move(bytes)),
      fd_(fd),
      offset_(offset),
      size_(bytes_.size()),
      path_(std::move(path)),
      budget_(budget),
      budget_taken_(taken) {}

PartBody::PartBody(PartBody&& other) noexcept
    : bytes_(std::move(other.bytes_)),
      taken_(other.taken_),
      fd_(other.fd_),
      offset_(other.offset_),
      size_(other.size_),
      path_(std::move(other.path_)),
      budget_(other.budget_),
      budget_taken_(other.budget_taken_) {
  other.budget_ = nullptr;
}

PartBody::~PartBody() {
  if (budget_ != nullptr) budget_->Give(budget_taken_);
}

Result<std::string> PartBody::Take(const std::string& md5) {
  if (!taken_) {
    taken_ = true;
    return std::move(bytes_);
  }
  // A retry: the first attempt's request took the buffer. Reading again costs a
  // second read of this part only, and the part must still be what was hashed.
  TR_ASSIGN_OR_RETURN(std::string again, ReadFileRange(fd_, offset_, size_, path_));
  if (Md5(again) != md5) {
    return IoError(fmt::format("{}: bytes {}-{} changed while they were being uploaded", path_,
                               offset_, offset_ + size_ - 1));
  }
  return again;
}

PartReader::PartReader(int fd, std::string path, uint64_t size, PartPlan plan, bool whole_md5,
                       ByteBudget* budget)
    : fd_(fd), path_(std::move(path)), size_(size), plan_(plan), budget_(budget) {
  if (whole_md5) whole_ = std::make_unique<Md5Stream>();
}

Result<PartBody> PartReader::Read(uint64_t index) {
  std::unique_lock lock(mu_);
  cv_.wait(lock, [&] { return turn_ == index || !failed_.ok(); });
  if (!failed_.ok()) return failed_;
  // The buffer is taken in turn, so a part that holds one never waits for a turn:
  // it waits only for requests (of this file or another) to finish and give theirs.
  const uint64_t offset = index * plan_.part_size;
  const uint64_t length = std::min(plan_.part_size, size_ - offset);
  const uint64_t taken = budget_->Take(length);
  Result<std::string> bytes = ReadFileRange(fd_, offset, length, path_);
  if (!bytes.ok()) {
    budget_->Give(taken);
    failed_ = bytes.status();
    cv_.notify_all();
    return failed_;
  }
  if (whole_) whole_->Update(*bytes);
  ++turn_;
  cv_.notify_all();
  return PartBody(std::move(bytes).value(), fd_, offset, path_, budget_, taken);
}

Result<std::string> PartReader::WholeMd5() {
  std::lock_guard lock(mu_);
  if (!failed_.ok()) return failed_;
  if (turn_ != plan_.count) {
    return InternalError(fmt::format("{}: {} of {} parts read", path_, turn_, plan_.count));
  }
  if (!whole_) return std::string();
  std::string digest = whole_->Finish();
  whole_.reset();
  return digest;
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
