#include "gpu/nccl/collective_runner.h"

#include <cuda_runtime.h>
#include <nccl.h>
#include <unistd.h>

#include <cstring>

#include <fmt/format.h>

namespace trainrun::nccl {
namespace {

Status CudaError(cudaError_t err, std::string_view call) {
  return InternalError(
      fmt::format("{}: {} ({})", call, cudaGetErrorString(err), cudaGetErrorName(err)));
}

Status NcclError(ncclResult_t err, std::string_view call, ncclComm_t comm = nullptr) {
  std::string detail = comm ? ncclGetLastError(comm) : ncclGetLastError(nullptr);
  return UnavailableError(
      fmt::format("{}: {}{}{}", call, ncclGetErrorString(err), detail.empty() ? "" : ": ", detail));
}

#define TR_CUDA(call)                                                       \
  do {                                                                      \
    cudaError_t tr_cuda_err_ = (call);                                      \
    if (tr_cuda_err_ != cudaSuccess) return CudaError(tr_cuda_err_, #call); \
  } while (false)

#define TR_NCCL(call, comm)                                                       \
  do {                                                                            \
    ncclResult_t tr_nccl_err_ = (call);                                           \
    if (tr_nccl_err_ != ncclSuccess) return NcclError(tr_nccl_err_, #call, comm); \
  } while (false)

constexpr size_t kDescriptionBytes = 256;

}  // namespace

struct CollectiveRunner::State {
  int rank = 0;
  int ranks = 1;
  int device = 0;
  size_t max_bytes = 0;
  ncclComm_t comm = nullptr;
  cudaStream_t stream = nullptr;
  cudaEvent_t start = nullptr;
  cudaEvent_t stop = nullptr;
  void* send = nullptr;
  void* recv = nullptr;
  double* scratch = nullptr;  // two doubles, for combining time and wrong over ranks
  std::vector<float> host;    // fill and check, max_bytes / 4 elements

  ~State() {
    // Teardown errors are not worth more than the process exit that follows.
    if (comm) ncclCommDestroy(comm);
    if (start) cudaEventDestroy(start);
    if (stop) cudaEventDestroy(stop);
    if (stream) cudaStreamDestroy(stream);
    cudaFree(send);
    cudaFree(recv);
    cudaFree(scratch);
  }

  ncclResult_t Launch(Collective op, size_t count) {
    switch (op) {
      case Collective::kAllReduce:
        return ncclAllReduce(send, recv, count, ncclFloat, ncclSum, comm, stream);
      case Collective::kAllGather: return ncclAllGather(send, recv, count, ncclFloat, comm, stream);
      case Collective::kReduceScatter:
        return ncclReduceScatter(send, recv, count, ncclFloat, ncclSum, comm, stream);
    }
    return ncclInvalidArgument;
  }

  // Waits for the stream; a communicator that failed asynchronously (a peer gone, a
  // network error) is an error here rather than a silent hang later.
  Status Sync(std::string_view what) {
    cudaError_t err = cudaStreamSynchronize(stream);
    if (err != cudaSuccess) return CudaError(err, what);
    ncclResult_t async = ncclSuccess;
    TR_NCCL(ncclCommGetAsyncError(comm, &async), comm);
    if (async != ncclSuccess) return NcclError(async, what, comm);
    return Status::Ok();
  }
};

Result<int> VisibleGpuCount() {
  int count = 0;
  cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) {
    int driver = 0;
    cudaDriverGetVersion(&driver);
    // Without a driver CUDA says "driver version is insufficient"; say what it means.
    return NotFoundError(fmt::format("{}{} ({})", driver == 0 ? "no NVIDIA driver is loaded: " : "",
                                     cudaGetErrorString(err), cudaGetErrorName(err)));
  }
  if (count == 0) return NotFoundError("CUDA sees no device");
  return count;
}

std::string VersionLine() {
  int nccl = 0;
  int runtime = 0;
  int driver = 0;
  ncclGetVersion(&nccl);
  cudaRuntimeGetVersion(&runtime);
  cudaDriverGetVersion(&driver);
  return fmt::format("NCCL {}.{}.{}, CUDA runtime {}.{}, driver {}.{}", nccl / 10000,
                     nccl / 100 % 100, nccl % 100, runtime / 1000, runtime % 1000 / 10,
                     driver / 1000, driver % 1000 / 10);
}

Result<std::string> MakeUniqueId() {
  ncclUniqueId id;
  TR_NCCL(ncclGetUniqueId(&id), nullptr);
  return std::string(id.internal, sizeof(id.internal));
}

CollectiveRunner::CollectiveRunner(std::unique_ptr<State> state) : state_(std::move(state)) {}
CollectiveRunner::~CollectiveRunner() = default;

Result<std::unique_ptr<CollectiveRunner>> CollectiveRunner::Create(int rank, int ranks, int device,
                                                                   const std::string& unique_id,
                                                                   size_t max_bytes) {
  ncclUniqueId id;
  if (unique_id.size() != sizeof(id.internal)) {
    return InvalidArgumentError(fmt::format("the NCCL unique id has {} bytes, not {}",
                                            unique_id.size(), sizeof(id.internal)));
  }
  std::memcpy(id.internal, unique_id.data(), sizeof(id.internal));
  auto s = std::make_unique<State>();
  s->rank = rank;
  s->ranks = ranks;
  s->device = device;
  s->max_bytes = std::max(max_bytes, kDescriptionBytes * ranks);
  TR_CUDA(cudaSetDevice(device));
  TR_CUDA(cudaStreamCreateWithFlags(&s->stream, cudaStreamNonBlocking));
  TR_CUDA(cudaEventCreate(&s->start));
  TR_CUDA(cudaEventCreate(&s->stop));
  TR_CUDA(cudaMalloc(&s->send, s->max_bytes));
  TR_CUDA(cudaMalloc(&s->recv, s->max_bytes));
  TR_CUDA(cudaMalloc(&s->scratch, 2 * sizeof(double)));
  s->host.resize(s->max_bytes / sizeof(float));
  TR_NCCL(ncclCommInitRank(&s->comm, ranks, id, rank), nullptr);
  return std::unique_ptr<CollectiveRunner>(new CollectiveRunner(std::move(s)));
}

Result<std::vector<std::string>> CollectiveRunner::DescribeDevices() {
  State& s = *state_;
  cudaDeviceProp prop{};
  TR_CUDA(cudaGetDeviceProperties(&prop, s.device));
  char bus_id[32] = {};
  TR_CUDA(cudaDeviceGetPCIBusId(bus_id, sizeof(bus_id), s.device));
  char host[256] = {};
  gethostname(host, sizeof(host) - 1);
  std::string mine =
      fmt::format("rank {}: {}, cuda:{} {} ({}, {:.0f} GiB)", s.rank, host, s.device, prop.name,
                  bus_id, static_cast<double>(prop.totalGlobalMem) / (1ull << 30));
  mine.resize(kDescriptionBytes - 1);  // pads with NULs; the last byte stays NUL
  mine.push_back('\0');
  TR_CUDA(
      cudaMemcpyAsync(s.send, mine.data(), kDescriptionBytes, cudaMemcpyHostToDevice, s.stream));
  TR_NCCL(ncclAllGather(s.send, s.recv, kDescriptionBytes, ncclChar, s.comm, s.stream), s.comm);
  std::string all(kDescriptionBytes * s.ranks, '\0');
  TR_CUDA(cudaMemcpyAsync(all.data(), s.recv, all.size(), cudaMemcpyDeviceToHost, s.stream));
  TR_RETURN_IF_ERROR(s.Sync("all_gather of device descriptions"));
  std::vector<std::string> lines;
  for (int r = 0; r < s.ranks; ++r) lines.emplace_back(all.data() + r * kDescriptionBytes);
  return lines;
}

Result<Measurement> CollectiveRunner::Run(Collective op, size_t bytes, int iterations, int warmup) {
  State& s = *state_;
  Measurement m;
  m.op = op;
  m.shape = ShapeOf(op, std::min(bytes, s.max_bytes), s.ranks, sizeof(float));
  if (m.shape.count == 0) return m;
  const std::string what = fmt::format("{} of {} B", CollectiveName(op), m.shape.bytes);

  // Correctness: known inputs, a receive buffer of NaNs (0xFF bytes), one run, every
  // element checked on the host. Every copy goes through the collective's own stream:
  // the stream is non-blocking, so a plain cudaMemcpy (legacy default stream; from
  // pageable memory it may return before the data has landed) is not ordered before
  // the collective. The H200 run caught exactly that as wrong elements.
  FillInput(op, s.rank, m.shape, s.host.data());
  TR_CUDA(cudaMemcpyAsync(s.send, s.host.data(), m.shape.send_count * sizeof(float),
                          cudaMemcpyHostToDevice, s.stream));
  TR_CUDA(cudaMemsetAsync(s.recv, 0xFF, m.shape.recv_count * sizeof(float), s.stream));
  TR_NCCL(s.Launch(op, m.shape.count), s.comm);
  TR_CUDA(cudaMemcpyAsync(s.host.data(), s.recv, m.shape.recv_count * sizeof(float),
                          cudaMemcpyDeviceToHost, s.stream));
  TR_RETURN_IF_ERROR(s.Sync(what));
  const uint64_t wrong = CountWrong(op, s.rank, s.ranks, m.shape, s.host.data());

  for (int i = 0; i < warmup; ++i) TR_NCCL(s.Launch(op, m.shape.count), s.comm);
  TR_RETURN_IF_ERROR(s.Sync(what));
  TR_CUDA(cudaEventRecord(s.start, s.stream));
  for (int i = 0; i < iterations; ++i) TR_NCCL(s.Launch(op, m.shape.count), s.comm);
  TR_CUDA(cudaEventRecord(s.stop, s.stream));
  TR_RETURN_IF_ERROR(s.Sync(what));
  float ms = 0;
  TR_CUDA(cudaEventElapsedTime(&ms, s.start, s.stop));

  // Every rank's mean time and wrong count, summed over ranks in one all_reduce.
  double local[2] = {static_cast<double>(ms) / 1e3 / std::max(iterations, 1),
                     static_cast<double>(wrong)};
  double total[2];
  TR_CUDA(cudaMemcpyAsync(s.scratch, local, sizeof(local), cudaMemcpyHostToDevice, s.stream));
  TR_NCCL(ncclAllReduce(s.scratch, s.scratch, 2, ncclDouble, ncclSum, s.comm, s.stream), s.comm);
  TR_CUDA(cudaMemcpyAsync(total, s.scratch, sizeof(total), cudaMemcpyDeviceToHost, s.stream));
  TR_RETURN_IF_ERROR(s.Sync("all_reduce of the results"));
  m.seconds = total[0] / s.ranks;
  m.wrong = static_cast<uint64_t>(total[1]);
  m.bandwidth = BandwidthOf(op, m.shape, s.ranks, m.seconds);
  return m;
}

}  // namespace trainrun::nccl
