#include "base/backoff.h"

#include <algorithm>
#include <thread>

namespace trainrun {
namespace {

class RealSleeperImpl : public Sleeper {
 public:
  void Sleep(Duration d) override { std::this_thread::sleep_for(d); }
};

}  // namespace

Backoff::Backoff(BackoffOptions options, uint64_t seed)
    : options_(options), current_(options.initial), rng_(seed) {}

Duration Backoff::Next() {
  Duration delay = std::min(current_, options_.max);
  ++delays_given_;
  auto next = std::chrono::duration_cast<Duration>(std::chrono::duration<double, Duration::period>(
      static_cast<double>(current_.count()) * options_.multiplier));
  current_ = std::min(next, options_.max);
  if (!options_.jitter || delay.count() <= 1) return delay;
  std::uniform_int_distribution<Duration::rep> pick(delay.count() / 2, delay.count());
  return Duration(pick(rng_));
}

void Backoff::Reset() {
  current_ = options_.initial;
  delays_given_ = 0;
}

Sleeper* RealSleeper() {
  static RealSleeperImpl sleeper;
  return &sleeper;
}

int RetryCall(const RetryOptions& options, const std::function<AttemptOutcome(int)>& attempt,
              const std::function<void(int, Duration)>& on_retry) {
  Backoff backoff(options.backoff);
  int n = 1;
  for (;; ++n) {
    if (attempt(n) == AttemptOutcome::kDone) return n;
    if (n >= options.max_attempts) return n;
    Duration delay = backoff.Next();
    if (options.deadline) {
      TimePoint now = options.clock->Now();
      if (now >= *options.deadline) return n;
      // Never sleep past the deadline; one last attempt there.
      delay = std::min(delay, *options.deadline - now);
    }
    const auto canceled = [&] { return options.canceled && options.canceled(); };
    if (canceled()) return n;
    if (on_retry) on_retry(n, delay);
    if (options.canceled && options.sleeper == RealSleeper()) {
      // In slices, so a cancel ends the wait early.
      const TimePoint until = std::chrono::steady_clock::now() + delay;
      for (Duration left = delay; left > Duration::zero() && !canceled();
           left = until - std::chrono::steady_clock::now()) {
        options.sleeper->Sleep(std::min<Duration>(left, kRetryCancelPoll));
      }
    } else {
      options.sleeper->Sleep(delay);
    }
    if (canceled()) return n;
  }
}

}  // namespace trainrun
