#include "runtime/cluster_session.h"

namespace trainrun {

using nlohmann::json;

json RankRecordToJson(const RankRecord& r) {
  return {{"rank", r.rank},
          {"nodeRank", r.node_rank},
          {"localRank", r.local_rank},
          {"pid", r.pid},
          {"exitCode", r.exit_code},
          {"signal", r.signal},
          {"seconds", r.seconds},
          {"stoppedByTrainrun", r.stopped_by_trainrun}};
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
  return r;
}

json FailureToJson(const FailureRecord& f) {
  return {{"rank", f.rank},
          {"nodeRank", f.node_rank},
          {"host", f.host},
          {"pid", f.pid},
          {"exitCode", f.exit_code},
          {"signal", f.signal},
          {"reason", f.reason},
          {"hint", f.hint},
          {"stderrTail", f.stderr_tail},
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

json NodeResult::ToJson() const {
  json ranks_json = json::array();
  for (const RankRecord& r : ranks) ranks_json.push_back(RankRecordToJson(r));
  json j = {{"nodeRank", node_rank},
            {"host", host},
            {"outcome", outcome},
            {"exitCode", exit_code},
            {"stopReason", stop_reason},
            {"ranks", ranks_json},
            {"failureTimeMs", failure_time_ms},
            {"warnings", warnings}};
  if (failure) j["failure"] = FailureToJson(*failure);
  return j;
}

NodeResult NodeResult::FromJson(const json& j) {
  NodeResult r;
  try {
    r.node_rank = j.value("nodeRank", 0);
    r.host = j.value("host", "");
    r.outcome = j.value("outcome", "");
    r.exit_code = j.value("exitCode", 0);
    r.stop_reason = j.value("stopReason", "");
    if (j.contains("ranks") && j["ranks"].is_array()) {
      for (const json& k : j["ranks"]) r.ranks.push_back(RankRecordFromJson(k));
    }
    if (j.contains("failure") && j["failure"].is_object())
      r.failure = FailureFromJson(j["failure"]);
    r.failure_time_ms = j.value("failureTimeMs", int64_t{0});
    r.warnings = j.value("warnings", std::vector<std::string>{});
  } catch (const json::exception&) {
    // A malformed field leaves the rest; the head only reports what it got.
  }
  return r;
}

int64_t WallMillis() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace trainrun
