#include "runtime/run/checkpoint_sync.h"

#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <set>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "base/fs_util.h"

namespace trainrun {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// How long one wait for the bandwidth cap sleeps before it looks at Stop() again.
constexpr auto kCapWaitSlice = std::chrono::milliseconds(100);

std::string Join(const std::string& prefix, const std::string& rel) {
  return prefix.empty() ? rel : prefix + "/" + rel;
}

// The regular files of a unit (relative to the folder), sorted, without names
// starting with '.', and a signature of their names, sizes and mtimes.
struct UnitFiles {
  std::vector<std::string> files;
  std::vector<uint64_t> sizes;
  std::string signature;
};

UnitFiles ScanUnit(const std::string& dir, const std::string& unit) {
  UnitFiles out;
  std::vector<std::string> found;
  std::error_code ec;
  const fs::path root = fs::path(dir) / unit;
  const fs::file_status status = fs::symlink_status(root, ec);
  if (ec) return out;
  if (fs::is_regular_file(status)) {
    found.push_back(unit);
  } else if (fs::is_directory(status)) {
    fs::recursive_directory_iterator it(root, ec), end;
    for (; !ec && it != end; it.increment(ec)) {
      const std::string name = it->path().filename().string();
      if (!name.empty() && name[0] == '.') {
        if (it->is_directory(ec)) it.disable_recursion_pending();
        continue;
      }
      if (it->is_regular_file(ec) && !it->is_symlink(ec)) {
        found.push_back(fs::relative(it->path(), dir, ec).generic_string());
      }
    }
  }
  std::sort(found.begin(), found.end());
  for (const std::string& rel : found) {
    struct stat st {};
    if (lstat((fs::path(dir) / rel).c_str(), &st) != 0) continue;
    out.files.push_back(rel);
    out.sizes.push_back(static_cast<uint64_t>(st.st_size));
    out.signature += fmt::format("{}|{}|{}\n", rel, st.st_size, MtimeNs(st));
  }
  return out;
}

json UnitToJson(const CheckpointUnit& unit) {
  json files = json::array();
  for (const auto& [path, size] : unit.files) files.push_back({{"path", path}, {"size", size}});
  return {{"name", unit.name}, {"completed", unit.completed}, {"files", files}};
}

// A manifest's units; malformed entries are skipped.
std::vector<CheckpointUnit> ParseManifest(const std::string& text) {
  std::vector<CheckpointUnit> units;
  json doc = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!doc.is_object() || !doc.contains("units") || !doc["units"].is_array()) return units;
  for (const json& u : doc["units"]) {
    if (!u.is_object() || !u.value("name", json()).is_string()) continue;
    CheckpointUnit unit;
    unit.name = u["name"].get<std::string>();
    if (u.contains("completed") && u["completed"].is_string()) {
      unit.completed = u["completed"].get<std::string>();
    }
    if (u.contains("files") && u["files"].is_array()) {
      for (const json& f : u["files"]) {
        if (!f.is_object() || !f.value("path", json()).is_string()) continue;
        const std::string path = f["path"].get<std::string>();
        if (!ValidateKey(path).ok()) continue;
        unit.files.emplace_back(path, f.value("size", uint64_t{0}));
      }
    }
    units.push_back(std::move(unit));
  }
  return units;
}

}  // namespace

std::string CheckpointManifestKey(const std::string& prefix, int node_rank) {
  return Join(prefix, fmt::format("{}/node-{}.json", kCheckpointManifestDir, node_rank));
}

CheckpointUploader::CheckpointUploader(Store* store, Reporter* reporter,
                                       CheckpointSyncOptions options)
    : store_(store), reporter_(reporter), options_(std::move(options)) {
  Result<std::string> text =
      store_->GetBytes(CheckpointManifestKey(options_.key_prefix, options_.node_rank));
  if (text.ok()) units_ = ParseManifest(*text);
}

CheckpointUploader::~CheckpointUploader() { Stop(); }

void CheckpointUploader::Start() {
  if (thread_.joinable()) return;
  thread_ = std::thread([this] { Loop(); });
}

void CheckpointUploader::Stop() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

bool CheckpointUploader::Stopping() {
  std::lock_guard lock(mu_);
  return stop_;
}

std::vector<CheckpointUnit> CheckpointUploader::manifest() const {
  std::lock_guard lock(mu_);
  return units_;
}

int CheckpointUploader::uploads() const {
  std::lock_guard lock(mu_);
  return uploads_;
}

void CheckpointUploader::Loop() {
  std::unique_lock lock(mu_);
  while (!stop_) {
    cv_.wait_for(lock, options_.scan_interval, [this] { return stop_; });
    if (stop_) return;
    lock.unlock();
    PassOnce();
    lock.lock();
  }
}

