// The parallel, streamed part of object-store transfers, shared by the Azure Blob
// and S3 stores: cutting a file into parts, running the parts on a few threads, and
// writing a download into a temporary file that is renamed only once it is whole and
// verified.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "base/status.h"

namespace trainrun {

// Files above this are uploaded in parts (blocks, multipart) and downloaded in
// ranges; below it in one request.
constexpr uint64_t kDefaultPartSize = 8 << 20;
// Parts of one file in flight at once. With the files' own parallelism in
// UploadItems this bounds the requests in flight.
constexpr int kDefaultPartParallelism = 8;

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
