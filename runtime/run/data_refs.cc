#include "runtime/run/data_refs.h"

#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>

#include <fmt/format.h>

#include "base/fs_util.h"
#include "base/redact.h"
#include "runtime/run/run_layout.h"
#include "runtime/store/object_download.h"
#include "runtime/store/store.h"
#include "runtime/store/store_factory.h"

namespace trainrun {
namespace {

namespace fs = std::filesystem;

// Moves the calling thread (and the ranks it will spawn) into a mount namespace of
// its own, so bind mounts neither leak to the host nor outlive the run. Once per
// process.
bool EnterPrivateMountNamespace(std::string* why_not) {
  static int state = 0;  // 0 untried, 1 ok, -1 failed
  static std::string reason;
  if (state == 0) {
    if (unshare(CLONE_NEWNS) != 0) {
      reason = fmt::format("unshare(CLONE_NEWNS): {}", std::strerror(errno));
      state = -1;
    } else if (mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
      reason = fmt::format("making mounts private: {}", std::strerror(errno));
      state = -1;
    } else {
      state = 1;
    }
  }
  *why_not = reason;
  return state == 1;
}

Status CopyTree(const fs::path& from, const fs::path& to, bool overwrite, PreparedData* out,
                uint64_t* kept, const CancelToken* cancel) {
  if (IsCanceled(cancel)) return CanceledError(*cancel, fmt::format("copying {}", from.string()));
  struct stat st {};
  if (stat(from.c_str(), &st) != 0) return ErrnoStatus(errno, from.string());
  if (!S_ISDIR(st.st_mode)) {
    std::error_code ec;
    if (!overwrite && fs::exists(to, ec)) {
      ++*kept;
      return Status::Ok();
    }
    ++out->files;
    return CopyFileAtomic(from.string(), to.string(), &out->bytes);
  }
  TR_RETURN_IF_ERROR(MakeDirs(to.string()));
  TR_ASSIGN_OR_RETURN(std::vector<fs::directory_entry> entries, ListDirectory(from));
  for (const fs::directory_entry& entry : entries) {
    TR_RETURN_IF_ERROR(
        CopyTree(entry.path(), to / entry.path().filename(), overwrite, out, kept, cancel));
  }
  return Status::Ok();
}

uint64_t TreeBytes(const fs::path& path) {
  std::error_code ec;
  if (!fs::is_directory(path, ec)) return fs::file_size(path, ec);
  uint64_t total = 0;
  for (auto it = fs::recursive_directory_iterator(path, ec);
       it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (ec) break;
    if (it->is_regular_file(ec)) total += it->file_size(ec);
  }
  return total;
}

}  // namespace

DataPreparer::DataPreparer(std::string job_dir, std::string workdir, std::string data_dir,
                           Reporter* reporter, FuseMountOptions fuse)
    : job_dir_(std::move(job_dir)),
      workdir_(std::move(workdir)),
      data_dir_(std::move(data_dir)),
      reporter_(reporter),
      fuse_options_(std::move(fuse)) {}

DataPreparer::~DataPreparer() {
  for (auto it = fuse_mounts_.rbegin(); it != fuse_mounts_.rend(); ++it) {
    Status s = it->mount->Unmount();
    if (!s.ok()) reporter_->Warning(s.message());
  }
  fuse_mounts_.clear();
  for (auto it = mounts_.rbegin(); it != mounts_.rend(); ++it) {
    if (umount2(it->c_str(), MNT_DETACH) != 0) {
      reporter_->Warning(fmt::format("cannot unmount {}: {}", *it, std::strerror(errno)));
    }
  }
}

Result<std::string> DataPreparer::ResolveSource(const DataReference& ref) const {
  std::string uri = ref.uri;
  if (IsObjectStoreUri(uri)) return uri;
  size_t scheme = uri.find("://");
  if (scheme != std::string::npos) {
    std::string name = uri.substr(0, scheme);
    if (name != "file") {
      if (ref.mechanism == DataMechanism::kDirect) return uri;
      return NotSupportedError(fmt::format(
          "data.{}: {}:// data locations are not supported yet (local paths and file:// are); "
          "use mechanism \"direct\" to pass the URI to the script as is",
          ref.name, name));
    }
    uri = uri.substr(scheme + 3);
  }
  fs::path path(uri);
  if (path.is_relative()) path = fs::path(job_dir_) / path;
  return path.lexically_normal().string();
}

std::string DataPreparer::PlannedPath(const DataReference& ref) const {
  if (ref.mechanism == DataMechanism::kDirect) {
    Result<std::string> source = ResolveSource(ref);
    return source.ok() ? *source : ref.uri;
  }
  if (ref.path_on_compute.empty()) return (fs::path(data_dir_) / ref.name).string();
  fs::path p(ref.path_on_compute);
  return (p.is_absolute() ? p : fs::path(workdir_) / p).lexically_normal().string();
}

std::string DataPreparer::HelperExited(int pid, const ExitStatus& status) {
  for (NamedFuseMount& fuse : fuse_mounts_) {
    if (pid <= 0 || fuse.mount->pid() != pid) continue;
    std::string what = fuse.mount->HelperExited(status);
    if (what.empty()) return "";
    std::string message = fmt::format("data.{}: {}", fuse.name, what);
    reporter_->Warning(message);
    return message;
  }
  return "";
}

void DataPreparer::SetCancel(const CancelToken* cancel) {
  cancel_ = cancel;
  fuse_options_.cancel = cancel;
}

Result<PreparedData> DataPreparer::Prepare(const DataReference& ref, ProcessSet* helpers) {
  if (IsCanceled(cancel_)) return CanceledError(*cancel_, fmt::format("data.{}", ref.name));
  PreparedData out;
  out.name = ref.name;
  Result<std::string> source = ResolveSource(ref);
  if (!source.ok()) return source.status();
  out.source = *source;
  out.path = PlannedPath(ref);
  if (ref.mechanism == DataMechanism::kDirect) {
    out.method = "direct";
    return out;
  }
  if (IsObjectStoreUri(out.source)) {
    TR_RETURN_IF_ERROR(PrepareObject(ref, helpers, &out));
    return out;
  }
  struct stat st {};
  if (stat(out.source.c_str(), &st) != 0) {
    return ErrnoStatus(errno, fmt::format("data.{}: dataLocation {}", ref.name, out.source));
  }
  if (ref.mechanism == DataMechanism::kMount) {
    TR_RETURN_IF_ERROR(
        Mount(out.source, out.path, &out).WithContext(fmt::format("data.{}", ref.name)));
  } else {
    TR_RETURN_IF_ERROR(Download(ref, out.source, out.path, &out));
  }
  reporter_->Info(
      fmt::format("data.{}: {} {} at {}", ref.name, out.method, RedactUri(out.source), out.path));
  return out;
}

Status DataPreparer::PrepareObject(const DataReference& ref, ProcessSet* helpers,
                                   PreparedData* out) {
  const std::string what = fmt::format("data.{}", ref.name);
  const std::string shown = RedactUri(out->source);
  if (ref.mechanism == DataMechanism::kMount) {
    if (out->source.rfind("az://", 0) != 0 && out->source.rfind("s3://", 0) != 0) {
      return NotSupportedError(fmt::format(
          "{}: {} cannot be mounted (only az:// and s3:// can); use mechanism \"download\"", what,
          shown));
    }
    const std::string log = (fs::path(data_dir_).parent_path() / kSystemLogsDir /
                             fmt::format("rclone_{}.log", ref.name))
                                .string();
    Result<std::unique_ptr<FuseMount>> mount =
        FuseMount::Mount(out->source, out->path, log, ProcessEnv(), helpers, fuse_options_);
    if (!mount.ok()) return mount.status().WithContext(what);
    fuse_mounts_.push_back({ref.name, std::move(mount).value()});
    out->method = "read-only FUSE mount (rclone)";
    reporter_->Info(
        fmt::format("{}: {} mounted read-only at {} by rclone", what, shown, out->path));
    return Status::Ok();
  }
  Result<StoreObject> object = OpenStoreObject(out->source);
  if (!object.ok()) return object.status().WithContext(what);
  object->store->SetCancel(cancel_);
  ObjectDownloader downloader(CacheDirFromEnv(ProcessEnv()), reporter_);
  Result<DownloadStats> stats =
      downloader.Download(object->store.get(), object->key, out->path, ref.overwrite, what);
  if (!stats.ok()) return stats.status();
  out->method = "download";
  out->files = stats->files;
  out->bytes = stats->bytes;
  out->downloaded_files = stats->downloaded_files;
  out->downloaded_bytes = stats->downloaded_bytes;
  out->cached_files = stats->cached_files;
  reporter_->Info(fmt::format(
      "{}: {} file(s), {} at {}: {} downloaded ({}), {} from the cache, {} kept (overwrite is {})",
      what, stats->files + stats->kept_files, FormatBytes(stats->bytes), out->path,
      stats->downloaded_files, FormatBytes(stats->downloaded_bytes), stats->cached_files,
      stats->kept_files, ref.overwrite ? "true" : "false"));
  return Status::Ok();
}

Status DataPreparer::Mount(const std::string& source, const std::string& target,
                           PreparedData* out) {
  std::error_code ec;
  const bool is_dir = fs::is_directory(source, ec);
  TR_RETURN_IF_ERROR(MakeDirs(fs::path(target).parent_path().string()));
  if (fs::exists(fs::symlink_status(target, ec))) {
    return AlreadyExistsError(fmt::format("pathOnCompute {} already exists", target));
  }
  std::string why_not;
  if (EnterPrivateMountNamespace(&why_not)) {
    Status made = is_dir ? MakeDirs(target) : WriteFileAtomic(target, "");
    if (made.ok() &&
        mount(source.c_str(), target.c_str(), nullptr, MS_BIND | MS_REC, nullptr) == 0) {
      mounts_.push_back(target);
      if (mount(nullptr, target.c_str(), nullptr, MS_BIND | MS_REMOUNT | MS_RDONLY, nullptr) == 0) {
        out->method = "read-only bind mount";
        return Status::Ok();
      }
      why_not = fmt::format("remounting read-only: {}", std::strerror(errno));
      umount2(target.c_str(), MNT_DETACH);
      mounts_.pop_back();
    } else if (made.ok()) {
      why_not = fmt::format("mount: {}", std::strerror(errno));
    } else {
      why_not = made.message();
    }
    fs::remove(target, ec);
  }
  fs::create_symlink(source, target, ec);
  if (ec) return ErrnoStatus(ec.value(), fmt::format("symlink {} -> {}", target, source));
  out->method = "symlink";
  reporter_->Info(
      fmt::format("cannot bind-mount ({}); using a symlink, which is not read-only", why_not));
  return Status::Ok();
}

Status DataPreparer::Download(const DataReference& ref, const std::string& source,
                              const std::string& target, PreparedData* out) {
  const uint64_t needed = TreeBytes(source);
  TR_RETURN_IF_ERROR(MakeDirs(fs::path(target).parent_path().string()));
  Result<uint64_t> free_bytes = FreeBytes(fs::path(target).parent_path().string());
  if (free_bytes.ok() && *free_bytes < needed) {
    return IoError(fmt::format("data.{}: {} needs {} but {} has only {} free", ref.name, source,
                               FormatBytes(needed), fs::path(target).parent_path().string(),
                               FormatBytes(*free_bytes)));
  }
  uint64_t kept = 0;
  TR_RETURN_IF_ERROR(CopyTree(source, target, ref.overwrite, out, &kept, cancel_)
                         .WithContext(fmt::format("data.{}", ref.name)));
  out->method = "copy";
  if (kept > 0) {
    reporter_->Info(fmt::format("data.{}: kept {} existing file(s) at {} (overwrite is false)",
                                ref.name, kept, target));
  }
  return Status::Ok();
}

}  // namespace trainrun
