// ObjectStoreBase: what the Azure Blob and S3 stores share. It turns the Store
// calls that move bytes (PutFile, PutBytes, GetFile, GetBytes) into the backend's
// primitives: one request for small objects; parts (blocks, multipart) uploaded in
// parallel and ranged reads downloaded in parallel for large ones; every request
// signed afresh and retried with backoff; every transfer verified by length and MD5
// (Content-MD5 on every request that carries data, the object's MD5 on the way back
// when the service keeps one).
//
// An upload reads each byte of the file once (PartReader): a part is read into a
// buffer, the whole file's MD5 is fed from that buffer in file order (MD5 cannot be
// combined from the parts' digests, so the parts are read in order, one at a time per
// file), then the part's own MD5 is taken and the request sent from the same buffer,
// in parallel with the other parts. Only a retried request reads its part again. The
// buffers of all uploads together stay under ObjectStoreOptions::upload_buffer_bytes.
//
// CreateBytes (an exclusive create, which claims a run id) is a conditional write,
// If-None-Match: *, when the server honours it. Whether it does is probed once per
// store: a probe object "<key>.probe-<nonce>" is created with the condition, then
// written again with it, which must be refused; then it is deleted. Where the
// second write is accepted (s3rver, older S3-compatible servers ignore the
// condition) CreateBytes claims the key instead: it writes a claim object
// "<key>.claim-<nonce>", lists "<key>.claim-", and writes `key` only when its claim
// is the only one and `key` still does not exist, deleting its claim after; a
// caller that finds others deletes its claim and tries again after a random pause,
// for up to claim_timeout. With read-after-write and list-after-write consistency
// (S3 since 2020, every single-server store) two callers can never both be alone,
// and a caller that comes after a winner finds its claim or `key`: at most one
// succeeds. A caller that dies between claiming and deleting its claim blocks the
// key for the others (each waits claim_timeout and fails, kUnavailable, naming it).
#pragma once

#include <atomic>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/store/http_client.h"
#include "runtime/store/object_transfer.h"
#include "runtime/store/store.h"

namespace trainrun {

// How long CreateBytes keeps trying to be the only claimant where the server ignores
// conditional writes.
constexpr auto kDefaultClaimTimeout = std::chrono::seconds(30);

struct ObjectStoreOptions {
  uint64_t part_size = kDefaultPartSize;  // also the largest single-request object
  int part_parallelism = kDefaultPartParallelism;
  uint64_t upload_buffer_bytes = kDefaultUploadBufferBytes;  // all uploads' buffers together
  Duration claim_timeout = kDefaultClaimTimeout;             // CreateBytes by claim objects
  RetryOptions retry;                                        // for each request
  HttpClientOptions http;
};

class ObjectStoreBase : public Store {
 public:
  Status PutFile(const std::string& key, const std::string& local_path) override;
  Status PutBytes(const std::string& key, std::string_view data) override;
  Status CreateBytes(const std::string& key, std::string_view data) override;
  Status GetFile(const std::string& key, const std::string& local_path) override;
  Status GetListedFile(const ObjectInfo& object, const std::string& local_path) override;
  Result<std::string> GetBytes(const std::string& key, uint64_t offset,
                               std::optional<uint64_t> length) override;
  void SetByteCounter(std::atomic<uint64_t>* counter) override { byte_counter_ = counter; }
  void SetRetryDeadline(std::optional<TimePoint> deadline) override;
  void SetCancel(const CancelToken* cancel) override { http_.SetCancel(cancel); }

 protected:
  explicit ObjectStoreBase(ObjectStoreOptions options);

