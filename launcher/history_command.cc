#include "launcher/history_command.h"

#include <algorithm>
#include <filesystem>
#include <map>
#include <thread>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "base/fs_util.h"
#include "base/input_limits.h"
#include "base/redact.h"
#include "base/text.h"
#include "launcher/exit_codes.h"
#include "launcher/history_metrics.h"
#include "runtime/run/history.h"
#include "runtime/run/job_config.h"
#include "runtime/run/metrics_plot.h"
#include "runtime/run/run_layout.h"
#include "runtime/run/run_lease.h"
#include "runtime/store/store_factory.h"

namespace trainrun {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr auto kFollowInterval = std::chrono::seconds(1);

int Fail(Console* err, const Status& status) {
  err->Write(fmt::format("trainrun: error: {}\n", status.message()), false);
  if (status.code() == StatusCode::kNotFound) return kExitNoInput;
  if (status.code() == StatusCode::kIoError) return kExitUploadFailed;
  return ExitCodeFor(status);
}

// The start of a value the user gave, for a message that must not grow with it.
std::string Shorten(const std::string& value) {
  return value.size() <= 64 ? value : value.substr(0, 64) + "...";
}

// The arguments every subcommand shares, checked before any store is touched: run
// ids and experiment names become path and key segments.
Status CheckNames(const HistoryOptions& options) {
  constexpr const char* kRule =
      "must be 1-255 letters, digits, '_', '-' or '.', starting with "
      "a letter or digit";
  if (!options.experiment.empty() && !IsValidRunName(options.experiment)) {
    return InvalidArgumentError(
        fmt::format("--experiment \"{}\": {}", Shorten(options.experiment), kRule));
  }
  if (!options.run_id.empty() && !IsValidRunName(options.run_id)) {
    return InvalidArgumentError(fmt::format("run id \"{}\": {}", Shorten(options.run_id), kRule));
  }
  return Status::Ok();
}

// A path argument: within PATH_MAX and NAME_MAX; the error names the argument.
Status CheckPathArgument(const std::string& value, const std::string& argument) {
  Status fits = CheckPathLength(value);
  if (fits.ok()) return fits;
  return InvalidArgumentError(fmt::format("{}: {}", argument, fits.message()));
}

struct Opened {
  std::unique_ptr<Store> store;
  std::unique_ptr<RunHistory> history;
};

Result<Opened> Open(const HistoryOptions& options) {
  TR_RETURN_IF_ERROR(CheckNames(options));
  Opened opened;
  TR_ASSIGN_OR_RETURN(opened.store,
                      OpenStore(options.history.empty() ? DefaultHistoryUri() : options.history));
  // A signal ends the requests in flight (and their retries) at once.
  opened.store->SetCancel(options.cancel);
  opened.history = std::make_unique<RunHistory>(opened.store.get());
  return opened;
}

// The store, its history, and the run named by the options.
struct OpenedRun : Opened {
  RunKey key;
};

Result<OpenedRun> OpenRun(const HistoryOptions& options) {
  OpenedRun run;
  TR_ASSIGN_OR_RETURN(Opened opened, Open(options));
  run.store = std::move(opened.store);
  run.history = std::move(opened.history);
  TR_ASSIGN_OR_RETURN(run.key, run.history->FindRun(options.run_id, options.experiment));
  return run;
}

std::string FormatTime(WallTime t) {
  std::string iso = FormatIso8601(t);  // 2026-11-21T23:52:26.123Z
  return iso.substr(0, 10) + " " + iso.substr(11, 8);
}

// How long the run took; "12.0 s+" while it runs, "12.0 s?" for a lost run (until
// the last word from its trainrun).
std::string RunDuration(const RunRecord& r, const std::optional<LostRun>& lost = std::nullopt) {
  std::optional<WallTime> end = r.end_time();
  WallTime until = end ? *end : lost ? lost->last_renewed : SystemClock()->WallNow();
  double seconds = std::chrono::duration<double>(until - r.start_time()).count();
  std::string text = seconds < 120    ? fmt::format("{:.1f} s", seconds)
                     : seconds < 7200 ? fmt::format("{:.1f} min", seconds / 60)
                                      : fmt::format("{:.1f} h", seconds / 3600);
  return end ? text : text + (lost ? "?" : "+");
}

// Whether the run, not final by its record, was lost: its trainrun's lease ran out
// (run_lease.h). A lease that cannot be read says nothing; `problem`, when not
// null, gets why.
std::optional<LostRun> Lost(Store* store, const RunKey& key, const RunRecord& r,
                            const HistoryOptions& options, std::string* problem = nullptr) {
  if (IsFinal(r.status)) return std::nullopt;
  Result<std::optional<RunLease>> lease = ReadLease(store, key);
  if (!lease.ok()) {
    if (problem != nullptr) *problem = lease.status().message();
    return std::nullopt;
  }
  const auto margin = std::chrono::duration_cast<Duration>(
      std::chrono::duration<double>(options.clock_skew_margin_seconds));
  return JudgeLease(r, *lease, SystemClock()->WallNow(), margin);
}

// "trainrun (pid 12, host a) last renewed its lease at ...": what history knows of a
// lost run, its values escaped (they come from the node).
std::string DescribeLost(const LostRun& lost) {
  return fmt::format(
      "no word from its trainrun (pid {} on {}) since {} UTC, and its lease ran out at {} UTC: "
      "it was killed (SIGKILL), lost its machine or power, or was cut off from run history; the "
      "record still says {}",
      lost.pid, EscapeControl(lost.host), FormatTime(lost.last_renewed), FormatTime(lost.since),
      RunStatusName(lost.last_status));
}

std::string LostFiles(const LostRun& lost) {
  return fmt::format("{} on {}", EscapeControl(lost.run_directory), EscapeControl(lost.host));
}

nlohmann::json LostToJson(const LostRun& lost) {
  return {{"since", FormatIso8601(lost.since)},
          {"lastRenewed", FormatIso8601(lost.last_renewed)},
          {"lastStatus", RunStatusName(lost.last_status)},
          {"host", lost.host},
          {"pid", lost.pid},
          {"runDirectory", lost.run_directory}};
}

}  // namespace

