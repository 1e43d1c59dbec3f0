// Handing NCCL's unique id from rank 0 to every other rank over one small TCP
// exchange at MASTER_ADDR:MASTER_PORT, so a job needs neither MPI nor a shared file
// system to create a communicator. Nothing here needs CUDA: the id is opaque bytes
// (NCCL_UNIQUE_ID_BYTES, 128, for NCCL), made by a function the caller passes.
//
// Rank 0 listens and answers each other rank once; the others connect with retries
// (rank 0 may start later than they do) until a deadline. The frames, all integers
// in network byte order:
//
// clang-format off
//   rank r -> rank 0   hello   "TRID" | u16 version (1) | u16 0 | u32 rank | u32 world_size
//   rank 0 -> rank r   answer  "TRID" | u16 version (1) | u16 verdict | u32 length | id bytes
//                      verdict 0: the id follows (length bytes, at most kMaxUniqueIdBytes);
//                      verdict 1: refused (another world size, a rank out of range or
//                      already served), length 0
// clang-format on
//
// A connection whose hello is not a hello (a port scanner, a stale client of another
// protocol) is closed and ignored; a rank that disagrees about the job is refused and
// fails the exchange on both sides.
#pragma once

#include <chrono>
#include <functional>
#include <string>

#include "base/clock.h"
#include "base/status.h"

namespace trainrun::nccl {

constexpr size_t kMaxUniqueIdBytes = 4096;
constexpr auto kDefaultExchangeTimeout = std::chrono::seconds(120);

struct ExchangeOptions {
  std::string master_addr;  // where rank 0 listens, as the other ranks reach it
  int master_port = 0;
  int rank = 0;
  int world_size = 1;
  // Every rank gives up after this long: rank 0 when some rank never came, the others
  // when rank 0 could not be reached or did not answer.
  Duration timeout = kDefaultExchangeTimeout;
};

// Rank 0's side: a listening socket, then one answer per other rank.
// Not thread-safe; owns its socket and closes it when destroyed.
class UniqueIdServer {
 public:
  // Listens on 0.0.0.0:`port` (0: any free port; see port()). kUnavailable when the
  // port is taken.
  static Result<UniqueIdServer> Listen(int port);

  UniqueIdServer(UniqueIdServer&& other) noexcept;
  UniqueIdServer& operator=(UniqueIdServer&& other) noexcept;
  ~UniqueIdServer();

  int port() const { return port_; }

  // Answers ranks 1 .. world_size-1 with `id` (at most kMaxUniqueIdBytes), each once,
  // and returns when all have it. kUnavailable naming the ranks still missing when
  // `timeout` passes; kInvalidArgument naming the rank and its view when a rank
  // disagrees about the world size or comes twice (that rank is refused).
  Status Serve(const std::string& id, int world_size, Duration timeout);

 private:
  explicit UniqueIdServer(int fd, int port) : fd_(fd), port_(port) {}
  int fd_ = -1;
  int port_ = 0;
};

// Another rank's side: connects to master_addr:master_port, retrying with backoff
// while nobody listens, and returns the id rank 0 sends. kUnavailable naming the
// address when rank 0 cannot be reached or does not answer before the timeout;
// kInvalidArgument when rank 0 refused this rank; kIoError for a malformed answer.
Result<std::string> FetchUniqueId(const ExchangeOptions& options);

// The whole exchange for one rank: rank 0 listens on master_port, calls `make_id`
// and serves what it returns; every other rank fetches. Returns the same id on every
// rank, or the first error (make_id's own included). world_size 1 needs no socket.
Result<std::string> ExchangeUniqueId(const ExchangeOptions& options,
                                     const std::function<Result<std::string>()>& make_id);

}  // namespace trainrun::nccl
