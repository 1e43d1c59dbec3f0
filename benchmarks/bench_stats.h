// Medians, p99s and fixed-width tables for the benchmarks.
#pragma once

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include <fmt/format.h>

namespace trainrun::bench {

// The p-th percentile (0-100) by nearest rank; NaN for no samples.
inline double Percentile(std::vector<double> samples, double p) {
  if (samples.empty()) return NAN;
  std::sort(samples.begin(), samples.end());
  size_t rank = static_cast<size_t>(std::ceil(p / 100.0 * samples.size()));
  return samples[std::clamp<size_t>(rank, 1, samples.size()) - 1];
}
inline double Median(const std::vector<double>& s) { return Percentile(s, 50); }
inline double P99(const std::vector<double>& s) { return Percentile(s, 99); }

// "12.3 ms", "1.52 s", or a note when there is no value.
inline std::string Seconds(double s, const std::string& none = "-") {
  if (std::isnan(s)) return none;
  if (s < 1) return fmt::format("{:.1f} ms", s * 1000);
  return fmt::format("{:.2f} s", s);
}

inline std::string Ratio(double peer, double ours) {
  if (std::isnan(peer) || std::isnan(ours) || ours <= 0) return "-";
  return fmt::format("{:.1f}x", peer / ours);
}

}  // namespace trainrun::bench
