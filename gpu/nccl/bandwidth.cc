#include "gpu/nccl/bandwidth.h"

#include <cstdint>

namespace trainrun::nccl {
namespace {

constexpr size_t kPatternPeriod = 13;

// The sum over ranks 0..n-1 of InputValue(r, index), exact in integers.
float SumOverRanks(int ranks, size_t index) {
  const double n = ranks;
  return static_cast<float>(n * static_cast<double>(index % kPatternPeriod) + n * (n + 1) / 2);
}

}  // namespace

std::string_view CollectiveName(Collective op) {
  switch (op) {
    case Collective::kAllReduce: return "all_reduce";
    case Collective::kAllGather: return "all_gather";
    case Collective::kReduceScatter: return "reduce_scatter";
  }
  return "?";
}

std::optional<Collective> ParseCollective(std::string_view name) {
  for (Collective op : AllCollectives()) {
    if (CollectiveName(op) == name) return op;
  }
  return std::nullopt;
}

const std::vector<Collective>& AllCollectives() {
  static const std::vector<Collective> kAll = {Collective::kAllReduce, Collective::kAllGather,
                                               Collective::kReduceScatter};
  return kAll;
}

CollectiveShape ShapeOf(Collective op, size_t bytes, int ranks, size_t element_bytes) {
  CollectiveShape shape;
  const size_t n = ranks > 0 ? static_cast<size_t>(ranks) : 1;
  const size_t elements = element_bytes > 0 ? bytes / element_bytes : 0;
  switch (op) {
    case Collective::kAllReduce:
      shape.count = elements;
      shape.send_count = shape.recv_count = elements;
      shape.bytes = elements * element_bytes;
      break;
    case Collective::kAllGather:
      shape.count = elements / n;
      shape.send_count = shape.count;
      shape.recv_count = shape.count * n;
      shape.bytes = shape.count * n * element_bytes;
      break;
    case Collective::kReduceScatter:
      shape.count = elements / n;
      shape.send_count = shape.count * n;
      shape.recv_count = shape.count;
      shape.bytes = shape.count * n * element_bytes;
      break;
  }
  return shape;
}

std::vector<size_t> SizeLadder(size_t min_bytes, size_t max_bytes) {
  std::vector<size_t> sizes;
  if (min_bytes == 0 || min_bytes > max_bytes) return sizes;
  size_t size = min_bytes;
  while (true) {
    sizes.push_back(size);
    if (size > max_bytes / 2) break;  // doubling would pass max_bytes (or overflow)
    size *= 2;
  }
  if (sizes.back() != max_bytes) sizes.push_back(max_bytes);
  return sizes;
}

std::optional<size_t> ParseByteSize(std::string_view text) {
  size_t value = 0;
  size_t i = 0;
  for (; i < text.size() && text[i] >= '0' && text[i] <= '9'; ++i) {
    if (value > (SIZE_MAX - 9) / 10) return std::nullopt;
    value = value * 10 + static_cast<size_t>(text[i] - '0');
  }
  if (i == 0) return std::nullopt;
  int shift = 0;
  if (i + 1 == text.size()) {
    const char unit = static_cast<char>(text[i] & ~0x20);  // upper case
    if (unit == 'K') {
      shift = 10;
    } else if (unit == 'M') {
      shift = 20;
    } else if (unit == 'G') {
      shift = 30;
    } else {
      return std::nullopt;
    }
  } else if (i != text.size()) {
    return std::nullopt;
  }
  if (value == 0 || value > (SIZE_MAX >> shift)) return std::nullopt;
  return value << shift;
}

double BusFactor(Collective op, int ranks) {
  if (ranks <= 1) return 0;
  const double n = ranks;
  return op == Collective::kAllReduce ? 2 * (n - 1) / n : (n - 1) / n;
}

Bandwidth BandwidthOf(Collective op, const CollectiveShape& shape, int ranks, double seconds) {
  Bandwidth bw;
  if (seconds <= 0) return bw;
  bw.algbw_gbps = static_cast<double>(shape.bytes) / seconds / 1e9;
  bw.busbw_gbps = bw.algbw_gbps * BusFactor(op, ranks);
  return bw;
}

float InputValue(int rank, size_t index) {
  return static_cast<float>((rank + 1) + static_cast<int>(index % kPatternPeriod));
}

void FillInput(Collective op, int rank, const CollectiveShape& shape, float* send) {
  // all_gather's input is this rank's part of the result; the others index the whole
  // operation from 0.
  const size_t first = op == Collective::kAllGather ? static_cast<size_t>(rank) * shape.count : 0;
  for (size_t i = 0; i < shape.send_count; ++i) send[i] = InputValue(rank, first + i);
}

float ExpectedValue(Collective op, int rank, int ranks, size_t count, size_t index) {
  switch (op) {
    case Collective::kAllReduce: return SumOverRanks(ranks, index);
    case Collective::kAllGather: return InputValue(static_cast<int>(index / count), index);
    case Collective::kReduceScatter:
      return SumOverRanks(ranks, static_cast<size_t>(rank) * count + index);
  }
  return 0;
}

uint64_t CountWrong(Collective op, int rank, int ranks, const CollectiveShape& shape,
                    const float* received) {
  uint64_t wrong = 0;
  for (size_t i = 0; i < shape.recv_count; ++i) {
    // Exact comparison: every expected value is a small integer a float holds exactly.
    if (received[i] != ExpectedValue(op, rank, ranks, shape.count, i)) ++wrong;
  }
  return wrong;
}

}  // namespace trainrun::nccl
