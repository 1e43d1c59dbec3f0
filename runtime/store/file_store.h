// The file:// store: run history on a local or network file system. Objects are
// plain files under a root folder; writes go to a temporary name and are renamed.
// CreateBytes links the temporary file to the key's name instead (link(2) fails when
// the name exists, on local file systems and NFS alike), so the object appears whole
// and only once.
#pragma once

#include <string>

#include "runtime/store/store.h"

namespace trainrun {

class FileStore : public Store {
 public:
  // `root` is an absolute folder; it is created on the first write.
  explicit FileStore(std::string root);

  std::string Uri() const override;
  Status PutFile(const std::string& key, const std::string& local_path) override;
  Status PutBytes(const std::string& key, std::string_view data) override;
  Status CreateBytes(const std::string& key, std::string_view data) override;
  Status GetFile(const std::string& key, const std::string& local_path) override;
  Result<std::string> GetBytes(const std::string& key, uint64_t offset,
                               std::optional<uint64_t> length) override;
  Result<ObjectInfo> Stat(const std::string& key) override;
  Result<std::vector<ObjectInfo>> List(const std::string& prefix) override;
  Result<std::vector<std::string>> ListChildren(const std::string& prefix) override;
  Status Delete(const std::string& key) override;

  const std::string& root() const { return root_; }

 private:
  std::string PathOf(const std::string& key) const;
  std::string root_;
};

}  // namespace trainrun
