#include "runtime/cluster/node_report.h"

namespace trainrun {

using nlohmann::json;

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

}  // namespace trainrun
