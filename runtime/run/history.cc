#include "runtime/run/history.h"

#include <sys/stat.h>

#include <algorithm>
#include <deque>
#include <filesystem>
#include <mutex>
#include <set>

#include <fmt/format.h>

#include "base/fs_util.h"
#include "base/parallel_for.h"

namespace trainrun {
namespace {

namespace fs = std::filesystem;

struct Planner {
  std::string containment_root;
  std::string record_prefix;
  std::vector<TransferItem>* items;
  std::vector<SkippedSymlink>* skipped;
  std::set<std::string> visited;  // canonical folders, against symlink loops
  // Symlinks to folders, walked only once every real folder has been: a real folder
  // is uploaded under its own name, and a link to it (latest -> run_a/) is recorded
  // as skipped instead of claiming it first because it sorts first.
  std::deque<std::pair<fs::path, std::string>> linked_dirs;

  std::string RecordPath(const std::string& key) const {
    return key.compare(0, record_prefix.size(), record_prefix) == 0
               ? key.substr(record_prefix.size())
               : key;
  }

  Status Walk(const fs::path& dir, const std::string& key_prefix) {
    std::error_code ec;
    fs::path canonical = fs::canonical(dir, ec);
    if (ec) return ErrnoStatus(ec.value(), dir.string());
    if (!visited.insert(canonical.string()).second) return Status::Ok();
    TR_ASSIGN_OR_RETURN(std::vector<fs::directory_entry> entries, ListDirectory(dir));
    std::sort(entries.begin(), entries.end());
    for (const fs::directory_entry& entry : entries) {
      const std::string name = entry.path().filename().string();
      const std::string key = key_prefix + name;
      struct stat lst {};
      if (lstat(entry.path().c_str(), &lst) != 0) continue;  // vanished meanwhile
      if (S_ISLNK(lst.st_mode)) {
        fs::path target = fs::read_symlink(entry.path(), ec);
        struct stat st {};
        bool resolvable = stat(entry.path().c_str(), &st) == 0;
        if (!resolvable || !IsInside(entry.path().string(), containment_root)) {
          skipped->push_back({RecordPath(key), target.string()});
          continue;
        }
        if (S_ISDIR(st.st_mode)) {
          linked_dirs.emplace_back(entry.path(), key);
        } else if (S_ISREG(st.st_mode)) {
          items->push_back(
              {entry.path().string(), key, static_cast<uint64_t>(st.st_size), MtimeNs(st)});
        }
        continue;
      }
      if (S_ISDIR(lst.st_mode)) {
        TR_RETURN_IF_ERROR(Walk(entry.path(), key + "/"));
      } else if (S_ISREG(lst.st_mode)) {
        items->push_back(
            {entry.path().string(), key, static_cast<uint64_t>(lst.st_size), MtimeNs(lst)});
      }
    }
    return Status::Ok();
  }

