// The arithmetic of a collective benchmark, as nccl-tests does it: which buffer sizes
// an operation of a given size uses, the values each rank fills in and the result it
// must get back, and the algorithm and bus bandwidth of a measured time. Plain C++ (no
// CUDA), so it is tested on known inputs without a GPU.
//
// Sizes follow nccl-tests' "size" column: the larger of the two buffers, in bytes.
// With n ranks and elements of e bytes:
//
// clang-format off
//   op              send   recv   size (B)   algbw = bytes / time   busbw
//   all_reduce      c      c      c*e        c*e / t                algbw * 2(n-1)/n
//   all_gather      c      c*n    c*n*e      c*n*e / t              algbw * (n-1)/n
//   reduce_scatter  c*n    c      c*n*e      c*n*e / t              algbw * (n-1)/n
// clang-format on
//
// where send and recv are the buffers' element counts, c is the "count" column
// (elements per rank for all_gather and reduce_scatter), e the element size. Bus
// bandwidth is the figure that does not depend on n: each byte
// of a ring all-reduce crosses 2(n-1)/n links, of an all-gather or reduce-scatter
// (n-1)/n; it is comparable with the hardware's link bandwidth. GB/s are 1e9 bytes
// per second.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

namespace trainrun::nccl {

enum class Collective { kAllReduce, kAllGather, kReduceScatter };

// "all_reduce", "all_gather", "reduce_scatter".
std::string_view CollectiveName(Collective op);
// The inverse; nothing for another name.
std::optional<Collective> ParseCollective(std::string_view name);
// All three, in the order they run.
const std::vector<Collective>& AllCollectives();

struct CollectiveShape {
  size_t count = 0;       // the "count" column: elements per rank (c above)
  size_t send_count = 0;  // elements in each rank's send buffer
  size_t recv_count = 0;  // elements in each rank's receive buffer
  size_t bytes = 0;       // the "size" column: c*e for all_reduce, c*n*e otherwise
};

// The shape of `op` for a requested size of `bytes` over `ranks` ranks with elements
// of `element_bytes`: the count is rounded down so every buffer holds whole elements
// and, for all_gather and reduce_scatter, n equal parts. A count of 0 (a size too
// small for n ranks) is returned as such; callers skip it.
CollectiveShape ShapeOf(Collective op, size_t bytes, int ranks, size_t element_bytes);

// min_bytes, 2*min_bytes, ... up to and including max_bytes (and max_bytes itself
// when it is not min_bytes times a power of two). Empty when min_bytes is 0 or
// greater than max_bytes.
std::vector<size_t> SizeLadder(size_t min_bytes, size_t max_bytes);

// A size as nccl-tests' -b/-e take it: bytes, or a number with K, M or G (binary
// multiples: 1K = 1024). Nothing for anything else, 0 included.
std::optional<size_t> ParseByteSize(std::string_view text);

struct Bandwidth {
  double algbw_gbps = 0;  // bytes / time, in 1e9 bytes per second
  double busbw_gbps = 0;  // algbw times the factor of the table above
};

// The bandwidth of one operation of `shape` over `ranks` ranks that took `seconds`.
// Zero for a time that is not positive.
Bandwidth BandwidthOf(Collective op, const CollectiveShape& shape, int ranks, double seconds);

// The bus factor of the table above: 2(n-1)/n or (n-1)/n (0 for one rank).
double BusFactor(Collective op, int ranks);

// The values ranks fill in, chosen so every reduced value is a small integer that a
// float holds exactly for any realistic rank count: element i of rank r's input is
// (r + 1) + (i mod 13), where i is the element's index in the whole operation (for
// all_gather, rank r's input is elements r*c .. r*c+c-1 of the result).
float InputValue(int rank, size_t index);

// Fills rank `rank`'s send buffer (shape.send_count elements) for `op`.
void FillInput(Collective op, int rank, const CollectiveShape& shape, float* send);

// The value element `index` of `rank`'s receive buffer must hold after `op` over
// `ranks` ranks with per-rank count `count` (sums for all_reduce and reduce_scatter).
float ExpectedValue(Collective op, int rank, int ranks, size_t count, size_t index);

// How many of rank `rank`'s received elements differ from ExpectedValue.
uint64_t CountWrong(Collective op, int rank, int ranks, const CollectiveShape& shape,
                    const float* received);

}  // namespace trainrun::nccl
