// The az:// store: Azure Blob Storage over its REST API.
//
//   az://ACCOUNT/CONTAINER[/prefix]
//
// Objects are block blobs named <prefix>/<key>. Small ones go up with one Put Blob,
// larger ones as blocks (Put Block in parallel, then Put Block List, which makes the
// blob appear whole at once) with the whole file's MD5 set as the blob's
// Content-MD5, so downloads are verified too. CreateBytes is a Put Blob with
// If-None-Match: * (409 BlobAlreadyExists when the blob exists). Requests carry Shared Key
// signatures or a SAS (azure_auth.h says where credentials come from). The container must exist.
#pragma once

#include <memory>
#include <string>

#include "runtime/store/azure_auth.h"
#include "runtime/store/object_store_base.h"

namespace trainrun {

struct AzureBlobLocation {
  std::string account;
  std::string container;
  std::string prefix;  // "" or "a/b" (no leading or trailing '/')
};

// Parses az://ACCOUNT/CONTAINER[/prefix]; errors name the URI.
Result<AzureBlobLocation> ParseAzureUri(const std::string& uri);

class AzureBlobStore : public ObjectStoreBase {
 public:
  static Result<std::unique_ptr<AzureBlobStore>> Open(const std::string& uri, const EnvLookup& env,
                                                      ObjectStoreOptions options = {});

  std::string Uri() const override;
  Result<ObjectInfo> Stat(const std::string& key) override;
  Result<std::vector<ObjectInfo>> List(const std::string& prefix) override;
  Result<std::vector<std::string>> ListChildren(const std::string& prefix) override;
  Status Delete(const std::string& key) override;

  // Creates the container (for tests and benchmarks); one that exists is fine.
  Status CreateContainer();

  const AzureBlobLocation& location() const { return location_; }
  const AzureCredentials& credentials() const { return credentials_; }

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
  void AbortParts(const std::string&, const std::string&) override {}  // blocks expire
  bool WantsWholeMd5() const override { return true; }
  Result<RangeResult> GetRange(const std::string& name, int fd, std::string* text, uint64_t offset,
                               std::optional<uint64_t> length,
                               const std::string& if_match) override;

 private:
  AzureBlobStore(AzureBlobLocation location, AzureCredentials credentials,
                 ObjectStoreOptions options);

  // Put Blob, with If-None-Match: * when `if_absent`.
  Status Put(const std::string& name, std::string_view data, const std::string& md5,
             bool if_absent);

  // A signed request for `name` in the container ("" for the container itself).
  Result<HttpRequest> Build(const std::string& method, const std::string& name,
                            const std::string& query, HttpHeaders headers) const;
  std::string What(const std::string& name) const;  // "az://acct/container/name"
  Status Error(const HttpResponse& response, const std::string& name) const;
  // Get Blob Properties of the blob `name`, reported as `key`.
  Result<ObjectInfo> Head(const std::string& name, const std::string& key);
  // One page of List Blobs.
  Result<std::string> ListPage(const std::string& prefix, const std::string& delimiter,
                               const std::string& marker);

  AzureBlobLocation location_;
  AzureCredentials credentials_;
};

}  // namespace trainrun