void CheckpointUploader::PassOnce() {
  UploadReport report;
  Pass(/*final_pass=*/false, /*all_complete=*/false, &report);
}

UploadReport CheckpointUploader::FinalPass(bool ranks_ended_cleanly) {
  UploadReport report;
  Pass(/*final_pass=*/true, ranks_ended_cleanly, &report);
  return report;
}

void CheckpointUploader::Pass(bool final_pass, bool all_complete, UploadReport* report) {
  const std::string& dir = options_.local_dir;
  std::error_code ec;
  std::vector<std::string> names;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (!name.empty() && name[0] != '.') names.push_back(name);
  }
  std::sort(names.begin(), names.end());
  const fs::path commits = fs::path(dir) / kCheckpointCommitDir;
  std::vector<Status> failures;
  for (const std::string& unit : names) {
    if (!final_pass && Stopping()) break;
    UnitFiles files = ScanUnit(dir, unit);
    if (files.files.empty()) continue;
    const TimePoint now = options_.clock->Now();
    Seen& seen = seen_[unit];
    if (seen.signature != files.signature) {
      seen.signature = files.signature;
      seen.since = now;
    }
    const fs::path marker = commits / unit;
    const bool signalled = fs::exists(marker, ec);
    if (seen.uploaded.empty()) {
      // In the manifest from an earlier start with the same files: already there.
      std::lock_guard lock(mu_);
      for (const CheckpointUnit& known : units_) {
        if (known.name != unit || known.files.size() != files.files.size()) continue;
        bool same = true;
        for (size_t i = 0; i < files.files.size(); ++i) {
          same = same && known.files[i].first == files.files[i] &&
                 known.files[i].second == files.sizes[i];
        }
        if (same) seen.uploaded = files.signature;
      }
    }
    if (seen.uploaded == files.signature) {
      if (signalled) fs::remove(marker, ec);
      continue;
    }
    const bool quiet =
        options_.quiet_period > Duration::zero() && now - seen.since >= options_.quiet_period;
    if (!signalled && !quiet && !all_complete) continue;
    Status sent = UploadUnit(unit, files.files, /*capped=*/!final_pass);
    // Changed while it was being sent: not whole in the store, so not listed.
    UnitFiles after = ScanUnit(dir, unit);
    if (sent.ok() && after.signature != files.signature) {
      seen.signature = after.signature;
      seen.since = options_.clock->Now();
      reporter_->Info(
          fmt::format("checkpoint {} changed while it was uploaded; it goes up again", unit));
      continue;
    }
    if (sent.ok()) {
      CheckpointUnit done{unit, FormatIso8601(options_.clock->WallNow()), {}};
      for (size_t i = 0; i < files.files.size(); ++i) {
        done.files.emplace_back(files.files[i], files.sizes[i]);
      }
      {
        std::lock_guard lock(mu_);
        units_.push_back(std::move(done));
        ++uploads_;
      }
      sent = WriteManifest();
    }
    if (!sent.ok()) {
      failures.push_back(sent);
      report->errors.push_back(fmt::format("checkpoint {}: {}", unit, sent.message()));
      report->failed_paths.push_back((fs::path(dir) / unit).string());
      continue;
    }
    seen.uploaded = files.signature;
    if (signalled) fs::remove(marker, ec);
    report->files += files.files.size();
    for (uint64_t size : files.sizes) report->bytes += size;
    reporter_->Info(fmt::format("checkpoint {} uploaded to {} ({} file(s), {})", unit,
                                store_->Uri(), files.files.size(),
                                signalled ? "signalled by the script"
                                : quiet   ? "quiet period passed"
                                          : "the ranks have ended"));
    ApplyRetention();
  }
  if (!failures.empty() && !failing_) {
    failing_ = true;
    reporter_->Warning(fmt::format(
        "checkpoint upload to {} failed ({}); the files stay in {} and trainrun keeps trying",
        store_->Uri(), failures.front().message(), dir));
  } else if (failures.empty() && failing_) {
    failing_ = false;
    reporter_->Info(fmt::format("checkpoint upload to {} works again", store_->Uri()));
  }
}

