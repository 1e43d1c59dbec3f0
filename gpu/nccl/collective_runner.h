// The GPU half of trainrun-nccl-check: one rank's CUDA device, NCCL communicator,
// stream and buffers, and the timed, checked runs of each collective. Built only with
// TRAINRUN_WITH_CUDA; the header itself names no CUDA or NCCL type.
//
// Every call is collective where it says so: all ranks must make it, in the same order
// with the same arguments, or NCCL waits for the missing ones. Not thread-safe.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "base/status.h"
#include "gpu/nccl/report.h"

namespace trainrun::nccl {

// The GPUs this process can use. kNotFound, with CUDA's reason ("no CUDA-capable
// device is detected", "CUDA driver version is insufficient"...), when there are none.
Result<int> VisibleGpuCount();

// "NCCL 2.28.9, CUDA runtime 13.0, driver 13.0".
std::string VersionLine();

// A new NCCL unique id (NCCL_UNIQUE_ID_BYTES bytes) for rank 0 to hand out.
Result<std::string> MakeUniqueId();

class CollectiveRunner {
 public:
  // Selects CUDA device `device`, creates the communicator of `ranks` ranks from
  // `unique_id` (collective) and allocates send and receive buffers of `max_bytes`
  // each. Errors name the CUDA or NCCL call and its reason.
  static Result<std::unique_ptr<CollectiveRunner>> Create(int rank, int ranks, int device,
                                                          const std::string& unique_id,
                                                          size_t max_bytes);
  ~CollectiveRunner();

  // Every rank's "rank R: HOST, cuda:D NAME (PCI BUS ID)", in rank order (collective).
  Result<std::vector<std::string>> DescribeDevices();

  // Runs `op` at `bytes` (at most max_bytes): fills the inputs, runs once and checks
  // every received element, runs `warmup` more times, then times `iterations` runs.
  // The time and the wrong count are combined over ranks (collective): the mean time
  // and the sum of wrong elements. A size too small for the ranks gives shape.count 0
  // and runs nothing.
  Result<Measurement> Run(Collective op, size_t bytes, int iterations, int warmup);

  CollectiveRunner(const CollectiveRunner&) = delete;
  CollectiveRunner& operator=(const CollectiveRunner&) = delete;

 private:
  struct State;
  explicit CollectiveRunner(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

}  // namespace trainrun::nccl
