// The main() of every test binary: GoogleTest, plus two guarantees that a broken
// product cannot take away from the runner.
//
// 1. A test can always be stopped. Code under test blocks SIGTERM, SIGINT and SIGHUP
//    to read them through a signalfd (BlockSupervisionSignals), and that mask is
//    inherited by everything the test thread starts. A watchdog thread, started
//    before any test, keeps SIGTERM and SIGINT unblocked, so the kernel always has a
//    thread to deliver them to; their handler names the running test and exits
//    128 + signal. `timeout`, CTest and a terminal's Ctrl-C all stop a stuck test.
//    (So a test must not send SIGTERM or SIGINT to its own process and expect a
//    signalfd to read it: use SIGHUP, or a trainrun child process.)
// 2. A test cannot run for ever. The watchdog ends the binary with exit 124 when one
//    test has run longer than TRAINRUN_TEST_TIMEOUT seconds (default 300), naming
//    it. CTest's per-suite TIMEOUT (tests/CMakeLists.txt) is the outer bound.
//
// After each test the test thread's signal mask is put back as it was at start, so a
// test that blocked signals cannot leak its mask into the tests after it.
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>

#include <gtest/gtest.h>

namespace {

constexpr int kDefaultTestTimeoutSeconds = 300;

// The running test's name, readable from a signal handler: written only between
// tests (no handler can see a half-written name that matters: it is NUL-terminated
// before `current_test_ready` is set).
char current_test[512] = "(between tests)";
std::atomic<bool> current_test_ready{false};

void WriteStderr(const char* text) {
  ssize_t ignored = write(STDERR_FILENO, text, strlen(text));
  (void)ignored;
}

void OnStopSignal(int signal) {
  WriteStderr(signal == SIGINT ? "\n[  STOPPED ] SIGINT during "
                               : "\n[  STOPPED ] SIGTERM during ");
  WriteStderr(current_test_ready.load() ? current_test : "(between tests)");
  WriteStderr("\n");
  _exit(128 + signal);
}

class Watchdog : public ::testing::EmptyTestEventListener {
 public:
  explicit Watchdog(std::chrono::seconds limit) : limit_(limit) {
    pthread_sigmask(SIG_SETMASK, nullptr, &runner_mask_);
    // The watchdog thread blocks everything but the stop signals, so a SIGHUP or
    // SIGCHLD that a test waits for with a signalfd is never taken by it.
    sigset_t all_but_stop;
    sigfillset(&all_but_stop);
    sigdelset(&all_but_stop, SIGTERM);
    sigdelset(&all_but_stop, SIGINT);
    sigset_t previous;
    pthread_sigmask(SIG_SETMASK, &all_but_stop, &previous);
    thread_ = std::thread([this] { Watch(); });
    pthread_sigmask(SIG_SETMASK, &previous, nullptr);
  }

  ~Watchdog() override {
    {
      std::lock_guard lock(mu_);
      done_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }

  void OnTestStart(const ::testing::TestInfo& info) override {
    std::string name = std::string(info.test_suite_name()) + "." + info.name();
    current_test_ready = false;
    snprintf(current_test, sizeof(current_test), "%s", name.c_str());
    current_test_ready = true;
    std::lock_guard lock(mu_);
    deadline_ = std::chrono::steady_clock::now() + limit_;
    running_ = true;
    cv_.notify_all();
  }

  void OnTestEnd(const ::testing::TestInfo&) override {
    pthread_sigmask(SIG_SETMASK, &runner_mask_, nullptr);
    std::lock_guard lock(mu_);
    running_ = false;
  }

 private:
  void Watch() {
    std::unique_lock lock(mu_);
    while (!done_) {
      if (!running_) {
        cv_.wait(lock);
        continue;
      }
      if (cv_.wait_until(lock, deadline_) == std::cv_status::timeout && running_ &&
          std::chrono::steady_clock::now() >= deadline_) {
        std::string message = "\n[  TIMEOUT ] " + std::string(current_test) +
                              " did not finish within " + std::to_string(limit_.count()) +
                              " s (TRAINRUN_TEST_TIMEOUT)\n";
        WriteStderr(message.c_str());
        _exit(124);
      }
    }
  }

  std::chrono::seconds limit_;
  sigset_t runner_mask_;
  std::thread thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  bool running_ = false;
  std::chrono::steady_clock::time_point deadline_;
};

}  // namespace

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);

  struct sigaction action {};
  action.sa_handler = OnStopSignal;
  sigemptyset(&action.sa_mask);
  sigaction(SIGTERM, &action, nullptr);
  sigaction(SIGINT, &action, nullptr);

  int limit = kDefaultTestTimeoutSeconds;
  if (const char* env = getenv("TRAINRUN_TEST_TIMEOUT"); env != nullptr && atoi(env) > 0) {
    limit = atoi(env);
  }
  // GoogleTest owns the listener and deletes it after the last test.
  ::testing::UnitTest::GetInstance()->listeners().Append(new Watchdog(std::chrono::seconds(limit)));
  int result = RUN_ALL_TESTS();
  // A filter that selects nothing (a renamed suite, a parameterised one registered
  // by the wrong name) must not pass as "0 tests, all fine".
  if (result == 0 && ::testing::UnitTest::GetInstance()->test_to_run_count() == 0) {
    WriteStderr("[  ERROR   ] no test matched --gtest_filter; nothing was tested\n");
    return 1;
  }
  return result;
}