  Status WalkLinkedDirs() {
    while (!linked_dirs.empty()) {
      auto [path, key] = linked_dirs.front();
      linked_dirs.pop_front();
      std::error_code ec;
      fs::path canonical = fs::canonical(path, ec);
      if (ec) return ErrnoStatus(ec.value(), path.string());
      if (visited.count(canonical.string()) != 0) {
        skipped->push_back({RecordPath(key), fs::read_symlink(path, ec).string(),
                            SkippedSymlink::kAlreadyUploaded});
        continue;
      }
      TR_RETURN_IF_ERROR(Walk(path, key + "/"));
    }
    return Status::Ok();
  }
};

}  // namespace

Status PlanUpload(const std::string& local_dir, const std::string& key_prefix,
                  const std::string& containment_root, const std::string& record_prefix,
                  std::vector<TransferItem>* items, std::vector<SkippedSymlink>* skipped) {
  std::error_code ec;
  if (!fs::is_directory(local_dir, ec)) return Status::Ok();
  Planner planner{containment_root, record_prefix, items, skipped, {}, {}};
  std::string prefix = key_prefix;
  if (!prefix.empty() && prefix.back() != '/') prefix += '/';
  TR_RETURN_IF_ERROR(planner.Walk(local_dir, prefix));
  return planner.WalkLinkedDirs();
}

int64_t MtimeNs(const struct stat& st) {
  return static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
}

UploadReport UploadItems(Store* store, const std::vector<TransferItem>& items, int parallelism,
                         const std::function<void(uint64_t, uint64_t)>& progress) {
  UploadReport report;
  std::mutex mu;
  // A file that fails is reported and the others go on: each attempt returns Ok.
  ParallelFor(items.size(), parallelism, [&](size_t i) {
    const TransferItem& item = items[i];
    Status s = store->PutFile(item.key, item.local_path);
    std::lock_guard lock(mu);
    if (s.ok()) {
      ++report.files;
      report.bytes += item.size;
    } else {
      report.errors.push_back(fmt::format("{} -> {}: {}", item.local_path, item.key, s.message()));
      report.failed_paths.push_back(item.local_path);
      report.failed_items.push_back(i);
      report.failures.push_back(s);
    }
    if (progress) progress(report.files, report.bytes);
    return Status::Ok();
  }).IgnoreError();
  return report;
}

Status RunHistory::WriteRecord(const RunRecord& record) {
  RunKey key{record.experiment, record.run_id};
  return store_->PutBytes(key.Prefix() + kRunRecordName, record.ToJson().dump(2) + "\n");
}

Status RunHistory::CreateRecord(const RunRecord& record) {
  RunKey key{record.experiment, record.run_id};
  return store_->CreateBytes(key.Prefix() + kRunRecordName, record.ToJson().dump(2) + "\n");
}

Result<RunRecord> RunHistory::ReadRecord(const RunKey& key) {
  TR_ASSIGN_OR_RETURN(std::string text, store_->GetBytes(key.Prefix() + kRunRecordName));
  nlohmann::json json = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded()) {
    return IoError(
        fmt::format("{}/{}{}: not valid JSON", store_->Uri(), key.Prefix(), kRunRecordName));
  }
  Result<RunRecord> record = RunRecord::FromJson(json);
  if (!record.ok()) {
    return record.status().WithContext(
        fmt::format("{}/{}{}", store_->Uri(), key.Prefix(), kRunRecordName));
  }
  return record;
}

Result<std::vector<std::string>> RunHistory::Experiments(const std::string& only) {
  if (!only.empty()) return std::vector<std::string>{only};
  TR_ASSIGN_OR_RETURN(std::vector<std::string> children, store_->ListChildren(""));
  std::vector<std::string> experiments;
  for (const std::string& child : children) {
    if (!child.empty() && child.back() == '/')
      experiments.push_back(child.substr(0, child.size() - 1));
  }
  return experiments;
}

Result<RunKey> RunHistory::FindRun(const std::string& run_id, const std::string& experiment) {
  TR_ASSIGN_OR_RETURN(std::vector<std::string> experiments, Experiments(experiment));
  std::vector<RunKey> found;
  for (const std::string& exp : experiments) {
    RunKey key{exp, run_id};
    if (store_->Stat(key.Prefix() + kRunRecordName).ok()) found.push_back(key);
  }
  if (found.empty()) {
    return NotFoundError(fmt::format("no run \"{}\"{} in {}", run_id,
                                     experiment.empty() ? "" : " in experiment " + experiment,
                                     store_->Uri()));
  }
  if (found.size() > 1) {
    std::vector<std::string> names;
    for (const RunKey& k : found) names.push_back(k.experiment);
    return InvalidArgumentError(
        fmt::format("run \"{}\" exists in several experiments ({}); name one with --experiment",
                    run_id, fmt::join(names, ", ")));
  }
  return found.front();
}

Result<std::vector<RunRecord>> RunHistory::ListRuns(const std::string& experiment,
                                                    std::vector<std::string>* problems) {
  TR_ASSIGN_OR_RETURN(std::vector<std::string> experiments, Experiments(experiment));
  std::vector<RunRecord> runs;
  for (const std::string& exp : experiments) {
    TR_ASSIGN_OR_RETURN(std::vector<std::string> children, store_->ListChildren(exp + "/"));
    for (const std::string& child : children) {
      if (child.empty() || child.back() != '/') continue;
      RunKey key{exp, child.substr(0, child.size() - 1)};
      Result<RunRecord> record = ReadRecord(key);
      if (record.ok()) {
        runs.push_back(std::move(record).value());
      } else if (problems != nullptr) {
        problems->push_back(record.status().message());
      }
    }
  }
  std::sort(runs.begin(), runs.end(),
            [](const RunRecord& a, const RunRecord& b) { return a.start_time() > b.start_time(); });
  return runs;
}

}  // namespace trainrun