int HistoryList(const HistoryOptions& options, Console* out, Console* err) {
  Result<Opened> opened = Open(options);
  if (!opened.ok()) return Fail(err, opened.status());
  std::vector<std::string> problems;
  Result<std::vector<RunRecord>> runs = opened->history->ListRuns(options.experiment, &problems);
  if (!runs.ok()) return Fail(err, runs.status());
  for (const std::string& p : problems)
    err->Write(fmt::format("trainrun: warning: {}\n", p), false);
  std::vector<RunRecord> shown = *runs;
  if (options.limit > 0 && shown.size() > static_cast<size_t>(options.limit))
    shown.resize(options.limit);
  std::vector<std::optional<LostRun>> lost;
  for (const RunRecord& r : shown) {
    lost.push_back(Lost(opened->store.get(), RunKey{r.experiment, r.run_id}, r, options));
  }
  const auto status_of = [&](size_t i) {
    return lost[i] ? std::string("Lost") : std::string(RunStatusName(shown[i].status));
  };
  if (options.json) {
    json list = json::array();
    for (size_t i = 0; i < shown.size(); ++i) {
      const RunRecord& r = shown[i];
      json item = {{"runId", r.run_id},
                   {"experimentName", r.experiment},
                   {"status", status_of(i)},
                   {"startTime", FormatIso8601(r.start_time())}};
      if (auto end = r.end_time()) item["endTime"] = FormatIso8601(*end);
      if (r.exit_code) item["exitCode"] = *r.exit_code;
      if (lost[i]) item["lost"] = LostToJson(*lost[i]);
      list.push_back(item);
    }
    out->Write(list.dump(2) + "\n", false);
    return kExitOk;
  }
  if (shown.empty()) {
    out->Write(fmt::format("no runs in {}\n", opened->store->Uri()), false);
    return kExitOk;
  }
  size_t id_width = 6, exp_width = 10;
  for (const RunRecord& r : shown) {
    id_width = std::max(id_width, r.run_id.size());
    exp_width = std::max(exp_width, r.experiment.size());
  }
  std::string text =
      fmt::format("{:<{}}  {:<{}}  {:<10}  {:<19}  {:>10}  {:>4}\n", "RUN ID", id_width,
                  "EXPERIMENT", exp_width, "STATUS", "STARTED (UTC)", "DURATION", "EXIT");
  for (size_t i = 0; i < shown.size(); ++i) {
    const RunRecord& r = shown[i];
    text += fmt::format("{:<{}}  {:<{}}  {:<10}  {:<19}  {:>10}  {:>4}\n", r.run_id, id_width,
                        r.experiment, exp_width, status_of(i), FormatTime(r.start_time()),
                        RunDuration(r, lost[i]), r.exit_code ? std::to_string(*r.exit_code) : "-");
  }
  out->Write(std::move(text), false);
  return kExitOk;
}

