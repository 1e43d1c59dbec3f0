#include "runtime/run/run_lease.h"

#include <fmt/format.h>

namespace trainrun {

using nlohmann::json;

json RunLease::ToJson() const {
  return {{"renewedAt", FormatIso8601(renewed)},
          {"expiresAt", FormatIso8601(expires)},
          {"intervalSeconds", interval_seconds},
          {"renewals", renewals},
          {"host", host},
          {"pid", pid},
          {"runDirectory", run_directory}};
}

Result<RunLease> RunLease::FromJson(const json& j) {
  if (!j.is_object()) return InvalidArgumentError("lease is not a JSON object");
  RunLease lease;
  try {
    if (!ParseIso8601(j.value("renewedAt", ""), &lease.renewed)) {
      return InvalidArgumentError("lease has no renewedAt time");
    }
    if (!ParseIso8601(j.value("expiresAt", ""), &lease.expires)) {
      return InvalidArgumentError("lease has no expiresAt time");
    }
    lease.interval_seconds = j.value("intervalSeconds", 0.0);
    lease.renewals = j.value("renewals", uint64_t{0});
    lease.host = j.value("host", "");
    lease.pid = j.value("pid", 0);
    lease.run_directory = j.value("runDirectory", "");
  } catch (const json::exception& e) {
    return InvalidArgumentError(fmt::format("lease: {}", e.what()));
  }
  return lease;
}

RunLease RenewedLease(const RunLease& base, WallTime now, Duration interval, uint64_t renewals) {
  RunLease lease = base;
  lease.renewed = now;
  lease.expires = now + std::chrono::duration_cast<WallTime::duration>(interval * kLeaseIntervals);
  lease.interval_seconds = ToSeconds(interval);
  lease.renewals = renewals;
  return lease;
}

std::optional<LostRun> JudgeLease(const RunRecord& record, const std::optional<RunLease>& lease,
                                  WallTime now, Duration margin) {
  if (IsFinal(record.status) || !lease) return std::nullopt;
  if (now <= lease->expires + std::chrono::duration_cast<WallTime::duration>(margin)) {
    return std::nullopt;
  }
  return LostRun{.since = lease->expires,
                 .last_renewed = lease->renewed,
                 .last_status = record.status,
                 .host = lease->host,
                 .pid = lease->pid,
                 .run_directory = lease->run_directory};
}

Result<std::optional<RunLease>> ReadLease(Store* store, const RunKey& key) {
  const std::string name = key.Prefix() + kLeaseName;
  Result<std::string> text = store->GetBytes(name);
  if (!text.ok()) {
    if (text.status().code() == StatusCode::kNotFound) return std::optional<RunLease>();
    return text.status();
  }
  json j = json::parse(*text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    return InvalidArgumentError(fmt::format("{}/{}: not valid JSON", store->Uri(), name));
  }
  Result<RunLease> lease = RunLease::FromJson(j);
  if (!lease.ok()) return lease.status().WithContext(fmt::format("{}/{}", store->Uri(), name));
  return std::optional<RunLease>(std::move(lease).value());
}

Status WriteLease(Store* store, const RunKey& key, const RunLease& lease) {
  return store->PutBytes(key.Prefix() + kLeaseName, lease.ToJson().dump() + "\n");
}

LeaseKeeper::LeaseKeeper(Store* store, RunKey key, RunLease base, Duration interval,
                         Reporter* reporter, Clock* clock)
    : store_(store),
      key_(std::move(key)),
      base_(std::move(base)),
      interval_(interval),
      reporter_(reporter),
      clock_(clock) {}

LeaseKeeper::~LeaseKeeper() { Stop(); }

Status LeaseKeeper::Start() {
  {
    std::lock_guard lock(mu_);
    next_due_ = clock_->Now() + interval_;
  }
  Status first = Renew();
  if (!thread_.joinable()) {
    thread_ = std::thread([this] {
      std::unique_lock lock(mu_);
      while (!stop_) {
        // Sleeps until the next renewal is due by the clock (at least a millisecond,
        // so a clock that does not move cannot spin).
        const Duration left =
            std::max<Duration>(next_due_ - clock_->Now(), std::chrono::milliseconds(1));
        cv_.wait_for(lock, left, [this] { return stop_; });
        if (stop_) return;
        lock.unlock();
        RenewIfDue();
        lock.lock();
      }
    });
  }
  return first;
}

bool LeaseKeeper::RenewIfDue() {
  {
    std::lock_guard lock(mu_);
    const TimePoint now = clock_->Now();
    if (stop_ || now < next_due_) return false;
    // The next one is an interval after this attempt, whether it works or not: a
    // store that is down is tried once an interval, not in a loop.
    next_due_ = now + interval_;
  }
  Renew().IgnoreError();  // reported inside
  return true;
}

Status LeaseKeeper::Renew() {
  uint64_t count;
  {
    std::lock_guard lock(mu_);
    count = renewals_ + 1;
  }
  const RunLease lease = RenewedLease(base_, clock_->WallNow(), interval_, count);
  Status written = WriteLease(store_, key_, lease);
  if (written.ok()) {
    {
      std::lock_guard lock(mu_);
      renewals_ = count;
    }
    if (failing_) {
      failing_ = false;
      reporter_->Info(fmt::format("the run's lease in {} is renewed again", store_->Uri()));
    }
    return written;
  }
  if (!failing_) {
    failing_ = true;
    reporter_->Warning(fmt::format(
        "the run's lease could not be renewed in {} ({}); trying again every {:.0f} s (should "
        "none get through for {:.0f} s, `trainrun history` shows the run as Lost until one does)",
        store_->Uri(), written.message(), ToSeconds(interval_),
        ToSeconds(interval_ * kLeaseIntervals)));
  }
  return written;
}

void LeaseKeeper::Stop() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

Status LeaseKeeper::Release() {
  Stop();
  return store_->Delete(key_.Prefix() + kLeaseName);
}

uint64_t LeaseKeeper::renewals() const {
  std::lock_guard lock(mu_);
  return renewals_;
}

TimePoint LeaseKeeper::next_due() const {
  std::lock_guard lock(mu_);
  return next_due_;
}

}  // namespace trainrun
