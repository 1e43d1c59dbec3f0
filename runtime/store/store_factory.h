// Opening a store by URI: the one place that knows every backend, so the backends
// themselves depend only on the Store interface (store.h).
#pragma once

#include <memory>
#include <string>

#include "base/env.h"
#include "runtime/store/store.h"

namespace trainrun {

// Opens a store from a URI: "file:///abs/path", "file://rel/path" or a bare path;
// "az://ACCOUNT/CONTAINER[/prefix]" (azure_blob_store.h), "s3://BUCKET[/prefix]"
// (s3_store.h), or "https://host/path" (read-only, https_store.h). Keys are relative
// to the URI. Credentials come from `env` (see each store); nothing is contacted
// yet. Errors name the URI, with credentials removed.
Result<std::unique_ptr<Store>> OpenStore(const std::string& uri,
                                         const EnvLookup& env = ProcessEnv());

// A single object or a prefix named by a URI, for data references: the store of its
// container, bucket or host, and the key under it ("" for a whole container).
struct StoreObject {
  std::unique_ptr<Store> store;
  std::string key;
};
// For object-store URIs only (az://, s3://, https://, http://).
Result<StoreObject> OpenStoreObject(const std::string& uri, const EnvLookup& env = ProcessEnv());

}  // namespace trainrun
