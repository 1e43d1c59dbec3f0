#include "runtime/run/run_record.h"

#include <fmt/format.h>

namespace trainrun {

using nlohmann::json;

std::string_view RunStatusName(RunStatus status) {
  switch (status) {
    case RunStatus::kPreparing: return "Preparing";
    case RunStatus::kRunning: return "Running";
    case RunStatus::kFinalizing: return "Finalizing";
    case RunStatus::kCompleted: return "Completed";
    case RunStatus::kFailed: return "Failed";
    case RunStatus::kCanceled: return "Canceled";
  }
  return "Unknown";
}

bool ParseRunStatus(std::string_view name, RunStatus* out) {
  for (RunStatus s : {RunStatus::kPreparing, RunStatus::kRunning, RunStatus::kFinalizing,
                      RunStatus::kCompleted, RunStatus::kFailed, RunStatus::kCanceled}) {
    if (RunStatusName(s) == name) {
      *out = s;
      return true;
    }
  }
  return false;
}

bool IsFinal(RunStatus status) {
  return status == RunStatus::kCompleted || status == RunStatus::kFailed ||
         status == RunStatus::kCanceled;
}

json RankRecordToJson(const RankRecord& r) {
  json j = {{"rank", r.rank},
            {"nodeRank", r.node_rank},
            {"localRank", r.local_rank},
            {"pid", r.pid},
            {"exitCode", r.exit_code},
            {"signal", r.signal},
            {"seconds", r.seconds},
            {"stoppedByTrainrun", r.stopped_by_trainrun}};
  if (!r.unkillable_state.empty()) {
    j["unkillable"] = {{"state", r.unkillable_state}, {"wchan", r.unkillable_wchan}};
  }
  return j;
}

RankRecord RankRecordFromJson(const json& j) {
  RankRecord r;
  r.rank = j.value("rank", 0);
  r.node_rank = j.value("nodeRank", 0);
  r.local_rank = j.value("localRank", 0);
  r.pid = j.value("pid", 0);
  r.exit_code = j.value("exitCode", 0);
  r.signal = j.value("signal", 0);
  r.seconds = j.value("seconds", 0.0);
  r.stopped_by_trainrun = j.value("stoppedByTrainrun", false);
  if (j.contains("unkillable") && j["unkillable"].is_object()) {
    r.unkillable_state = j["unkillable"].value("state", "");
    r.unkillable_wchan = j["unkillable"].value("wchan", "");
  }
  return r;
}

json FailureToJson(const FailureRecord& f) {
  return {{"rank", f.rank},       {"nodeRank", f.node_rank}, {"host", f.host},
          {"pid", f.pid},         {"exitCode", f.exit_code}, {"signal", f.signal},
          {"reason", f.reason},   {"hint", f.hint},          {"stderrTail", f.stderr_tail},
          {"logFile", f.log_file}};
}

FailureRecord FailureFromJson(const json& j) {
  FailureRecord f;
  f.rank = j.value("rank", 0);
  f.node_rank = j.value("nodeRank", 0);
  f.host = j.value("host", "");
  f.pid = j.value("pid", 0);
  f.exit_code = j.value("exitCode", 0);
  f.signal = j.value("signal", 0);
  f.reason = j.value("reason", "");
  f.hint = j.value("hint", "");
  if (j.contains("stderrTail") && j["stderrTail"].is_array()) {
    for (const json& line : j["stderrTail"]) {
      if (line.is_string()) f.stderr_tail.push_back(line.get<std::string>());
    }
  }
  f.log_file = j.value("logFile", "");
  return f;
}

void RunRecord::SetStatus(RunStatus new_status, WallTime now) {
  status = new_status;
  status_history.emplace_back(new_status, now);
  if (!phases.empty() && phases.back().seconds < 0) {
    phases.back().seconds = std::chrono::duration<double>(now - phases.back().start).count();
  }
  if (!IsFinal(new_status)) phases.push_back({std::string(RunStatusName(new_status)), now, -1});
}

WallTime RunRecord::start_time() const {
  return status_history.empty() ? WallTime{} : status_history.front().second;
}

std::optional<WallTime> RunRecord::end_time() const {
  if (status_history.empty() || !IsFinal(status_history.back().first)) return std::nullopt;
  return status_history.back().second;
}

json AttemptToJson(const AttemptRecord& a) {
  json j = {{"attempt", a.attempt}, {"start", FormatIso8601(a.start)}};
  if (a.end) {
    j["end"] = FormatIso8601(*a.end);
    j["outcome"] = a.outcome;
    j["exitCode"] = a.exit_code;
  }
  if (a.failed_rank) j["failedRank"] = *a.failed_rank;
  if (a.failed_node_rank) j["failedNodeRank"] = *a.failed_node_rank;
  if (!a.reason.empty()) j["reason"] = a.reason;
  if (!a.next.empty()) j["next"] = a.next;
  return j;
}

AttemptRecord AttemptFromJson(const json& j) {
  AttemptRecord a;
  a.attempt = j.value("attempt", 1);
  ParseIso8601(j.value("start", ""), &a.start);
  WallTime end;
  if (ParseIso8601(j.value("end", ""), &end)) a.end = end;
  a.outcome = j.value("outcome", "");
  a.exit_code = j.value("exitCode", 0);
  if (j.contains("failedRank") && j["failedRank"].is_number_integer())
    a.failed_rank = j["failedRank"].get<int>();
  if (j.contains("failedNodeRank") && j["failedNodeRank"].is_number_integer())
    a.failed_node_rank = j["failedNodeRank"].get<int>();
  a.reason = j.value("reason", "");
  a.next = j.value("next", "");
  return a;
}

json RunRecord::ToJson() const {
  json j;
  j["runId"] = run_id;
  j["experimentName"] = experiment;
  j["status"] = RunStatusName(status);
  j["startTime"] = FormatIso8601(start_time());
  if (auto end = end_time()) j["endTime"] = FormatIso8601(*end);
  json history = json::array();
  for (const auto& [s, t] : status_history) {
    history.push_back({{"status", RunStatusName(s)}, {"time", FormatIso8601(t)}});
  }
  j["statusHistory"] = history;
  json phase_list = json::array();
  for (const Phase& p : phases) {
    json phase = {{"name", p.name}, {"start", FormatIso8601(p.start)}};
    if (p.seconds >= 0) phase["seconds"] = p.seconds;
    phase_list.push_back(phase);
  }
  j["phases"] = phase_list;
  if (exit_code) j["exitCode"] = *exit_code;
  if (!outcome.empty()) j["outcome"] = outcome;
  if (!stop_reason.empty()) j["stopReason"] = stop_reason;
  if (failure) j["failure"] = FailureToJson(*failure);
  json node_list = json::array();
  for (const NodeRecord& n : nodes) {
    node_list.push_back({{"nodeRank", n.node_rank},
                         {"host", n.host},
                         {"processCount", n.process_count},
                         {"trainrunPid", n.trainrun_pid},
                         {"workdir", n.workdir}});
  }
  j["nodes"] = node_list;
  json rank_list = json::array();
  for (const RankRecord& r : ranks) rank_list.push_back(RankRecordToJson(r));
  j["ranks"] = rank_list;
  if (!attempts.empty()) {
    json attempt_list = json::array();
    for (const AttemptRecord& a : attempts) attempt_list.push_back(AttemptToJson(a));
    j["attempts"] = attempt_list;
  }
  j["command"] = command;
  j["source"] = source;
  j["job"] = job;
  j["details"] = details;
  j["warnings"] = warnings;
  json links = json::array();
  for (const SkippedSymlink& s : skipped_symlinks) {
    links.push_back({{"path", s.path}, {"target", s.target}, {"reason", s.reason}});
  }
  j["skippedSymlinks"] = links;
  j["uploadErrors"] = upload_errors;
  j["trainrunVersion"] = trainrun_version;
  return j;
}

Result<RunRecord> RunRecord::FromJson(const json& j) {
  if (!j.is_object()) return InvalidArgumentError("run record is not a JSON object");
  RunRecord r;
  try {
    r.run_id = j.value("runId", "");
    r.experiment = j.value("experimentName", "");
    if (!ParseRunStatus(j.value("status", ""), &r.status)) {
      return InvalidArgumentError(
          fmt::format("run record has an unknown status \"{}\"", j.value("status", "")));
    }
    for (const json& h : j.value("statusHistory", json::array())) {
      RunStatus s;
      WallTime t;
      if (ParseRunStatus(h.value("status", ""), &s) && ParseIso8601(h.value("time", ""), &t)) {
        r.status_history.emplace_back(s, t);
      }
    }
    for (const json& p : j.value("phases", json::array())) {
      Phase phase;
      phase.name = p.value("name", "");
      ParseIso8601(p.value("start", ""), &phase.start);
      phase.seconds = p.value("seconds", -1.0);
      r.phases.push_back(phase);
    }
    if (j.contains("exitCode") && j["exitCode"].is_number_integer())
      r.exit_code = j["exitCode"].get<int>();
    r.outcome = j.value("outcome", "");
    r.stop_reason = j.value("stopReason", "");
    if (j.contains("failure") && j["failure"].is_object())
      r.failure = FailureFromJson(j["failure"]);
    for (const json& n : j.value("nodes", json::array())) {
      r.nodes.push_back({n.value("nodeRank", 0), n.value("host", ""), n.value("processCount", 0),
                         n.value("trainrunPid", 0), n.value("workdir", "")});
    }
    for (const json& k : j.value("ranks", json::array())) r.ranks.push_back(RankRecordFromJson(k));
    for (const json& a : j.value("attempts", json::array())) {
      r.attempts.push_back(AttemptFromJson(a));
    }
    r.command = j.value("command", std::vector<std::string>{});
    r.source = j.value("source", json::object());
    r.job = j.value("job", json::object());
    r.details = j.value("details", json::object());
    r.warnings = j.value("warnings", std::vector<std::string>{});
    for (const json& s : j.value("skippedSymlinks", json::array())) {
      r.skipped_symlinks.push_back({s.value("path", ""), s.value("target", ""),
                                    s.value("reason", SkippedSymlink::kOutsideWorkdir)});
    }
    r.upload_errors = j.value("uploadErrors", std::vector<std::string>{});
    r.trainrun_version = j.value("trainrunVersion", "");
  } catch (const json::exception& e) {
    return InvalidArgumentError(fmt::format("run record: {}", e.what()));
  }
  return r;
}

}  // namespace trainrun
