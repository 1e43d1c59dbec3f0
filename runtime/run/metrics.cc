#include "runtime/run/metrics.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>
#include <set>

#include <fmt/format.h>

namespace trainrun {

namespace {

using nlohmann::json;

constexpr std::string_view kPrefix = "rank_";
constexpr std::string_view kSuffix = ".jsonl";

// A numeric value of a line: a number, or the module's spelling of a non-finite one.
std::optional<double> NumberOf(const json& v) {
  if (v.is_number()) return v.get<double>();
  if (!v.is_string()) return std::nullopt;
  const std::string& s = v.get_ref<const std::string&>();
  if (s == "NaN") return std::numeric_limits<double>::quiet_NaN();
  if (s == "Infinity") return std::numeric_limits<double>::infinity();
  if (s == "-Infinity") return -std::numeric_limits<double>::infinity();
  return std::nullopt;
}

// min/max that a NaN does not poison (a NaN loss is worth seeing as latest, but
// the range is of the numbers).
void Widen(double v, bool* any, double* lo, double* hi) {
  if (std::isnan(v)) return;
  if (!*any) {
    *lo = *hi = v;
    *any = true;
    return;
  }
  *lo = std::min(*lo, v);
  *hi = std::max(*hi, v);
}

json StatsToJson(const MetricStats& s) {
  const auto number = [](double v) -> json {
    if (std::isfinite(v)) return v;
    return std::isnan(v) ? "NaN" : (v > 0 ? "Infinity" : "-Infinity");
  };
  json j = {{"values", s.values},         {"steps", s.steps},     {"latestStep", s.latest_step},
            {"latest", number(s.latest)}, {"min", number(s.min)}, {"max", number(s.max)}};
  if (s.latest_text) j["latest"] = *s.latest_text;
  if (s.values == 0) {
    j.erase("min");
    j.erase("max");
  } else if (std::isnan(s.min)) {
    j["min"] = nullptr;  // every value NaN: no range
    j["max"] = nullptr;
  }
  return j;
}

}  // namespace

std::string MetricsFileName(int rank) { return fmt::format("rank_{}.jsonl", rank); }

std::optional<int> RankOfMetricsFile(std::string_view name) {
  if (name.size() <= kPrefix.size() + kSuffix.size() || !name.starts_with(kPrefix) ||
      !name.ends_with(kSuffix)) {
    return std::nullopt;
  }
  std::string_view digits =
      name.substr(kPrefix.size(), name.size() - kPrefix.size() - kSuffix.size());
  int rank = 0;
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), rank);
  if (ec != std::errc() || end != digits.data() + digits.size() || rank < 0) return std::nullopt;
  return rank;
}

void RunMetrics::AddLines(int rank, std::string_view text, const std::string& file) {
  size_t start = 0;
  int number = 0;
  while (start < text.size()) {
    size_t nl = text.find('\n', start);
    const bool finished = nl != std::string_view::npos;
    std::string_view line = text.substr(start, (finished ? nl : text.size()) - start);
    start = finished ? nl + 1 : text.size();
    ++number;
    if (line.empty()) continue;
    const auto problem = [&](std::string_view why) {
      if (finished) problems.push_back(fmt::format("{} line {}: {}", file, number, why));
    };
    json j = json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.is_object()) {
      problem("not a JSON object");
      continue;
    }
    if (j.contains("tag") && j["tag"].is_string()) {
      const json& v = j.value("value", json(""));
      tags[j["tag"].get<std::string>()] = v.is_string() ? v.get<std::string>() : v.dump();
      continue;
    }
    if (!j.contains("name") || !j["name"].is_string() || !j.contains("value")) {
      problem("has no \"name\" and \"value\"");
      continue;
    }
    MetricSeries& series = metrics[j["name"].get<std::string>()][rank];
    int64_t step = 0;
    if (j.contains("step") && j["step"].is_number()) {
      step = j["step"].get<int64_t>();
    } else {
      step = static_cast<int64_t>(series.points.size());
    }
    const json& v = j["value"];
    if (std::optional<double> value = NumberOf(v)) {
      series.points.push_back({step, *value});
      series.last_text.reset();
    } else {
      series.last_text = v.is_string() ? v.get<std::string>() : v.dump();
      series.last_text_step = step;
    }
  }
}

std::optional<MetricStats> RunMetrics::Stats(const std::string& name, int rank) const {
  auto metric = metrics.find(name);
  if (metric == metrics.end()) return std::nullopt;
  auto it = metric->second.find(rank);
  if (it == metric->second.end()) return std::nullopt;
  const MetricSeries& series = it->second;
  MetricStats s;
  s.values = series.points.size();
  std::set<int64_t> steps;
  bool any = false;
  for (const MetricPoint& p : series.points) {
    steps.insert(p.step);
    Widen(p.value, &any, &s.min, &s.max);
    // The highest step wins; of one step logged twice, the later value.
    if (steps.size() == 1 || p.step >= s.latest_step) {
      s.latest_step = p.step;
      s.latest = p.value;
    }
  }
  if (series.last_text && (series.points.empty() || series.last_text_step >= s.latest_step)) {
    s.latest_text = series.last_text;
    s.latest_step = series.last_text_step;
    steps.insert(series.last_text_step);
  }
  s.steps = steps.size();
  return s;
}

std::optional<MetricStats> RunMetrics::Overall(const std::string& name) const {
  auto metric = metrics.find(name);
  if (metric == metrics.end()) return std::nullopt;
  MetricStats all;
  std::set<int64_t> steps;
  bool any = false, have_latest = false;
  for (const auto& [rank, series] : metric->second) {
    std::optional<MetricStats> s = Stats(name, rank);
    if (!s) continue;
    all.values += s->values;
    for (const MetricPoint& p : series.points) steps.insert(p.step);
    if (s->latest_text) steps.insert(s->latest_step);
    if (s->values > 0) {
      Widen(s->min, &any, &all.min, &all.max);
      Widen(s->max, &any, &all.min, &all.max);
    }
    // Ranks in order: a later rank takes over only with a higher step.
    if (!have_latest || s->latest_step > all.latest_step) {
      all.latest_step = s->latest_step;
      all.latest = s->latest;
      all.latest_text = s->latest_text;
      have_latest = true;
    }
  }
  all.steps = steps.size();
  return all;
}

json RunMetrics::ToJson() const {
  json out = {{"metrics", json::object()}, {"tags", tags}};
  for (const auto& [name, ranks] : metrics) {
    json ranks_json = json::object();
    for (const auto& [rank, series] : ranks) {
      if (auto s = Stats(name, rank)) ranks_json[std::to_string(rank)] = StatsToJson(*s);
    }
    out["metrics"][name] = {{"overall", StatsToJson(*Overall(name))}, {"ranks", ranks_json}};
  }
  if (!problems.empty()) out["problems"] = problems;
  return out;
}

Result<RunMetrics> ReadRunMetrics(Store* store, const RunKey& key) {
  const std::string dir = key.Prefix() + kMetricsDir + "/";
  TR_ASSIGN_OR_RETURN(std::vector<ObjectInfo> objects, store->List(dir));
  RunMetrics metrics;
  for (const ObjectInfo& o : objects) {
    const std::string name = o.key.substr(dir.size());
    std::optional<int> rank = RankOfMetricsFile(name);
    if (!rank) continue;
    TR_ASSIGN_OR_RETURN(std::string text, store->GetBytes(o.key));
    metrics.AddLines(*rank, text, name);
  }
  return metrics;
}

std::string FormatMetricValue(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "Infinity" : "-Infinity";
  return fmt::format("{:.6g}", value);
}

}  // namespace trainrun
