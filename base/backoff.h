// Retrying with exponential backoff.
//
// Backoff hands out the delays: initial, then multiplied each time up to a cap,
// each drawn uniformly from [delay/2, delay] when jitter is on (so a thousand nodes
// that lost the same store do not come back in lockstep), exactly `delay` when it is
// off (tests). RetryCall runs an operation until it succeeds, fails for good, runs
// out of attempts or would pass a deadline; the waiting goes through a Sleeper so
// tests run the whole schedule in microseconds against a FakeClock.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <random>

#include "base/clock.h"
#include "base/status.h"

namespace trainrun {

constexpr auto kDefaultBackoffInitial = std::chrono::milliseconds(200);
constexpr auto kDefaultBackoffMax = std::chrono::seconds(10);
constexpr double kDefaultBackoffMultiplier = 2.0;

struct BackoffOptions {
  Duration initial = kDefaultBackoffInitial;  // the first delay
  Duration max = kDefaultBackoffMax;          // no delay is longer
  double multiplier = kDefaultBackoffMultiplier;
  bool jitter = true;  // off in tests: delays are exact
};

// Not thread-safe; one per retrying caller.
class Backoff {
 public:
  explicit Backoff(BackoffOptions options = {}, uint64_t seed = std::random_device{}());

  // The delay before the next attempt.
  Duration Next();
  // Back to `initial` (after a success).
  void Reset();
  int delays_given() const { return delays_given_; }

 private:
  BackoffOptions options_;
  Duration current_;
  int delays_given_ = 0;
  std::mt19937_64 rng_;
};

// Waits. The real one sleeps; tests advance a FakeClock instead.
class Sleeper {
 public:
  virtual ~Sleeper() = default;
  virtual void Sleep(Duration d) = 0;
};
// Process-wide real sleeper; never null.
Sleeper* RealSleeper();

constexpr int kDefaultRetryAttempts = 6;
constexpr auto kRetryCancelPoll = std::chrono::milliseconds(50);

struct RetryOptions {
  int max_attempts = kDefaultRetryAttempts;  // including the first
  BackoffOptions backoff;
  // No new attempt starts after this (steady clock); none when unset.
  std::optional<TimePoint> deadline;
  Clock* clock = SystemClock();
  Sleeper* sleeper = RealSleeper();
  // Once it says true no new attempt starts; a wait between attempts through the
  // real sleeper polls it every kRetryCancelPoll and ends early. Empty: never.
  std::function<bool()> canceled;
};

// What an attempt tells RetryCall.
enum class AttemptOutcome { kDone, kRetry };

// Calls `attempt(n)` (n = 1, 2, ...) until it returns kDone, or the attempts or the
// deadline run out, or options.canceled() says true. `on_retry(n, delay)` (may be empty) is told
// before each wait. Returns the number of attempts made.
int RetryCall(const RetryOptions& options, const std::function<AttemptOutcome(int)>& attempt,
              const std::function<void(int, Duration)>& on_retry = {});

}  // namespace trainrun
