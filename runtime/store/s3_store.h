// The s3:// store: Amazon S3 and S3-compatible servers (MinIO, Ceph, R2, s3rver).
//
//   s3://BUCKET[/prefix]
//
// Small objects go up with one PutObject, larger ones as a multipart upload (parts
// in parallel, CompleteMultipartUpload makes the object appear whole at once; an
// upload that fails is aborted). Every request carrying data has a Content-MD5, and
// the ETag the service answers with is compared with the MD5 we sent (per part, and
// for the whole object when the service reports a plain MD5). CreateBytes sends
// If-None-Match: * (AWS S3 honours it since 2024; s3rver ignores it, and then the
// claim objects of object_store_base.h decide). Requests are signed
// with SigV4 (s3_signer.h says where credentials, region and endpoint come from).
// The bucket must exist.
#pragma once

#include <memory>
#include <string>

#include "runtime/store/object_store_base.h"
#include "runtime/store/s3_signer.h"

namespace trainrun {

struct S3Location {
  std::string bucket;
  std::string prefix;  // "" or "a/b"
};

// Parses s3://BUCKET[/prefix]; errors name the URI.
Result<S3Location> ParseS3Uri(const std::string& uri);

class S3Store : public ObjectStoreBase {
 public:
  static Result<std::unique_ptr<S3Store>> Open(const std::string& uri, const EnvLookup& env,
                                               ObjectStoreOptions options = {});

  std::string Uri() const override;
  Result<ObjectInfo> Stat(const std::string& key) override;
  Result<std::vector<ObjectInfo>> List(const std::string& prefix) override;
  Result<std::vector<std::string>> ListChildren(const std::string& prefix) override;
  Status Delete(const std::string& key) override;

  // Creates the bucket (for tests and benchmarks); one that exists is fine.
  Status CreateBucket();

  const S3Location& location() const { return location_; }
  const S3Config& config() const { return config_; }

 protected:
  std::string NameOf(const std::string& key) const override;
  Status PutObject(const std::string& name, std::string_view data, const std::string& md5) override;
  Status PutObjectIfAbsent(const std::string& name, std::string_view data,
                           const std::string& md5) override;
  Result<std::string> StartParts(const std::string& name, uint64_t part_size) override;
  Result<std::string> PutPart(const std::string& name, const std::string& upload_id, uint64_t index,
                              PartBody* body, const std::string& md5) override;
  Status CompleteParts(const std::string& name, const std::string& upload_id,
                       const std::vector<std::string>& parts,
                       const std::vector<std::string>& part_md5s,
                       const std::string& whole_md5) override;
  void AbortParts(const std::string& name, const std::string& upload_id) override;
  bool WantsWholeMd5() const override { return true; }
  // S3 answers 416 to a range on an empty object, and s3rver a broken 206.
  bool StatBeforeGet() const override { return true; }
  Result<RangeResult> GetRange(const std::string& name, int fd, std::string* text, uint64_t offset,
                               std::optional<uint64_t> length,
                               const std::string& if_match) override;

 private:
  S3Store(S3Location location, S3Config config, ObjectStoreOptions options);

  // PutObject, with If-None-Match: * when `if_absent`.
  Status Put(const std::string& name, std::string_view data, const std::string& md5,
             bool if_absent);

  // The URL of object `name` ("" for the bucket) with `query`.
  std::string UrlOf(const std::string& name, const std::string& query) const;
  // A request signed with `payload_hash` (call once the headers are final).
  HttpRequest Signed(HttpRequest request, std::string_view payload_hash) const;
  std::string What(const std::string& name) const;  // "s3://bucket/name"
  Status Error(const HttpResponse& response, const std::string& name) const;
  Result<ObjectInfo> Head(const std::string& name, const std::string& key);
  // Every object (or with `delimiter`, every child) under `prefix`, as raw names.
  Status ListAll(const std::string& prefix, const std::string& delimiter,
                 std::vector<ObjectInfo>* objects, std::vector<std::string>* prefixes);

  S3Location location_;
  S3Config config_;
  bool path_style_;
};

}  // namespace trainrun