  // The backend's primitives. `name` is the object's full name in the container or
  // bucket (the store's prefix included); `md5` is raw bytes. Each sends through
  // Send() so it is retried, and names the object (never a credential) in errors.
  virtual std::string NameOf(const std::string& key) const = 0;
  virtual Status PutObject(const std::string& name, std::string_view data,
                           const std::string& md5) = 0;
  // PutObject with If-None-Match: *: kAlreadyExists when the service refuses because
  // `name` exists (412, or Azure's 409 BlobAlreadyExists). A service that ignores the
  // condition overwrites; CreateBytes finds out by probing.
  virtual Status PutObjectIfAbsent(const std::string& name, std::string_view data,
                                   const std::string& md5) = 0;
  // Starts a multi-part upload; returns its id ("" when the service needs none).
  virtual Result<std::string> StartParts(const std::string& name, uint64_t part_size) = 0;
  // Uploads part `index` (0-based), whose bytes are `body` and MD5 `md5`; each
  // attempt sends body->Take(md5). Returns what CompleteParts needs to name it.
  virtual Result<std::string> PutPart(const std::string& name, const std::string& upload_id,
                                      uint64_t index, PartBody* body, const std::string& md5) = 0;
  virtual Status CompleteParts(const std::string& name, const std::string& upload_id,
                               const std::vector<std::string>& parts,
                               const std::vector<std::string>& part_md5s,
                               const std::string& whole_md5) = 0;
  virtual void AbortParts(const std::string& name, const std::string& upload_id) = 0;
  // Whether CompleteParts wants the MD5 of the whole file (computed from the parts'
  // buffers as they are read, in order; no extra read).
  virtual bool WantsWholeMd5() const = 0;
  // Whether GetFile asks for the size first and reads small objects without a
  // range (for services that answer a range on an empty object badly).
  virtual bool StatBeforeGet() const { return false; }
  // Reads [offset, offset + length) (to the end without a length) into `fd` at
  // `offset` when fd >= 0, else into *text. An offset at or past the end reads
  // nothing. `if_match`: fail unless the object still has this ETag.
  virtual Result<RangeResult> GetRange(const std::string& name, int fd, std::string* text,
                                       uint64_t offset, std::optional<uint64_t> length,
                                       const std::string& if_match) = 0;

  // Sends with the store's retry options; counts bytes for SetByteCounter.
  Result<HttpResponse> Send(const std::function<Result<HttpRequest>()>& build);
  std::function<void(uint64_t)> ByteCounter();

  // The GetRange answers that carry no bytes: 416 (a range at or past the end, or
  // any range of an empty object) gives what `head` says of the object, nothing
  // read; 412 (If-Match failed) is kUnavailable, the object changed while it was
  // read. Anything else: none, for the caller to handle.
  static Result<std::optional<RangeResult>> RangeAtEndOrChanged(
      const HttpResponse& response, const std::string& what,
      const std::function<Result<ObjectInfo>()>& head);

  // What a successful GetRange answer (200 or 206) says, whatever the service: the
  // body (into *text unless it went to `fd`), the bytes read, the ETag, and the
  // object's total size (from Content-Range for a 206). `what` names the object in
  // errors. The MD5 is left to the caller: every service keeps it differently.
  static Result<RangeResult> RangeFromResponse(HttpResponse* response, int fd, std::string* text,
                                               uint64_t offset, const std::string& what);

  // What a HEAD (or a one-byte GET) answer says of the object `key`: its size (the
  // total in Content-Range for a 206, else Content-Length), ETag and modification
  // time. The MD5 is left to the caller.
  static ObjectInfo InfoFromHeaders(const HttpResponse& response, const std::string& key);

  // The first service error code (x-ms-error-code, or <Code> in an XML body).
  static std::string ServiceErrorCode(const HttpResponse& response);
  // A Status for a failed response: 404 kNotFound, 401/403 kPermissionDenied (with
  // `credentials_hint`), 5xx/429/408 kUnavailable, others kIoError. Only the code and
  // the status go into the message, never the service's text (it can quote a
  // signature).
  static Status ErrorFor(const HttpResponse& response, const std::string& what,
                         const std::string& credentials_hint);

  ObjectStoreOptions options_;
  HttpClient http_;

 private:
  Status Download(const std::string& key, const std::optional<ObjectInfo>& known,
                  const std::string& local_path);
  // Whether the service refuses a conditional write to an existing object (probed
  // once, next to `key`, then remembered).
  Result<bool> HonoursConditionalWrites(const std::string& key);
  // CreateBytes for a service that does not: by claim objects (above).
  Status CreateByClaim(const std::string& key, std::string_view data);

  std::atomic<int> conditional_writes_{0};  // 0 not probed, 1 honoured, -1 ignored

  ByteBudget upload_buffers_;  // options_.upload_buffer_bytes
  std::atomic<uint64_t>* byte_counter_ = nullptr;
  std::atomic<int64_t> deadline_ns_{0};  // steady clock; 0: none
};

// The HTTP Range header for [offset, offset + length), or from offset to the end.
std::string RangeHeader(uint64_t offset, std::optional<uint64_t> length);

// The raw 16 bytes of a base64 MD5 header value, or "" when it is not one.
std::string DecodeMd5(const std::string& base64);

// The object's MD5 as an answer states it: Azure's x-ms-blob-content-md5 (always the
// whole blob's), else Content-MD5 when the answer carries the whole object (`whole`).
std::string ContentMd5(const HttpResponse& response, bool whole);

// The largest number of parts any backend accepts (S3: 10,000).
constexpr uint64_t kMaxParts = 10000;

}  // namespace trainrun