int HistoryShow(const HistoryOptions& options, Console* out, Console* err) {
  Result<OpenedRun> opened = OpenRun(options);
  if (!opened.ok()) return Fail(err, opened.status());
  const RunKey* key = &opened->key;
  Result<RunRecord> record = opened->history->ReadRecord(*key);
  if (!record.ok()) return Fail(err, record.status());
  const RunRecord& r = *record;
  std::string lease_problem;
  const std::optional<LostRun> lost = Lost(opened->store.get(), *key, r, options, &lease_problem);
  if (!lease_problem.empty()) {
    err->Write(fmt::format("trainrun: warning: whether the run was lost is not known: {}\n",
                           lease_problem),
               false);
  }
  if (options.json) {
    json j = r.ToJson();
    if (lost) {
      j["status"] = "Lost";
      j["lost"] = LostToJson(*lost);
    }
    out->Write(j.dump(2) + "\n", false);
    return kExitOk;
  }
  // What the record holds may come from other nodes and from the ranks: every value
  // is escaped (base/text.h), so none can forge a line or drive the terminal.
  const auto E = [](std::string_view value) { return EscapeControl(value); };
  // A value of several lines (pip's last lines under why the run stopped): each line
  // escaped, the later ones indented under the first.
  const auto Lines = [](std::string_view value) {
    std::string text;
    // A trailing newline starts no line of its own.
    for (size_t start = 0; start < value.size() || start == 0;) {
      size_t end = std::min(value.find('\n', start), value.size());
      if (start > 0) text += "\n             ";
      text += EscapeControl(value.substr(start, end - start));
      start = end + 1;
    }
    return text;
  };
  std::string text;
  text += fmt::format("run:         {}\n", E(r.run_id));
  text += fmt::format("experiment:  {}\n", E(r.experiment));
  std::string status(RunStatusName(r.status));
  if (r.exit_code) status += fmt::format(" (exit code {})", *r.exit_code);
  if (!r.outcome.empty() && IsFinal(r.status)) status += ", " + r.outcome;
  if (lost) status = fmt::format("Lost since {} UTC (was {})", FormatTime(lost->since), status);
  text += fmt::format("status:      {}\n", E(status));
  if (lost) {
    text += fmt::format("lost:        {}\n", DescribeLost(*lost));
    text += fmt::format("local files: {}\n", LostFiles(*lost));
  }
  text += fmt::format("started:     {} UTC\n", FormatTime(r.start_time()));
  if (auto end = r.end_time()) text += fmt::format("ended:       {} UTC\n", FormatTime(*end));
  text += fmt::format("duration:    {}\n", RunDuration(r, lost));
  std::vector<std::string> phases;
  for (const RunRecord::Phase& p : r.phases) {
    phases.push_back(p.seconds >= 0 ? fmt::format("{} {:.2f} s", p.name, p.seconds)
                                    : p.name + " ...");
  }
  text += fmt::format("phases:      {}\n", fmt::join(phases, ", "));
  if (!r.command.empty()) text += fmt::format("command:     {}\n", ShellJoin(r.command));
  if (r.source.contains("directory")) {
    std::string source = r.source.value("directory", "");
    if (r.source.contains("git")) {
      const json& git = r.source["git"];
      source += fmt::format(" (git {} on {}{})", git.value("commit", "").substr(0, 12),
                            git.value("branch", ""), git.value("dirty", false) ? ", dirty" : "");
    }
    text += fmt::format("source:      {}\n", E(source));
  }
  for (const NodeRecord& n : r.nodes) {
    text +=
        fmt::format("node {}:      {}, {} rank(s), {}\n", n.node_rank, E(n.host), n.process_count,
                    n.workdir.empty() ? std::string("local files unknown (the node never reported)")
                                      : "local files in " + E(n.workdir));
  }
  for (const AttemptRecord& a : r.attempts) {
    // One line per start of the ranks (README "In-place restarts").
    text += fmt::format(
        "attempt {}:   {}{}{}\n", a.attempt,
        a.end ? fmt::format("{}, exit code {}", E(a.outcome), a.exit_code) : std::string("running"),
        a.reason.empty() ? "" : " (" + E(a.reason) + ")", a.next.empty() ? "" : "; " + E(a.next));
  }
  if (!r.stop_reason.empty()) text += fmt::format("stopped:     {}\n", Lines(r.stop_reason));
  if (r.failure) {
    const FailureRecord& f = *r.failure;
    // A node's own failure (a preflight, say) has no process: no pid then.
    text += fmt::format("failure:     {} (node {}, {}{})\n", E(f.reason), f.node_rank, E(f.host),
                        f.pid > 0 ? fmt::format(", pid {}", f.pid) : "");
    for (const std::string& line : f.stderr_tail) text += fmt::format("  | {}\n", E(line));
    if (!f.hint.empty()) text += fmt::format("hint:        {}\n", E(f.hint));
    if (!f.log_file.empty()) text += fmt::format("log:         {}\n", E(f.log_file));
  }
  // The final values the ranks logged; a run without metrics has no line.
  Result<RunMetrics> metrics = ReadRunMetrics(opened->store.get(), *key);
  if (metrics.ok()) {
    text += FinalMetricLines(*metrics);
  } else {
    err->Write(fmt::format("trainrun: warning: metrics not read: {}\n", metrics.status().message()),
               false);
  }
  for (const std::string& w : r.warnings) text += fmt::format("warning:     {}\n", Lines(w));
  for (const SkippedSymlink& s : r.skipped_symlinks) {
    text += fmt::format("not uploaded: {} -> {} ({})\n", E(s.path), E(s.target), E(s.reason));
  }
  for (const std::string& e : r.upload_errors) text += fmt::format("upload error: {}\n", E(e));
  out->Write(ScrubSecrets(text), false);
  return kExitOk;
}

