// The parallel, streamed part of object-store transfers, shared by the Azure Blob
// and S3 stores: cutting a file into parts, running the parts on a few threads, and
// writing a download into a temporary file that is renamed only once it is whole and
// verified.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include "base/hashing.h"
#include "base/status.h"

namespace trainrun {

// Files above this are uploaded in parts (blocks, multipart) and downloaded in
// ranges; below it in one request.
constexpr uint64_t kDefaultPartSize = 8 << 20;
// Parts of one file in flight at once. With the files' own parallelism in
// UploadItems this bounds the requests in flight.
constexpr int kDefaultPartParallelism = 8;
// What a store's uploads may hold in memory at once: every byte uploaded is read
// from disk once into a buffer, hashed and sent from there (PartReader), and all
// those buffers together stay under this (32 default parts).
constexpr uint64_t kDefaultUploadBufferBytes = 256 << 20;

struct PartPlan {
  uint64_t part_size = 0;
  uint64_t count = 0;  // 0 for an empty file
};

// Parts of at least `min_part_size`, grown so there are at most `max_parts`.
PartPlan PlanParts(uint64_t size, uint64_t min_part_size, uint64_t max_parts);

// Runs `fn(index, offset, length)` for every part of a `size`-byte object, on up to
// `parallelism` threads (the caller's included). The first error stops new parts
// from starting and is returned.
Status ForEachPart(
    uint64_t size, const PartPlan& plan, int parallelism,
    const std::function<Status(uint64_t index, uint64_t offset, uint64_t length)>& fn);

// A count of bytes that threads take and give back, never more than `limit` out at
// once; a request above `limit` takes all of it. Safe from any thread.
class ByteBudget {
 public:
  explicit ByteBudget(uint64_t limit) : limit_(limit > 0 ? limit : 1) {}
  // Waits until `bytes` (at most the limit) are free, takes them, returns how many.
  uint64_t Take(uint64_t bytes);
  void Give(uint64_t bytes);

 private:
  const uint64_t limit_;
  std::mutex mu_;
  std::condition_variable cv_;
  uint64_t taken_ = 0;  // guarded by mu_
};

// The bytes of one part of a file being uploaded, in memory: read once, hashed and
// sent from this buffer. Holds its share of the store's ByteBudget until destroyed.
// Not thread-safe; one request uses it at a time.
class PartBody {
 public:
  PartBody() = default;
  PartBody(std::string bytes, int fd, uint64_t offset, std::string path, ByteBudget* budget,
           uint64_t taken);
  PartBody(PartBody&& other) noexcept;
  PartBody& operator=(PartBody&&) = delete;
  PartBody(const PartBody&) = delete;
  ~PartBody();

  uint64_t size() const { return size_; }
  // The part's bytes until Take() has been called.
  std::string_view bytes() const { return bytes_; }
  // The bytes for one attempt to send the part: the first call moves the buffer out
  // (no copy); a later one (a retried request) reads the part from the file again and
  // fails, kIoError naming the file, unless it still has the MD5 `md5` (raw).
  Result<std::string> Take(const std::string& md5);

 private:
  std::string bytes_;
  bool taken_ = false;
  int fd_ = -1;
  uint64_t offset_ = 0;
  uint64_t size_ = 0;
  std::string path_;
  ByteBudget* budget_ = nullptr;
  uint64_t budget_taken_ = 0;
};

// Reads `length` bytes of `fd` from `offset` into a string; a short file is an
// error naming `path` (it shrank while it was uploaded).
Result<std::string> ReadFileRange(int fd, uint64_t offset, uint64_t length,
                                  const std::string& path);

// Reads the parts of a file uploaded in parts so that each byte leaves the disk
// once: Read(index) reads part `index` into a PartBody and, when the whole file's
// MD5 is wanted, feeds it to that MD5 in file order. Reads of one file happen one
// part at a time, in index order (a part's turn comes once the parts before it are
// read: ForEachPart hands indices out in order, so a part waits for local reads,
// never for a request); what is done with each buffer then runs in parallel. The
// buffers come out of `budget`, taken in turn, so memory stays bounded and no part
// holding a buffer ever waits for another's turn. After a read fails, every later
// Read fails too. Safe from several threads; every index in [0, plan.count) taken
// by ForEachPart must be read.
class PartReader {
 public:
  PartReader(int fd, std::string path, uint64_t size, PartPlan plan, bool whole_md5,
             ByteBudget* budget);
  Result<PartBody> Read(uint64_t index);
  // The whole file's MD5 (raw) once every part has been read; "" when not wanted.
  Result<std::string> WholeMd5();

 private:
  const int fd_;
  const std::string path_;
  const uint64_t size_;
  const PartPlan plan_;
  ByteBudget* budget_;
  std::mutex mu_;
  std::condition_variable cv_;
  uint64_t turn_ = 0;  // the next part to read; guarded by mu_
  Status failed_;      // guarded by mu_
  std::unique_ptr<Md5Stream> whole_;
};

// What one ranged read of an object told: the bytes written, and the object's
// identity as the response gave it.
struct RangeResult {
  uint64_t bytes = 0;       // written at the requested offset
  uint64_t total_size = 0;  // of the whole object
  std::string etag;
  std::string md5;  // raw, of the whole object; "" when the service has none
};

// Downloads an object to `local_path` with ranged reads:
// `fetch(fd, offset, length, if_match)` writes [offset, offset + length) (or less,
// at the end) of the object into `fd` at the same offsets. The first read (the first
// part) tells the size and identity; the rest run in parallel, each required to match
// the first's ETag so a download never mixes two versions. Then the length is
// checked, then the MD5 when the service gave one, then `verify(temp_path)` (may be
// empty), and the file is renamed into place. It lives in a temporary file beside
// `local_path` until then; on any error that file is removed and `local_path` is
// untouched. Bytes received go to `on_bytes` (may be empty) as they arrive.
Status DownloadObject(
    const std::string& local_path, uint64_t part_size, int parallelism,
    const std::function<Result<RangeResult>(int fd, uint64_t offset, uint64_t length,
                                            const std::string& if_match)>& fetch,
    const std::function<Status(const std::string& temp_path)>& verify = {});

// Compares the MD5 of a file with `expected_md5` (raw bytes). kUnavailable (so it
// is retried) naming `what` when they differ.
Status VerifyFileMd5(const std::string& path, const std::string& expected_md5,
                     const std::string& what);

}  // namespace trainrun
