// RefusalTally: what the head says about control connections it turned away,
// counted rather than copied, so a flood of them (a port scanner, a node with
// the wrong token retrying, an attacker) costs a bounded amount of memory, log
// and run record however long it lasts.
//
// clang-format off
//   refusal 1 .. kRefusalsInFull   reported in full, one warning each
//   refusal kRefusalsInFull + 1    one warning: the rest are counted
//   every refusal                  counted by peer address (no port) and reason;
//                                  kMaxRefusalSources such pairs, the rest in one
//                                  "other" count
//   a summary                      due kFirstRefusalSummaryAfter after the counting
//                                  began, then after twice as long each time; and
//                                  once at the end of the job
// clang-format on
//
// Not thread-safe: the head calls it under its own lock.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "base/clock.h"

namespace trainrun {

constexpr size_t kRefusalsInFull = 5;
constexpr size_t kMaxRefusalSources = 16;
constexpr std::chrono::seconds kFirstRefusalSummaryAfter{60};

class RefusalTally {
 public:
  // Counts `reason` for `peer` ("ip:port", or "?"). Returns the warning to
  // report now: the refusal itself ("refused a control connection from
  // PEER: REASON") for the first kRefusalsInFull, one line saying that further
  // refusals are counted for the next, nothing after. `now` starts the summary
  // schedule at that point.
  std::optional<std::string> Add(const std::string& peer, const std::string& reason, TimePoint now);

  // The summary to log if one is due at `now` and refusals were counted since
  // the last one; nothing otherwise.
  std::optional<std::string> DueSummary(TimePoint now);

  // Every refusal so far, and those not reported in full.
  uint64_t total() const { return total_; }
  uint64_t counted() const { return total_ > kRefusalsInFull ? total_ - kRefusalsInFull : 0; }

  // The refusals reported in full, as "PEER: REASON", oldest first.
  const std::vector<std::string>& first() const { return first_; }

  // "N control connection(s) refused in all; after the first 5, by address:
  // 127.0.0.1 (did not authenticate in time) 1000 times, ...; and M more from
  // other addresses or reasons". At most kMaxRefusalSources pairs, the most
  // frequent first; empty when nothing was counted past the first few.
  std::string Summary() const;

 private:
  uint64_t total_ = 0;
  std::vector<std::string> first_;
  std::map<std::pair<std::string, std::string>, uint64_t> sources_;  // (address, reason)
  uint64_t other_ = 0;       // refusals from pairs past the kMaxRefusalSources kept
  uint64_t summarized_ = 0;  // total_ at the last summary
  std::optional<TimePoint> next_summary_;
  Duration summary_interval_ = kFirstRefusalSummaryAfter;
};

}  // namespace trainrun