int HistoryFiles(const HistoryOptions& options, Console* out, Console* err) {
  Result<OpenedRun> opened = OpenRun(options);
  if (!opened.ok()) return Fail(err, opened.status());
  const RunKey* key = &opened->key;
  Result<std::vector<ObjectInfo>> objects = opened->store->List(key->Prefix());
  if (!objects.ok()) return Fail(err, objects.status());
  std::string text;
  for (const ObjectInfo& o : *objects) {
    text += fmt::format("{:>10}  {}\n", FormatBytes(o.size), o.key.substr(key->Prefix().size()));
  }
  out->Write(std::move(text), false);
  return kExitOk;
}

int HistoryDownload(const HistoryOptions& options, Console* out, Console* err) {
  for (const Status& s : {CheckPathArgument(options.path, "path"),
                          CheckPathArgument(options.output, "-o/--output")}) {
    if (!s.ok()) return Fail(err, s);
  }
  Result<OpenedRun> opened = OpenRun(options);
  if (!opened.ok()) return Fail(err, opened.status());
  const RunKey* key = &opened->key;
  std::string path = options.path;
  while (!path.empty() && path.back() == '/') path.pop_back();
  const std::string object_key = key->Prefix() + path;
  Store* store = opened->store.get();

  if (!path.empty() && store->Stat(object_key).ok()) {
    std::string target =
        options.output.empty() ? fs::path(path).filename().string() : options.output;
    std::error_code ec;
    if (fs::is_directory(target, ec))
      target = (fs::path(target) / fs::path(path).filename()).string();
    Status s = store->GetFile(object_key, target);
    if (!s.ok() && IsCanceled(options.cancel)) {
      // Written under a temporary name and renamed only once whole: nothing is left.
      err->Write(
          fmt::format("trainrun: {}: {} was not downloaded\n", options.cancel->reason(), target),
          false);
      return kExitCanceled;
    }
    if (!s.ok()) return Fail(err, s);
    out->Write(fmt::format("{} -> {}\n", path, target), false);
    return kExitOk;
  }
  const std::string prefix = path.empty() ? key->Prefix() : object_key + "/";
  Result<std::vector<ObjectInfo>> objects = store->List(prefix);
  if (!objects.ok()) return Fail(err, objects.status());
  if (objects->empty()) {
    return Fail(err,
                NotFoundError(fmt::format("run {} has no file or folder \"{}\" in {}; see "
                                          "`trainrun history files {}`",
                                          options.run_id, path, store->Uri(), options.run_id)));
  }
  std::string target_dir =
      options.output.empty() ? (path.empty() ? options.run_id : fs::path(path).filename().string())
                             : options.output;
  uint64_t bytes = 0;
  size_t done = 0;
  for (const ObjectInfo& o : *objects) {
    std::string target = (fs::path(target_dir) / o.key.substr(prefix.size())).string();
    Status s = IsCanceled(options.cancel) ? CanceledError(*options.cancel, target)
                                          : store->GetListedFile(o, target);
    if (s.ok()) {
      bytes += o.size;
      ++done;
      continue;
    }
    if (IsCanceled(options.cancel)) {
      // Each file is written under a temporary name and renamed only once whole:
      // what is in target_dir is complete, and what is not there was not downloaded.
      err->Write(fmt::format("trainrun: {}: {} of {} file(s) downloaded to {}, each whole; the "
                             "others were not\n",
                             options.cancel->reason(), done, objects->size(), target_dir),
                 false);
      return kExitCanceled;
    }
    return Fail(err, s);
  }
  out->Write(fmt::format("{} file(s), {} -> {}\n", objects->size(), FormatBytes(bytes), target_dir),
             false);
  return kExitOk;
}

