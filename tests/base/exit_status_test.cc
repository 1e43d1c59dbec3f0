#include "base/exit_status.h"

#include <signal.h>
#include <string.h>

#include <gtest/gtest.h>

namespace trainrun {
namespace {

// SignalName spells out the table that glibc 2.32's sigabbrev_np gives (the portable
// build runs on glibc 2.31, which lacks it); the tests are built against the host's
// glibc, which has it, so every standard signal is compared with it.
TEST(SignalNameTest, NamesEveryStandardSignalAsGlibcDoes) {
  for (int signal = 1; signal < SIGRTMIN; ++signal) {
    const char* abbrev = sigabbrev_np(signal);
    if (abbrev == nullptr) {
      EXPECT_EQ(SignalName(signal), "signal " + std::to_string(signal));
    } else {
      EXPECT_EQ(SignalName(signal), std::string("SIG") + abbrev) << signal;
    }
  }
}

TEST(SignalNameTest, OtherNumbersAreNamedByNumber) {
  EXPECT_EQ(SignalName(SIGRTMIN + 1), "signal " + std::to_string(SIGRTMIN + 1));
  EXPECT_EQ(SignalName(0), "signal 0");
  EXPECT_EQ(SignalName(200), "signal 200");
  const ExitStatus killed{.code = 0, .signal = SIGKILL};
  EXPECT_EQ(killed.Describe(), "signal 9 (SIGKILL)");
}

}  // namespace
}  // namespace trainrun
