#include "runtime/store/object_download.h"

#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <thread>

#include <fmt/format.h>

#include "base/fs_util.h"
#include "base/hashing.h"
#include "base/parallel_for.h"

namespace trainrun {
namespace {

namespace fs = std::filesystem;

struct Planned {
  ObjectInfo object;
  std::string dest;
  std::string cache;    // "" without a cache
  bool cached = false;  // already in the cache
};

std::string NearestExisting(std::string path) {
  std::error_code ec;
  while (!path.empty() && !fs::exists(path, ec)) path = fs::path(path).parent_path().string();
  return path.empty() ? "/" : path;
}

// Device of the nearest existing folder of `path`.
dev_t DeviceOf(const std::string& path) {
  struct stat st {};
  return stat(NearestExisting(path).c_str(), &st) == 0 ? st.st_dev : 0;
}

Status CheckFree(const std::string& where, uint64_t needed, const std::string& what,
                 const std::string& purpose) {
  if (needed == 0) return Status::Ok();
  std::string existing = NearestExisting(where);
  Result<uint64_t> free_bytes = FreeBytes(existing);
  if (free_bytes.ok() && *free_bytes < needed) {
    return IoError(fmt::format("{}: needs {} {} in {} but only {} is free; free some space{}", what,
                               FormatBytes(needed), purpose, existing, FormatBytes(*free_bytes),
                               purpose == "of cache" ? " or set TRAINRUN_CACHE_DIR" : ""));
  }
  return Status::Ok();
}

}  // namespace

std::string CacheDirFromEnv(const EnvLookup& env) {
  const char* dir = env("TRAINRUN_CACHE_DIR");
  if (dir != nullptr && dir[0] != '\0') return std::string(dir) == "off" ? "" : dir;
  const char* xdg = env("XDG_CACHE_HOME");
  if (xdg != nullptr && xdg[0] == '/') return std::string(xdg) + "/trainrun";
  const char* home = env("HOME");
  if (home != nullptr && home[0] == '/') return std::string(home) + "/.cache/trainrun";
  return "/tmp/trainrun-cache";
}

ObjectDownloader::ObjectDownloader(std::string cache_dir, Reporter* reporter, int parallelism)
    : cache_dir_(std::move(cache_dir)), reporter_(reporter), parallelism_(parallelism) {}

std::string ObjectDownloader::CachePathFor(const Store& store, const ObjectInfo& object) const {
  if (cache_dir_.empty()) return "";
  std::string id = HexEncode(
      Sha256(fmt::format("{}\n{}\n{}\n{}", store.Uri(), object.key, object.etag, object.size)));
  return fmt::format("{}/objects/{}/{}", cache_dir_, id.substr(0, 2), id.substr(2));
}

Result<DownloadStats> ObjectDownloader::Download(Store* store, const std::string& key,
                                                 const std::string& target, bool overwrite,
                                                 const std::string& what) {
  const std::string where = key.empty() ? store->Uri() : store->Uri() + "/" + key;
  // One object, or a prefix.
  std::vector<Planned> plan;
  Result<ObjectInfo> single =
      key.empty() ? Result<ObjectInfo>(NotFoundError("")) : store->Stat(key);
  if (single.ok()) {
    plan.push_back({*single, target, "", false});
  } else if (single.status().code() != StatusCode::kNotFound) {
    return single.status().WithContext(what);
  } else {
    const std::string prefix = key.empty() ? "" : key + "/";
    Result<std::vector<ObjectInfo>> listed = store->List(prefix);
    if (!listed.ok()) return listed.status().WithContext(what);
    for (const ObjectInfo& o : *listed) {
      plan.push_back({o, (fs::path(target) / o.key.substr(prefix.size())).string(), "", false});
    }
    if (plan.empty()) {
      return NotFoundError(
          fmt::format("{}: dataLocation {}: no object or folder of that name", what, where));
    }
  }

  DownloadStats stats;
  std::vector<Planned*> to_place;
  uint64_t need_cache = 0, need_target = 0;
  uint64_t total_download = 0;  // bytes not in the cache yet
  for (Planned& p : plan) {
    std::error_code ec;
    if (!overwrite && fs::exists(p.dest, ec)) {
      ++stats.kept_files;
      continue;
    }
    p.cache = CachePathFor(*store, p.object);
    struct stat st {};
    p.cached = !p.cache.empty() && stat(p.cache.c_str(), &st) == 0 &&
               static_cast<uint64_t>(st.st_size) == p.object.size;
    if (!p.cached && !p.cache.empty()) need_cache += p.object.size;
    if (!p.cached) total_download += p.object.size;
    need_target += p.object.size;
    to_place.push_back(&p);
  }
  if (!cache_dir_.empty() && DeviceOf(cache_dir_) == DeviceOf(target)) {
    TR_RETURN_IF_ERROR(
        CheckFree(target, need_cache + need_target, what, "for the cache and the copy"));
  } else {
    TR_RETURN_IF_ERROR(
        CheckFree(cache_dir_.empty() ? target : cache_dir_, need_cache, what, "of cache"));
    TR_RETURN_IF_ERROR(CheckFree(target, need_target, what, "at pathOnCompute"));
  }

  // Progress, every kDownloadProgressInterval, from a thread of its own.
  std::atomic<uint64_t> moved{0};
  std::atomic<uint64_t> placed{0};
  store->SetByteCounter(&moved);
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  auto report = [&](bool finished) {
    TransferProgress progress;
    if (finished) {
      // The terminal shows "<what>: N file(s), X".
      progress.what =
          fmt::format("{} from {}{}, downloaded", what, where,
                      stats.cached_files > 0
                          ? fmt::format(" ({} file(s) from the node's cache)", stats.cached_files)
                          : "");
      progress.files_done = stats.downloaded_files;
      progress.bytes_done = stats.downloaded_bytes;
      progress.finished = true;
      reporter_->Transfer(progress);
      return;
    }
    progress.what = fmt::format("{} from {}", what, where);
    progress.bytes_done = std::min(moved.load(), total_download);
    progress.bytes_total = total_download;
    progress.files_done = placed.load();
    progress.files_total = to_place.size();
    reporter_->Transfer(progress);
  };
  std::thread progress_thread([&] {
    std::unique_lock lock(mu);
    while (!cv.wait_for(lock, kDownloadProgressInterval, [&] { return done; })) report(false);
  });

  std::mutex result_mu;
  const Status first_error = ParallelFor(to_place.size(), parallelism_, [&](size_t i) {
    Planned& p = *to_place[i];
    Status s;
    bool fetched = false;
    if (p.cache.empty()) {
      s = store->GetListedFile(p.object, p.dest);
      fetched = true;
    } else {
      if (!p.cached) {
        s = store->GetListedFile(p.object, p.cache);
        fetched = true;
      }
      if (s.ok()) s = CopyFileAtomic(p.cache, p.dest);
    }
    if (!s.ok()) return s;
    std::lock_guard lock(result_mu);
    ++placed;
    ++stats.files;
    stats.bytes += p.object.size;
    if (fetched) {
      ++stats.downloaded_files;
      stats.downloaded_bytes += p.object.size;
    } else {
      ++stats.cached_files;
    }
    return Status::Ok();
  });
  {
    std::lock_guard lock(mu);
    done = true;
  }
  cv.notify_all();
  progress_thread.join();
  store->SetByteCounter(nullptr);
  if (!first_error.ok()) return first_error.WithContext(what);
  report(true);
  return stats;
}

}  // namespace trainrun