int HistoryLogs(const HistoryOptions& options, Console* out, Console* err) {
  Result<OpenedRun> opened = OpenRun(options);
  if (!opened.ok()) return Fail(err, opened.status());
  const RunKey* key = &opened->key;
  Store* store = opened->store.get();
  const std::string dir = key->Prefix() + (options.system ? kSystemLogsDir : kUserLogsDir) + "/";
  const std::string only = options.rank ? RankLogName(*options.rank) : "";

  std::map<std::string, uint64_t> offsets;     // key -> bytes printed
  std::map<std::string, std::string> partial;  // key -> unfinished last line
  bool single = false;
  auto poll_once = [&](bool final_pass) -> Status {
    TR_ASSIGN_OR_RETURN(std::vector<ObjectInfo> objects, store->List(dir));
    std::vector<ObjectInfo> logs;
    for (const ObjectInfo& o : objects) {
      if (only.empty() || o.key == dir + only) logs.push_back(o);
    }
    single = logs.size() == 1;
    for (const ObjectInfo& o : logs) {
      uint64_t& offset = offsets[o.key];
      if (o.size <= offset) continue;
      TR_ASSIGN_OR_RETURN(std::string text, store->GetBytes(o.key, offset, o.size - offset));
      offset += text.size();
      std::string name = o.key.substr(dir.size());
      if (!options.follow) {
        if (!single) out->Write(fmt::format("==> {} <==\n", name), false);
        if (!text.empty() && text.back() != '\n') text += '\n';
        out->Write(std::move(text), false);
        continue;
      }
      // Following: whole lines, each prefixed with its file when there are several.
      std::string& pending = partial[o.key];
      pending += text;
      size_t end = final_pass ? pending.size() : pending.rfind('\n') + 1;
      if (pending.rfind('\n') == std::string::npos && !final_pass) continue;
      std::string lines = pending.substr(0, end);
      pending.erase(0, end);
      std::string prefixed;
      size_t start = 0;
      while (start < lines.size()) {
        size_t nl = lines.find('\n', start);
        if (nl == std::string::npos) nl = lines.size();
        prefixed += single ? "" : fmt::format("[{}] ", name);
        prefixed += lines.substr(start, nl - start) + "\n";
        start = nl + 1;
      }
      out->Write(std::move(prefixed), false);
    }
    if (!final_pass && offsets.empty() && !only.empty()) {
      return NotFoundError(fmt::format("run {} has no log {}", options.run_id, only));
    }
    return Status::Ok();
  };

  if (!options.follow) {
    Status s = poll_once(true);
    if (!s.ok()) return Fail(err, s);
    if (offsets.empty())
      return Fail(err, NotFoundError(fmt::format("run {} has no logs in {}", options.run_id, dir)));
    return kExitOk;
  }
  while (true) {
    Result<RunRecord> record = opened->history->ReadRecord(*key);
    bool ended = record.ok() && IsFinal(record->status);
    const std::optional<LostRun> lost =
        record.ok() ? Lost(store, *key, *record, options) : std::nullopt;
    Status s = poll_once(ended || lost);
    if (IsCanceled(options.cancel)) return kExitCanceled;  // the caller's code wins
    if (!s.ok() && s.code() != StatusCode::kNotFound) return Fail(err, s);
    if (ended) return kExitOk;
    if (lost) {
      err->Write(fmt::format("trainrun: run {} is Lost: {}; its local files were in {}\n",
                             options.run_id, DescribeLost(*lost), LostFiles(*lost)),
                 false);
      return kExitUnavailable;
    }
    // Sleeps, but wakes at once for a signal.
    if (options.cancel != nullptr ? options.cancel->WaitFor(kFollowInterval)
                                  : (std::this_thread::sleep_for(kFollowInterval), false)) {
      return kExitCanceled;
    }
  }
}

