#include "runtime/store/object_store_base.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <random>
#include <thread>

#include <fmt/format.h>

#include "base/fs_util.h"
#include "base/hashing.h"
#include "runtime/store/xml.h"

namespace trainrun {
namespace {

// "bytes 0-99/1234" -> 1234.
bool TotalFromContentRange(const std::string& value, uint64_t* total) {
  size_t slash = value.rfind('/');
  if (slash == std::string::npos || value.substr(slash + 1) == "*") return false;
  *total = std::stoull(value.substr(slash + 1));
  return true;
}

}  // namespace

ObjectStoreBase::ObjectStoreBase(ObjectStoreOptions options)
    : options_(options), http_(options.http), upload_buffers_(options.upload_buffer_bytes) {}

std::function<void(uint64_t)> ObjectStoreBase::ByteCounter() {
  std::atomic<uint64_t>* counter = byte_counter_;
  if (counter == nullptr) return {};
  return [counter](uint64_t n) { counter->fetch_add(n); };
}

void ObjectStoreBase::SetRetryDeadline(std::optional<TimePoint> deadline) {
  deadline_ns_ = deadline ? std::max<int64_t>(1, deadline->time_since_epoch().count()) : 0;
}

Result<HttpResponse> ObjectStoreBase::Send(const std::function<Result<HttpRequest>()>& build) {
  int64_t ns = deadline_ns_.load();
  if (ns == 0) return http_.SendWithRetry(build, options_.retry);
  RetryOptions retry = options_.retry;
  TimePoint deadline{Duration(ns)};
  retry.deadline = retry.deadline ? std::min(*retry.deadline, deadline) : deadline;
  return http_.SendWithRetry(build, retry);
}

std::string RangeHeader(uint64_t offset, std::optional<uint64_t> length) {
  if (length) return fmt::format("bytes={}-{}", offset, offset + *length - 1);
  return fmt::format("bytes={}-", offset);
}

std::string DecodeMd5(const std::string& base64) {
  std::string raw;
  if (base64.empty() || !Base64Decode(base64, &raw) || raw.size() != 16) return "";
  return raw;
}

std::string ContentMd5(const HttpResponse& response, bool whole) {
  std::string md5 = DecodeMd5(response.Header("x-ms-blob-content-md5"));
  if (md5.empty() && whole) md5 = DecodeMd5(response.Header("content-md5"));
  return md5;
}

Result<std::optional<RangeResult>> ObjectStoreBase::RangeAtEndOrChanged(
    const HttpResponse& r, const std::string& what,
    const std::function<Result<ObjectInfo>()>& head) {
  if (r.status == 412) {
    return UnavailableError(fmt::format("{}: changed while it was being read", what));
  }
  if (r.status != 416) return std::optional<RangeResult>();
  TR_ASSIGN_OR_RETURN(ObjectInfo info, head());
  RangeResult result;
  result.total_size = info.size;
  result.etag = info.etag;
  result.md5 = info.md5;
  return std::optional<RangeResult>(result);
}

Result<RangeResult> ObjectStoreBase::RangeFromResponse(HttpResponse* r, int fd, std::string* text,
                                                       uint64_t offset, const std::string& what) {
  RangeResult result;
  if (text != nullptr) *text = std::move(r->body);
  result.bytes = fd >= 0 ? r->sunk_bytes : (text != nullptr ? text->size() : 0);
  result.etag = r->Header("etag");
  if (r->status == 206) {
    if (!TotalFromContentRange(r->Header("content-range"), &result.total_size)) {
      return IoError(fmt::format("{}: the service gave no Content-Range", what));
    }
  } else {
    result.total_size = offset + result.bytes;
  }
  return result;
}

ObjectInfo ObjectStoreBase::InfoFromHeaders(const HttpResponse& r, const std::string& key) {
  ObjectInfo info;
  info.key = key;
  if (r.status != 206 || !TotalFromContentRange(r.Header("content-range"), &info.size)) {
    info.size = std::stoull("0" + r.Header("content-length"));
  }
  info.etag = r.Header("etag");
  ParseHttpDate(r.Header("last-modified"), &info.modified);
  return info;
}

std::string ObjectStoreBase::ServiceErrorCode(const HttpResponse& response) {
  std::string code = response.Header("x-ms-error-code");
  if (!code.empty()) return code;
  if (response.body.find("<Code>") != std::string::npos) {
    Result<XmlElement> xml = ParseXml(response.body, "error");
    if (xml.ok()) return xml->ChildText("Code");
  }
  return "";
}

Status ObjectStoreBase::ErrorFor(const HttpResponse& response, const std::string& what,
                                 const std::string& credentials_hint) {
  std::string code = ServiceErrorCode(response);
  std::string answer = code.empty() ? fmt::format("HTTP {}", response.status)
                                    : fmt::format("HTTP {} {}", response.status, code);
  if (response.status == 404) return NotFoundError(fmt::format("{}: not found ({})", what, answer));
  if (response.status == 401 || response.status == 403) {
    return Status(StatusCode::kPermissionDenied,
                  fmt::format("{}: access denied ({}); {}", what, answer, credentials_hint));
  }
  if (IsRetryableStatus(response.status)) {
    return UnavailableError(
        fmt::format("{}: the service is unavailable ({}), even after retries", what, answer));
  }
  return IoError(fmt::format("{}: the service refused ({})", what, answer));
}

Status ObjectStoreBase::PutBytes(const std::string& key, std::string_view data) {
  TR_RETURN_IF_ERROR(ValidateKey(key));
  return PutObject(NameOf(key), data, Md5(data));
}

namespace {

// A name no other caller will pick: host, process, and 64 random bits.
std::string Nonce() {
  static thread_local std::mt19937_64 rng(std::random_device{}());
  char host[256] = {};
  gethostname(host, sizeof(host) - 1);
  std::string name = fmt::format("{}-{}-{:016x}", host, getpid(), rng());
  for (char& c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '.') c = '_';
  }
  return name;
}

}  // namespace