Status CheckpointUploader::UploadUnit(const std::string& unit,
                                      const std::vector<std::string>& files, bool capped) {
  // A unit sent again leaves the manifest first: while its files are replaced, a
  // restore must not take a mix of old and new.
  bool listed = false;
  {
    std::lock_guard lock(mu_);
    auto it = std::find_if(units_.begin(), units_.end(),
                           [&](const CheckpointUnit& u) { return u.name == unit; });
    if (it != units_.end()) {
      units_.erase(it);
      listed = true;
    }
  }
  if (listed) TR_RETURN_IF_ERROR(WriteManifest());
  for (const std::string& rel : files) {
    const std::string local = (fs::path(options_.local_dir) / rel).string();
    const uint64_t cap = options_.max_bytes_per_second;
    if (capped && cap > 0) {
      while (options_.clock->Now() < next_upload_) {
        if (Stopping()) return Status(StatusCode::kCanceled, "checkpoint upload stopped");
        options_.sleeper->Sleep(
            std::min<Duration>(next_upload_ - options_.clock->Now(), kCapWaitSlice));
      }
      struct stat st {};
      const uint64_t size = stat(local.c_str(), &st) == 0 ? st.st_size : 0;
      next_upload_ = std::max(next_upload_, options_.clock->Now()) +
                     std::chrono::duration_cast<Duration>(std::chrono::duration<double>(
                         static_cast<double>(size) / static_cast<double>(cap)));
    }
    TR_RETURN_IF_ERROR(store_->PutFile(Join(options_.key_prefix, rel), local));
  }
  return Status::Ok();
}

Status CheckpointUploader::WriteManifest() {
  json units = json::array();
  {
    std::lock_guard lock(mu_);
    for (const CheckpointUnit& unit : units_) units.push_back(UnitToJson(unit));
  }
  json doc = {{"version", 1}, {"node", options_.node_rank}, {"units", units}};
  return store_->PutBytes(CheckpointManifestKey(options_.key_prefix, options_.node_rank),
                          doc.dump(1));
}

void CheckpointUploader::ApplyRetention() {
  if (options_.keep_last <= 0) return;
  std::vector<CheckpointUnit> dropped;
  {
    std::lock_guard lock(mu_);
    while (units_.size() > static_cast<size_t>(options_.keep_last)) {
      dropped.push_back(std::move(units_.front()));
      units_.erase(units_.begin());
    }
  }
  if (dropped.empty()) return;
  // Out of the manifest first, so no restore reaches for a file being deleted.
  Status written = WriteManifest();
  if (!written.ok()) {
    reporter_->Warning(fmt::format("checkpoint retention: {}", written.message()));
    return;
  }
  for (const CheckpointUnit& unit : dropped) {
    for (const auto& [rel, size] : unit.files) {
      Status deleted = store_->Delete(Join(options_.key_prefix, rel));
      if (!deleted.ok())
        reporter_->Warning(fmt::format("checkpoint retention: {}", deleted.message()));
    }
    reporter_->Info(fmt::format("checkpoint {} deleted from {}: only the last {} are kept",
                                unit.name, store_->Uri(), options_.keep_last));
  }
}

Result<RestoreReport> RestoreCheckpointFiles(Store* store, const std::string& prefix,
                                             const std::string& local_dir) {
  RestoreReport report;
  const std::string manifests = Join(prefix, std::string(kCheckpointManifestDir) + "/");
  TR_ASSIGN_OR_RETURN(std::vector<ObjectInfo> listed, store->List(manifests));
  std::vector<std::string> files;  // relative to the prefix
  std::set<std::string> units;
  for (const ObjectInfo& object : listed) {
    const std::string name = object.key.substr(manifests.size());
    if (name.rfind("node-", 0) != 0 || name.find('/') != std::string::npos) continue;
    TR_ASSIGN_OR_RETURN(std::string text, store->GetBytes(object.key));
    report.manifest = true;
    for (const CheckpointUnit& unit : ParseManifest(text)) {
      units.insert(unit.name);
      for (const auto& [rel, size] : unit.files) files.push_back(rel);
    }
  }
  if (!report.manifest) {
    // Not written by trainrun (or by a version without manifests): all of it.
    const std::string all = prefix.empty() ? "" : prefix + "/";
    TR_ASSIGN_OR_RETURN(std::vector<ObjectInfo> objects, store->List(all));
    for (const ObjectInfo& object : objects) {
      const std::string rel = object.key.substr(all.size());
      if (rel.empty() || rel[0] == '.') continue;
      files.push_back(rel);
      units.insert(rel.substr(0, rel.find('/')));
    }
  }
  std::sort(files.begin(), files.end());
  files.erase(std::unique(files.begin(), files.end()), files.end());
  report.units = static_cast<int>(units.size());
  for (const std::string& rel : files) {
    const std::string key = Join(prefix, rel);
    const std::string local = (fs::path(local_dir) / rel).string();
    TR_ASSIGN_OR_RETURN(ObjectInfo info, store->Stat(key));
    struct stat st {};
    if (stat(local.c_str(), &st) == 0 && static_cast<uint64_t>(st.st_size) == info.size) {
      ++report.skipped;
      continue;
    }
    TR_RETURN_IF_ERROR(store->GetListedFile(info, local));
    ++report.files;
    report.bytes += info.size;
  }
  return report;
}

}  // namespace trainrun
