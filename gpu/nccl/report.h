// What trainrun-nccl-check reports: one measurement per operation and size, as an
// nccl-tests-style table for people and as JSON lines for programs. Plain C++.
//
// The table, per operation (times in microseconds, bandwidths in GB/s = 1e9 B/s):
//
// clang-format off
//   # all_reduce
//   #       size         count      type   redop       time    algbw    busbw  #wrong
//   #        (B)    (elements)                         (us)   (GB/s)   (GB/s)
//             8             2     float     sum      10.25     0.00     0.00       0
//   # all_reduce: avg busbw 12.34 GB/s; peak at 1073741824 B: algbw 26.10, busbw 45.67
//     GB/s; 0 wrong                                              (one line)
// clang-format on
//
// The JSON lines: {"record": "result", "op": ..., "bytes": ..., "count": ...,
// "type": "float", "redop": ..., "time_us": ..., "algbw_gbps": ..., "busbw_gbps": ...,
// "wrong": ...} per operation and size, then one {"record": "summary", "ranks": ...,
// "ops": {OP: {"sizes", "avg_busbw_gbps", "peak_algbw_gbps", "peak_busbw_gbps", "peak_bytes",
// "wrong"}},
// "wrong": ..., "ok": ...}.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "gpu/nccl/bandwidth.h"

namespace trainrun::nccl {

struct Measurement {
  Collective op = Collective::kAllReduce;
  CollectiveShape shape;
  double seconds = 0;  // one operation, the mean over the timed iterations and the ranks
  Bandwidth bandwidth;
  uint64_t wrong = 0;  // elements that differed from the expected value, all ranks summed
};

// "float", and "sum" (or "none" for all_gather), as nccl-tests names them.
std::string_view TypeName();
std::string_view RedopName(Collective op);

// The two header lines and one row of the table above, each ending in '\n'.
std::string TableHeader();
std::string TableRow(const Measurement& m);

struct OpSummary {
  Collective op = Collective::kAllReduce;
  int sizes = 0;              // rows measured
  double avg_busbw_gbps = 0;  // mean over the rows, as nccl-tests' "Avg bus bandwidth"
  // The row of the highest algbw; its busbw is the highest too (one factor per op).
  double peak_algbw_gbps = 0;
  double peak_busbw_gbps = 0;
  size_t peak_bytes = 0;
  uint64_t wrong = 0;
};

// One summary per operation present in `measurements`, in the order they first appear.
std::vector<OpSummary> Summarize(const std::vector<Measurement>& measurements);

// The whole table: `metadata` lines (each gets a leading "# "), then per operation its
// title, header, rows and summary line, then "# wrong: N" over everything.
std::string FormatTable(const std::vector<std::string>& metadata,
                        const std::vector<Measurement>& measurements);

nlohmann::json MeasurementJson(const Measurement& m);
nlohmann::json SummaryJson(int ranks, const std::vector<Measurement>& measurements);

}  // namespace trainrun::nccl
