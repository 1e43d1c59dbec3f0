#include "runtime/cluster/refusal_tally.h"

#include <algorithm>

#include <fmt/format.h>

namespace trainrun {

std::optional<std::string> RefusalTally::Add(const std::string& peer, const std::string& reason,
                                             TimePoint now) {
  ++total_;
  if (!next_summary_) next_summary_ = now + summary_interval_;
  if (first_.size() < kRefusalsInFull) {
    first_.push_back(fmt::format("{}: {}", peer, reason));
    summarized_ = total_;
    return "refused a control connection from " + first_.back();
  }
  // The port changes with every connection; the address and reason are what
  // someone acting on the log needs.
  const size_t colon = peer.rfind(':');
  std::string address = colon == std::string::npos ? peer : peer.substr(0, colon);
  auto key = std::make_pair(std::move(address), reason);
  auto it = sources_.find(key);
  if (it != sources_.end()) {
    ++it->second;
  } else if (sources_.size() < kMaxRefusalSources) {
    sources_.emplace(std::move(key), 1);
  } else {
    ++other_;
  }
  if (total_ == kRefusalsInFull + 1) {
    return fmt::format(
        "more control connections are being refused; they are counted by address and reason "
        "from now on and summarized in the system log and at the end of the job");
  }
  return std::nullopt;
}

std::optional<std::string> RefusalTally::DueSummary(TimePoint now) {
  if (!next_summary_ || now < *next_summary_) return std::nullopt;
  if (total_ == summarized_) return std::nullopt;  // nothing new: wait for the next refusal
  summarized_ = total_;
  summary_interval_ *= 2;
  next_summary_ = now + summary_interval_;
  return Summary();
}

std::string RefusalTally::Summary() const {
  if (counted() == 0) return "";
  std::vector<std::pair<std::pair<std::string, std::string>, uint64_t>> sorted(sources_.begin(),
                                                                               sources_.end());
  std::stable_sort(sorted.begin(), sorted.end(),
                   [](const auto& a, const auto& b) { return a.second > b.second; });
  std::vector<std::string> parts;
  for (const auto& [key, count] : sorted) {
    parts.push_back(
        fmt::format("{} ({}) {} time{}", key.first, key.second, count, count == 1 ? "" : "s"));
  }
  std::string text =
      fmt::format("{} control connection(s) refused in all; after the first {}, by address: {}",
                  total_, kRefusalsInFull, fmt::join(parts, "; "));
  if (other_ > 0) text += fmt::format("; and {} more from other addresses or reasons", other_);
  return text;
}

}  // namespace trainrun
