// The run lease: how run history tells a run whose trainrun died without a word
// (SIGKILL, power loss, a node gone) from one that is still running.
//
// While a run is not final, the trainrun that keeps its record (the only node, or
// the head) renews a small object beside run.json, `<experiment>/<runId>/lease.json`,
// every lease interval (one PUT of about 300 bytes). Each renewal says until when
// the lease holds: kLeaseIntervals intervals from now, so a renewal or two may fail
// (a store hiccup) without the run looking lost. A reader judges a run Lost when its
// record is not final and its lease ran out more than a clock-skew margin ago, by
// the reader's clock. Lost is a reader's verdict, never written: a trainrun that
// was only cut off from the store renews again when it comes back, and its run is
// Running again. Records without a lease object (older trainruns, or the moment
// between the first run.json and the first lease) are shown as they say.
//
// lease.json (fields in camelCase):
//   renewedAt, expiresAt (ISO 8601, the writer's clock), intervalSeconds,
//   renewals (1 for the first), host, pid (trainrun's), runDirectory (the node's
//   local run directory: where its files stay).
#pragma once

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include <nlohmann/json.hpp>

#include "base/clock.h"
#include "base/status.h"
#include "runtime/report/reporter.h"
#include "runtime/run/history.h"
#include "runtime/run/run_record.h"
#include "runtime/store/store.h"

namespace trainrun {

constexpr const char* kLeaseName = "lease.json";
// How often trainrun renews the lease (`trainrun run --lease-interval`).
constexpr auto kDefaultLeaseInterval = std::chrono::seconds(15);
// A lease holds this many intervals past its renewal.
constexpr int kLeaseIntervals = 4;
// How far a reader's clock may be ahead of the writer's before a lease that ran
// out means Lost (`trainrun history --clock-skew-margin`).
constexpr auto kDefaultClockSkewMargin = std::chrono::seconds(30);

struct RunLease {
  WallTime renewed{};
  WallTime expires{};
  double interval_seconds = 0;
  uint64_t renewals = 0;
  std::string host;
  int pid = 0;
  std::string run_directory;

  nlohmann::json ToJson() const;
  // Reads what ToJson wrote; kInvalidArgument when renewedAt or expiresAt is
  // missing or not a time. Unknown fields are ignored.
  static Result<RunLease> FromJson(const nlohmann::json& json);
};

// The lease renewed at `now`: expires kLeaseIntervals * `interval` after it.
// `renewals` counts this one. host, pid and run_directory come from `base`.
RunLease RenewedLease(const RunLease& base, WallTime now, Duration interval, uint64_t renewals);

// What a reader concludes of a run that may have been lost.
struct LostRun {
  WallTime since{};           // when its lease ran out
  WallTime last_renewed{};    // the last renewal that reached history
  RunStatus last_status{};    // what the record still says (Preparing, Running, Finalizing)
  std::string host;           // where its trainrun ran
  int pid = 0;                // trainrun's pid there
  std::string run_directory;  // where its local files were, on that host
};

// Lost when `record` is not final, `lease` is there and `now` is more than
// `margin` past its expiry; nullopt otherwise (a final record always wins, and no
// lease means "as the record says").
std::optional<LostRun> JudgeLease(const RunRecord& record, const std::optional<RunLease>& lease,
                                  WallTime now, Duration margin);

// The run's lease in `store`: nullopt when there is none; an error when it cannot
// be read (the message names the object) or is not a lease.
Result<std::optional<RunLease>> ReadLease(Store* store, const RunKey& key);
Status WriteLease(Store* store, const RunKey& key, const RunLease& lease);

// Renews a run's lease from a thread of its own, every `interval` of `clock`.
// Start() writes the first lease at once; renewals that fail are reported (once,
// as a warning, and again when they work again) and retried at the next interval.
// Stop() ends renewing; Release() deletes the lease once the final record is in
// history. Not copyable; every method from one thread (the run's), except that
// the renewing thread calls `reporter`.
class LeaseKeeper {
 public:
  // Not owned: `store`, `reporter`, `clock`; they must outlive this object.
  // `base` gives host, pid and run directory.
  LeaseKeeper(Store* store, RunKey key, RunLease base, Duration interval, Reporter* reporter,
              Clock* clock = SystemClock());
  // Stops (without deleting the lease, which then runs out: a run that ends
  // without a final record in history is Lost, as it should be).
  ~LeaseKeeper();
  LeaseKeeper(const LeaseKeeper&) = delete;
  LeaseKeeper& operator=(const LeaseKeeper&) = delete;

  // Writes the first lease and starts the renewing thread. The first write's
  // failure is returned (and the thread renews anyway).
  Status Start();
  // Renews when an interval has passed since the last attempt, by `clock`: the
  // step the thread repeats, public for tests with a fake clock. Returns whether
  // it tried.
  bool RenewIfDue();
  // Ends the thread; no renewal starts after it returns.
  void Stop();
  // Stop(), then deletes the lease object.
  Status Release();

  // Renewals that reached the store (the first write included).
  uint64_t renewals() const;
  // When the next renewal is due, by `clock`.
  TimePoint next_due() const;

 private:
  Status Renew();  // one write, now

  Store* store_;
  RunKey key_;
  RunLease base_;
  Duration interval_;
  Reporter* reporter_;
  Clock* clock_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;      // guarded by mu_
  uint64_t renewals_ = 0;  // guarded by mu_
  TimePoint next_due_{};   // guarded by mu_
  bool failing_ = false;   // only the thread that renews
  std::thread thread_;
};

}  // namespace trainrun
