// The https:// store: read-only datasets at plain web addresses, pre-signed S3 URLs
// or Azure blob URLs with a SAS. Objects are downloaded with parallel ranged GETs
// when the server supports ranges (in one stream when it does not), checked against
// Content-Length and, when the server sends one, Content-MD5. Writing, listing and
// deleting are kNotSupported: such an address names single files.
#pragma once

#include <memory>
#include <string>

#include "runtime/store/object_store_base.h"

namespace trainrun {

class HttpsStore : public ObjectStoreBase {
 public:
  // `base` is "https://host[:port]" (or http://), `query` what follows '?' in the
  // original address (a SAS, a pre-signed signature); it goes with every request.
  HttpsStore(std::string base, std::string query, ObjectStoreOptions options = {});

  std::string Uri() const override;
  Result<ObjectInfo> Stat(const std::string& key) override;
  Result<std::vector<ObjectInfo>> List(const std::string& prefix) override;
  Result<std::vector<std::string>> ListChildren(const std::string& prefix) override;
  Status Delete(const std::string& key) override;

 protected:
  std::string NameOf(const std::string& key) const override { return key; }
  Status PutObject(const std::string& name, std::string_view, const std::string&) override;
  Status PutObjectIfAbsent(const std::string& name, std::string_view, const std::string&) override {
    return ReadOnly(name);
  }
  Result<std::string> StartParts(const std::string& name, uint64_t) override;
  Result<std::string> PutPart(const std::string& name, const std::string&, uint64_t, PartBody*,
                              const std::string&) override;
  Status CompleteParts(const std::string& name, const std::string&, const std::vector<std::string>&,
                       const std::vector<std::string>&, const std::string&) override;
  void AbortParts(const std::string&, const std::string&) override {}
  bool WantsWholeMd5() const override { return false; }
  Result<RangeResult> GetRange(const std::string& name, int fd, std::string* text, uint64_t offset,
                               std::optional<uint64_t> length,
                               const std::string& if_match) override;

 private:
  std::string UrlOf(const std::string& key) const;
  Status ReadOnly(const std::string& name) const;

  std::string base_;
  std::string query_;
};

}  // namespace trainrun
