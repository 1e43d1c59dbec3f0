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
            {"warnings", warnings},
            {"workdir", workdir}};
  if (failure) j["failure"] = FailureToJson(*failure);
  return j;
}

json AttemptVerdict::ToJson() const {
  json j = {{"attempt", attempt}, {"restart", restart},    {"waitMs", wait_ms}, {"why", why},
            {"outcome", outcome}, {"exitCode", exit_code}, {"reason", reason}};
  if (failed_rank) j["failedRank"] = *failed_rank;
  if (failed_node_rank) j["failedNodeRank"] = *failed_node_rank;
  return j;
}

}  // namespace trainrun
