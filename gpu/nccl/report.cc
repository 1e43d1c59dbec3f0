#include "gpu/nccl/report.h"

#include <fmt/format.h>

namespace trainrun::nccl {
namespace {

// nccl-tests' precision: fewer decimals as the time grows, so the column stays 9 wide.
std::string FormatMicroseconds(double us) {
  if (us >= 10000.0) return fmt::format("{:9.0f}", us);
  if (us >= 100.0) return fmt::format("{:9.1f}", us);
  return fmt::format("{:9.2f}", us);
}

}  // namespace

std::string_view TypeName() { return "float"; }

std::string_view RedopName(Collective op) { return op == Collective::kAllGather ? "none" : "sum"; }

std::string TableHeader() {
  return fmt::format("#{:>11}  {:>12}  {:>8}  {:>6}  {:>9}  {:>7}  {:>7}  {:>6}\n", "size", "count",
                     "type", "redop", "time", "algbw", "busbw", "#wrong") +
         fmt::format("#{:>11}  {:>12}  {:>8}  {:>6}  {:>9}  {:>7}  {:>7}  {:>6}\n", "(B)",
                     "(elements)", "", "", "(us)", "(GB/s)", "(GB/s)", "");
}

std::string TableRow(const Measurement& m) {
  return fmt::format("{:>12}  {:>12}  {:>8}  {:>6}  {}  {:7.2f}  {:7.2f}  {:>6}\n", m.shape.bytes,
                     m.shape.count, TypeName(), RedopName(m.op),
                     FormatMicroseconds(m.seconds * 1e6), m.bandwidth.algbw_gbps,
                     m.bandwidth.busbw_gbps, m.wrong);
}

std::vector<OpSummary> Summarize(const std::vector<Measurement>& measurements) {
  std::vector<OpSummary> out;
  for (const Measurement& m : measurements) {
    OpSummary* s = nullptr;
    for (OpSummary& existing : out) {
      if (existing.op == m.op) s = &existing;
    }
    if (!s) {
      out.push_back(OpSummary{.op = m.op});
      s = &out.back();
    }
    s->avg_busbw_gbps += m.bandwidth.busbw_gbps;  // a sum until the end
    ++s->sizes;
    if (m.bandwidth.algbw_gbps > s->peak_algbw_gbps || s->sizes == 1) {
      s->peak_algbw_gbps = m.bandwidth.algbw_gbps;
      s->peak_busbw_gbps = m.bandwidth.busbw_gbps;
      s->peak_bytes = m.shape.bytes;
    }
    s->wrong += m.wrong;
  }
  for (OpSummary& s : out) s.avg_busbw_gbps /= s.sizes;
  return out;
}

std::string FormatTable(const std::vector<std::string>& metadata,
                        const std::vector<Measurement>& measurements) {
  std::string out;
  for (const std::string& line : metadata) out += "# " + line + "\n";
  uint64_t wrong = 0;
  for (const OpSummary& s : Summarize(measurements)) {
    out += fmt::format("# {}\n", CollectiveName(s.op));
    out += TableHeader();
    for (const Measurement& m : measurements) {
      if (m.op == s.op) out += TableRow(m);
    }
    out += fmt::format(
        "# {}: avg busbw {:.2f} GB/s; peak at {} B: algbw {:.2f}, busbw {:.2f} GB/s; {} wrong\n",
        CollectiveName(s.op), s.avg_busbw_gbps, s.peak_bytes, s.peak_algbw_gbps, s.peak_busbw_gbps,
        s.wrong);
    wrong += s.wrong;
  }
  out += fmt::format("# wrong: {}\n", wrong);
  return out;
}

nlohmann::json MeasurementJson(const Measurement& m) {
  return {{"record", "result"},
          {"op", CollectiveName(m.op)},
          {"bytes", m.shape.bytes},
          {"count", m.shape.count},
          {"type", TypeName()},
          {"redop", RedopName(m.op)},
          {"time_us", m.seconds * 1e6},
          {"algbw_gbps", m.bandwidth.algbw_gbps},
          {"busbw_gbps", m.bandwidth.busbw_gbps},
          {"wrong", m.wrong}};
}

nlohmann::json SummaryJson(int ranks, const std::vector<Measurement>& measurements) {
  nlohmann::json ops = nlohmann::json::object();
  uint64_t wrong = 0;
  for (const OpSummary& s : Summarize(measurements)) {
    ops[std::string(CollectiveName(s.op))] = {{"sizes", s.sizes},
                                              {"avg_busbw_gbps", s.avg_busbw_gbps},
                                              {"peak_algbw_gbps", s.peak_algbw_gbps},
                                              {"peak_busbw_gbps", s.peak_busbw_gbps},
                                              {"peak_bytes", s.peak_bytes},
                                              {"wrong", s.wrong}};
    wrong += s.wrong;
  }
  return {
      {"record", "summary"}, {"ranks", ranks}, {"ops", ops}, {"wrong", wrong}, {"ok", wrong == 0}};
}

}  // namespace trainrun::nccl
