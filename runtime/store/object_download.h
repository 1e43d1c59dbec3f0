// ObjectDownloader: a data reference's `download` from an object store (az://,
// s3://, https://) into pathOnCompute, through a node-local cache.
//
// The URI names one object or a prefix (a "folder"): every object under it is
// downloaded, keeping the relative paths. Each object lands first in the cache,
// keyed by its identity (store, key, ETag, size), then is copied into place
// (copy_file_range: a reflink where the file system can). A rerun on the same node
// finds every unchanged object in the cache and downloads nothing; an object that
// changed in the store has a new ETag and is downloaded again. Before anything is
// written, the free space of the cache and of the target is checked. Transfers are
// parallel, verified by the store (length, MD5), and reported as progress.
//
// The cache is $TRAINRUN_CACHE_DIR, else $XDG_CACHE_HOME/trainrun, else
// ~/.cache/trainrun; "off" turns it off (objects go straight to pathOnCompute).
#pragma once

#include <string>

#include "runtime/report/reporter.h"
#include "runtime/store/store.h"

namespace trainrun {

constexpr int kDefaultDownloadParallelism = 8;
constexpr auto kDownloadProgressInterval = std::chrono::milliseconds(500);

// The cache folder the environment asks for; "" when the cache is off.
std::string CacheDirFromEnv(const EnvLookup& env);

struct DownloadStats {
  uint64_t files = 0;  // objects now at the target
  uint64_t bytes = 0;
  uint64_t downloaded_files = 0;  // fetched from the store this time
  uint64_t downloaded_bytes = 0;
  uint64_t cached_files = 0;  // taken from the cache
  uint64_t kept_files = 0;    // already at the target, kept (overwrite false)
};

class ObjectDownloader {
 public:
  // `cache_dir` "" turns the cache off. Does not own `reporter`.
  ObjectDownloader(std::string cache_dir, Reporter* reporter,
                   int parallelism = kDefaultDownloadParallelism);

  // Downloads `key` of `store` (an object, else every object under "key/"; "" for the
  // whole store) to `target` (the file itself for one object, else a folder).
  // Existing files at the target are kept unless `overwrite`. `what` ("data.mnist")
  // names the reference in messages and progress. Errors name it and the object or
  // path at fault; nothing at the target is half-written.
  Result<DownloadStats> Download(Store* store, const std::string& key, const std::string& target,
                                 bool overwrite, const std::string& what);

 private:
  std::string CachePathFor(const Store& store, const ObjectInfo& object) const;

  std::string cache_dir_;
  Reporter* reporter_;
  int parallelism_;
};

}  // namespace trainrun