Status ObjectStoreBase::CreateBytes(const std::string& key, std::string_view data) {
  TR_RETURN_IF_ERROR(ValidateKey(key));
  if (data.size() > options_.part_size) {
    return InvalidArgumentError(fmt::format("{}/{}: {} is too large to create in one request",
                                            Uri(), key, FormatBytes(data.size())));
  }
  TR_ASSIGN_OR_RETURN(bool honoured, HonoursConditionalWrites(key));
  if (!honoured) return CreateByClaim(key, data);
  Status s = PutObjectIfAbsent(NameOf(key), data, Md5(data));
  if (s.code() == StatusCode::kAlreadyExists) {
    return AlreadyExistsError(fmt::format("{}/{}: exists", Uri(), key));
  }
  return s;
}

Result<bool> ObjectStoreBase::HonoursConditionalWrites(const std::string& key) {
  int known = conditional_writes_.load();
  if (known != 0) return known > 0;
  const std::string probe = key + ".probe-" + Nonce();
  Status first = PutObjectIfAbsent(NameOf(probe), "", Md5(""));
  if (!first.ok()) return first;
  Status second = PutObjectIfAbsent(NameOf(probe), "", Md5(""));
  Delete(probe).IgnoreError();
  if (!second.ok() && second.code() != StatusCode::kAlreadyExists) return second;
  const bool honoured = second.code() == StatusCode::kAlreadyExists;
  conditional_writes_ = honoured ? 1 : -1;
  return honoured;
}

Status ObjectStoreBase::CreateByClaim(const std::string& key, std::string_view data) {
  const std::string claims = key + ".claim-";
  const std::string mine = claims + Nonce();
  const TimePoint deadline = SystemClock()->Now() + options_.claim_timeout;
  std::mt19937_64 rng(std::random_device{}());
  auto exists = [&]() -> Result<bool> {
    Result<ObjectInfo> info = Stat(key);
    if (info.ok()) return true;
    if (info.status().code() == StatusCode::kNotFound) return false;
    return info.status();
  };
  auto taken = [&] { return AlreadyExistsError(fmt::format("{}/{}: exists", Uri(), key)); };
  for (int attempt = 0;; ++attempt) {
    TR_ASSIGN_OR_RETURN(bool there, exists());
    if (there) return taken();
    TR_RETURN_IF_ERROR(PutBytes(mine, ""));
    Result<std::vector<ObjectInfo>> found = List(claims);
    if (!found.ok()) {
      Delete(mine).IgnoreError();
      return found.status();
    }
    if (found->size() == 1 && (*found)[0].key == mine) {
      // Alone. A winner before us deleted its claim only after writing `key`, so
      // look once more before writing it.
      Result<bool> now = exists();
      Status s = !now.ok() ? now.status() : *now ? taken() : PutBytes(key, data);
      Delete(mine).IgnoreError();
      return s;
    }
    Delete(mine).IgnoreError();
    if (SystemClock()->Now() > deadline) {
      std::string others;
      for (const ObjectInfo& o : *found) {
        if (o.key != mine) others += (others.empty() ? "" : ", ") + o.key;
      }
      return UnavailableError(fmt::format(
          "{}/{}: could not claim it for {:.0f} s: other writers hold claims ({}); delete "
          "them if no other writer is running",
          Uri(), key, ToSeconds(options_.claim_timeout), others));
    }
    // A random pause, longer as the contest goes on, so one caller ends up alone.
    const int64_t most_ms = 20 << std::min(attempt, 5);
    std::this_thread::sleep_for(std::chrono::milliseconds(
        5 + static_cast<int64_t>(rng() % static_cast<uint64_t>(most_ms))));
  }
}