int HistoryMetrics(const HistoryOptions& options, Console* out, Console* err) {
  if (!options.plot.empty()) {
    for (const Status& s : {CheckPathArgument(options.plot, "--plot"), CheckPlotPath(options.plot)})
      if (!s.ok()) return Fail(err, s);
  }
  Result<OpenedRun> opened = OpenRun(options);
  if (!opened.ok()) return Fail(err, opened.status());
  Result<RunMetrics> metrics = ReadRunMetrics(opened->store.get(), opened->key);
  if (!metrics.ok()) return Fail(err, metrics.status());
  for (const std::string& p : metrics->problems) {
    err->Write(fmt::format("trainrun: warning: {} (skipped)\n", EscapeControl(p)), false);
  }
  if (!options.plot.empty()) {
    if (metrics->metrics.empty()) {
      return Fail(err, NotFoundError(fmt::format("run {} has no metrics to plot", options.run_id)));
    }
    const std::string title = opened->key.experiment + " / " + opened->key.run_id;
    // WriteFileAtomic makes the folder it writes in: a bare name's is this one.
    Status written =
        WriteFileAtomic(fs::absolute(options.plot).string(), RenderMetricsSvg(*metrics, title));
    if (!written.ok()) return Fail(err, IoError(written.message()));
    out->Write(fmt::format("{} metric(s) -> {}\n", metrics->metrics.size(), options.plot), false);
    return kExitOk;
  }
  if (options.json) {
    out->Write(metrics->ToJson().dump(2) + "\n", false);
    return kExitOk;
  }
  if (metrics->empty()) {
    out->Write(fmt::format("run {} has no metrics (README, \"Metrics\", says how to log them)\n",
                           options.run_id),
               false);
    return kExitOk;
  }
  out->Write(MetricsTable(*metrics), false);
  return kExitOk;
}

}  // namespace trainrun
