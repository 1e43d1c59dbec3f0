// Backoff delays and RetryCall, against a fake clock and a sleeper that only
// advances it: the whole schedule runs in microseconds. Also the CancelToken that
// ends retries.
#include "base/backoff.h"

#include <thread>

#include <gtest/gtest.h>

#include "base/cancel.h"
#include "tests/fakes/fake_clock.h"

namespace trainrun {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

class FakeSleeper : public Sleeper {
 public:
  explicit FakeSleeper(testing::FakeClock* clock) : clock_(clock) {}
  void Sleep(Duration d) override {
    slept.push_back(d);
    clock_->Advance(d);
  }
  std::vector<Duration> slept;

 private:
  testing::FakeClock* clock_;
};

TEST(BackoffTest, DoublesUpToTheCapWithoutJitter) {
  Backoff b({milliseconds(100), seconds(1), 2.0, /*jitter=*/false});
  std::vector<Duration> got;
  for (int i = 0; i < 6; ++i) got.push_back(b.Next());
  EXPECT_EQ(got, (std::vector<Duration>{milliseconds(100), milliseconds(200), milliseconds(400),
                                        milliseconds(800), seconds(1), seconds(1)}));
  b.Reset();
  EXPECT_EQ(b.Next(), milliseconds(100));
}

TEST(BackoffTest, JitterStaysBetweenHalfAndTheWholeDelay) {
  Backoff b({milliseconds(100), seconds(10), 2.0, /*jitter=*/true}, /*seed=*/1);
  Duration nominal = milliseconds(100);
  for (int i = 0; i < 8; ++i) {
    Duration d = b.Next();
    EXPECT_GE(d, nominal / 2);
    EXPECT_LE(d, nominal);
    nominal = std::min<Duration>(nominal * 2, seconds(10));
  }
}

TEST(RetryCallTest, RetriesUntilDoneWithTheBackoffSchedule) {
  testing::FakeClock clock;
  FakeSleeper sleeper(&clock);
  RetryOptions options;
  options.backoff = {milliseconds(10), seconds(1), 2.0, false};
  options.clock = &clock;
  options.sleeper = &sleeper;
  int calls = 0;
  std::vector<int> told;
  int attempts = RetryCall(
      options,
      [&](int n) {
        ++calls;
        EXPECT_EQ(n, calls);
        return calls < 3 ? AttemptOutcome::kRetry : AttemptOutcome::kDone;
      },
      [&](int n, Duration) { told.push_back(n); });
  EXPECT_EQ(attempts, 3);
  EXPECT_EQ(sleeper.slept, (std::vector<Duration>{milliseconds(10), milliseconds(20)}));
  EXPECT_EQ(told, (std::vector<int>{1, 2}));
}

TEST(RetryCallTest, StopsAtMaxAttempts) {
  testing::FakeClock clock;
  FakeSleeper sleeper(&clock);
  RetryOptions options;
  options.max_attempts = 4;
  options.backoff.jitter = false;
  options.clock = &clock;
  options.sleeper = &sleeper;
  EXPECT_EQ(RetryCall(options, [](int) { return AttemptOutcome::kRetry; }), 4);
  EXPECT_EQ(sleeper.slept.size(), 3u);
}

TEST(RetryCallTest, NeverSleepsPastTheDeadline) {
  testing::FakeClock clock;
  FakeSleeper sleeper(&clock);
  RetryOptions options;
  options.max_attempts = 1000;
  options.backoff = {seconds(1), seconds(8), 2.0, false};
  options.deadline = clock.Now() + seconds(10);
  options.clock = &clock;
  options.sleeper = &sleeper;
  int attempts = RetryCall(options, [](int) { return AttemptOutcome::kRetry; });
  // Sleeps 1, 2, 4, then only the 3 s left; one last attempt at the deadline.
  EXPECT_EQ(sleeper.slept, (std::vector<Duration>{seconds(1), seconds(2), seconds(4), seconds(3)}));
  EXPECT_EQ(attempts, 5);
  EXPECT_EQ(clock.Elapsed(), seconds(10));
}

TEST(RetryCallTest, NoAttemptAfterACancel) {
  testing::FakeClock clock;
  FakeSleeper sleeper(&clock);
  RetryOptions options;
  options.max_attempts = 10;
  options.backoff = {seconds(1), seconds(8), 2.0, false};
  options.clock = &clock;
  options.sleeper = &sleeper;
  bool canceled = false;
  options.canceled = [&] { return canceled; };
  int attempts = RetryCall(options, [&](int n) {
    if (n == 2) canceled = true;  // canceled during the second attempt
    return AttemptOutcome::kRetry;
  });
  EXPECT_EQ(attempts, 2);
  EXPECT_EQ(sleeper.slept, (std::vector<Duration>{seconds(1)}));
}

TEST(RetryCallTest, ACancelEndsTheRealWaitEarly) {
  RetryOptions options;
  options.max_attempts = 2;
  options.backoff = {seconds(30), seconds(30), 2.0, false};
  CancelToken token;
  options.canceled = [&] { return token.canceled(); };
  std::thread canceler([&] {
    std::this_thread::sleep_for(milliseconds(100));
    token.Cancel("test");
  });
  const auto start = std::chrono::steady_clock::now();
  int attempts = RetryCall(options, [](int) { return AttemptOutcome::kRetry; });
  canceler.join();
  EXPECT_EQ(attempts, 1);
  // The wait was 30 s; a cancel ends it within a poll.
  EXPECT_LT(std::chrono::steady_clock::now() - start, seconds(10));
}

TEST(CancelTokenTest, FirstReasonStandsAndWaitsWake) {
  CancelToken token;
  EXPECT_FALSE(token.canceled());
  EXPECT_FALSE(IsCanceled(&token));
  EXPECT_FALSE(IsCanceled(nullptr));
  EXPECT_FALSE(token.WaitFor(milliseconds(1)));
  std::thread canceler([&] {
    std::this_thread::sleep_for(milliseconds(50));
    token.Cancel("SIGTERM");
  });
  const auto start = std::chrono::steady_clock::now();
  EXPECT_TRUE(token.WaitFor(seconds(30)));
  EXPECT_LT(std::chrono::steady_clock::now() - start, seconds(10));
  canceler.join();
  token.Cancel("SIGINT");
  EXPECT_EQ(token.reason(), "SIGTERM");
  Status s = CanceledError(token, "GET http://x/y");
  EXPECT_EQ(s.code(), StatusCode::kCanceled);
  EXPECT_EQ(s.message(), "GET http://x/y: canceled (SIGTERM)");
}

}  // namespace
}  // namespace trainrun