Status ObjectStoreBase::PutFile(const std::string& key, const std::string& local_path) {
  TR_RETURN_IF_ERROR(ValidateKey(key));
  int fd = open(local_path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus(errno, local_path);
  struct stat st {};
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    return IoError(fmt::format("{}: not a regular file", local_path));
  }
  // A file that grows while it is uploaded (a log) goes up as it was at the start.
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  const std::string name = NameOf(key);
  Status result;
  if (size <= options_.part_size) {
    const uint64_t taken = upload_buffers_.Take(size);
    Result<std::string> data = ReadFileRange(fd, 0, size, local_path);
    result = data.ok() ? PutObject(name, *data, Md5(*data)) : data.status();
    data = std::string();
    upload_buffers_.Give(taken);
    close(fd);
    return result;
  }
  const PartPlan plan = PlanParts(size, options_.part_size, kMaxParts);
  Result<std::string> upload = StartParts(name, plan.part_size);
  if (!upload.ok()) {
    close(fd);
    return upload.status();
  }
  std::vector<std::string> tokens(plan.count), md5s(plan.count);
  PartReader reader(fd, local_path, size, plan, WantsWholeMd5(), &upload_buffers_);
  result = ForEachPart(
      size, plan, options_.part_parallelism, [&](uint64_t index, uint64_t, uint64_t) -> Status {
        TR_ASSIGN_OR_RETURN(PartBody body, reader.Read(index));
        md5s[index] = Md5(body.bytes());
        TR_ASSIGN_OR_RETURN(tokens[index], PutPart(name, *upload, index, &body, md5s[index]));
        return Status::Ok();
      });
  Result<std::string> whole = result.ok() ? reader.WholeMd5() : Result<std::string>(result);
  if (result.ok() && !whole.ok()) result = whole.status();
  if (result.ok()) result = CompleteParts(name, *upload, tokens, md5s, *whole);
  if (!result.ok()) AbortParts(name, *upload);
  close(fd);
  return result;
}

Status ObjectStoreBase::GetFile(const std::string& key, const std::string& local_path) {
  TR_RETURN_IF_ERROR(ValidateKey(key));
  std::optional<ObjectInfo> known;
  if (StatBeforeGet()) {
    TR_ASSIGN_OR_RETURN(known, Stat(key));
  }
  return Download(key, known, local_path);
}

Status ObjectStoreBase::GetListedFile(const ObjectInfo& object, const std::string& local_path) {
  TR_RETURN_IF_ERROR(ValidateKey(object.key));
  return Download(object.key, object, local_path);
}

Status ObjectStoreBase::Download(const std::string& key, const std::optional<ObjectInfo>& known,
                                 const std::string& local_path) {
  const std::string name = NameOf(key);
  return DownloadObject(
      local_path, options_.part_size, options_.part_parallelism,
      [&](int fd, uint64_t offset, uint64_t length, const std::string& if_match) {
        if (known && offset == 0 && known->size <= length) {
          // Small: the whole object in one answer, no range and no
          // condition; it must still be the object that was listed.
          Result<RangeResult> whole = GetRange(name, fd, nullptr, 0, std::nullopt, "");
          if (whole.ok() && !known->etag.empty() && !whole->etag.empty() &&
              whole->etag != known->etag) {
            return Result<RangeResult>(
                UnavailableError(fmt::format("{}: changed since it was listed (ETag {} is now {})",
                                             name, known->etag, whole->etag)));
          }
          return whole;
        }
        return GetRange(name, fd, nullptr, offset, length, if_match);
      });
}

Result<std::string> ObjectStoreBase::GetBytes(const std::string& key, uint64_t offset,
                                              std::optional<uint64_t> length) {
  TR_RETURN_IF_ERROR(ValidateKey(key));
  std::string text;
  if (length && *length == 0) return text;
  TR_RETURN_IF_ERROR(GetRange(NameOf(key), -1, &text, offset, length, "").status());
  return text;
}

}  // namespace trainrun
