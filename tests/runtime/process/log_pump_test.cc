// The log pump with real pipes: nothing lost, lines kept whole, stderr tails, and a
// console that never blocks the writers.
#include "runtime/process/log_pump.h"

#include <fcntl.h>
#include <unistd.h>

#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "tests/small_tmpfs.h"
#include "tests/test_util.h"

namespace trainrun {
namespace {

using testing::ReadFile;
using testing::TempDir;

std::vector<std::string> SplitLines(const std::string& text) {
  std::vector<std::string> lines;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    lines.push_back(text.substr(pos, end - pos));
    pos = end + 1;
  }
  return lines;
}

void WriteAll(int fd, const std::string& s) {
  size_t off = 0;
  while (off < s.size()) {
    ssize_t n = write(fd, s.data() + off, s.size() - off);
    ASSERT_GT(n, 0);
    off += static_cast<size_t>(n);
  }
}

TEST(LogPumpTest, EverythingArrivesWithStderrTailAndConsolePrefix) {
  TempDir dir;
  int console_pipe[2];
  ASSERT_EQ(pipe(console_pipe), 0);
  std::string console_text;
  {
    Console console(console_pipe[1]);
    LogPump pump(&console, 3);
    RankPipes p0 = *pump.AddRank(0, dir / "r0.txt", true);
    RankPipes p1 = *pump.AddRank(1, dir / "r1.txt", false);
    ASSERT_TRUE(pump.Start().ok());
    WriteAll(p0.stdout_fd, "hello\nwor");
    WriteAll(p0.stderr_fd, "e1\ne2\ne3\ne4\n");
    WriteAll(p0.stdout_fd, "ld\n");
    WriteAll(p1.stdout_fd, "rank one\nno newline at end");
    pump.CloseChildEnds();
    ASSERT_TRUE(pump.WaitDrained(std::chrono::seconds(10)));
    // Which of rank 0's two pipes is read first is up to the kernel; what is promised is
    // that lines are kept whole and each stream keeps its own order.
    std::vector<std::string> out_lines, err_lines;
    const std::string r0 = ReadFile(dir / "r0.txt");
    for (const std::string& line : SplitLines(r0)) {
      (line.rfind('e', 0) == 0 ? err_lines : out_lines).push_back(line);
    }
    EXPECT_EQ(out_lines, (std::vector<std::string>{"hello", "world"})) << r0;
    EXPECT_EQ(err_lines, (std::vector<std::string>{"e1", "e2", "e3", "e4"})) << r0;
    EXPECT_EQ(r0.size(), std::string("hello\nworld\ne1\ne2\ne3\ne4\n").size());
    // A last line without a newline is written as it is when the rank closes its pipes.
    EXPECT_EQ(ReadFile(dir / "r1.txt"), "rank one\nno newline at end");
    EXPECT_EQ(pump.StderrTail(0), (std::vector<std::string>{"e2", "e3", "e4"}));
    EXPECT_EQ(pump.BytesLogged(1), 26u);
    ASSERT_TRUE(console.Flush(std::chrono::seconds(5)));
    close(console_pipe[1]);
    char buf[4096];
    ssize_t n;
    while ((n = read(console_pipe[0], buf, sizeof(buf))) > 0) console_text.append(buf, n);
  }
  EXPECT_NE(console_text.find("[rank 0] hello\n"), std::string::npos) << console_text;
  EXPECT_NE(console_text.find("[rank 0] world\n"), std::string::npos) << console_text;
  EXPECT_EQ(console_text.find("rank one"), std::string::npos) << "rank 1 is not on the console";
}

// A run that ends before its ranks start (a SIGTERM just after Preparing) never
// starts its pump: there is nothing to drain, so the wait returns at once instead of
// waiting out its timeout (a 10-minute one here would end in the test's watchdog).
TEST(LogPumpTest, APumpNeverStartedIsDrained) {
  TempDir dir;
  LogPump pump(nullptr);
  ASSERT_TRUE(pump.AddRank(0, dir / "r0.txt", false).ok());
  EXPECT_TRUE(pump.WaitDrained(std::chrono::minutes(10)));
  EXPECT_TRUE(pump.LostOutputs().empty());
}

TEST(LogPumpTest, StuckConsoleNeverBlocksWritersAndFilesGetEverything) {
  TempDir dir;
  int console_pipe[2];
  ASSERT_EQ(pipe(console_pipe), 0);  // nobody ever reads this end
  const std::string line(99, 'x');
  const int kLines = 200000;  // 20 MB, far more than the pipe and the console queue
  {
    Console console(console_pipe[1], 1 << 20);
    LogPump pump(&console);
    RankPipes p = *pump.AddRank(0, dir / "r0.txt", true);
    ASSERT_TRUE(pump.Start().ok());
    std::thread writer([&] {
      std::string chunk;
      for (int i = 0; i < 1000; ++i) chunk += line + "\n";
      for (int i = 0; i < kLines / 1000; ++i) WriteAll(p.stdout_fd, chunk);
    });
    writer.join();  // would hang if the console's backpressure reached the writer
    pump.CloseChildEnds();
    ASSERT_TRUE(pump.WaitDrained(std::chrono::seconds(30)));
    EXPECT_EQ(pump.BytesLogged(0), static_cast<uint64_t>(kLines) * 100);
    EXPECT_GT(console.dropped_lines(), 0u);
  }
  EXPECT_EQ(ReadFile(dir / "r0.txt").size(), static_cast<size_t>(kLines) * 100);
  close(console_pipe[0]);
  close(console_pipe[1]);
}

TEST(LogPumpTest, AFullDiskCutsTheLogAtALineSaysFromWhereAndSendsTheRestToTheConsole) {
  testing::SmallTmpfs disk("256k");
  if (!disk.skip_reason().empty()) GTEST_SKIP() << disk.skip_reason();
  TempDir dir;
  int console_fd = open((dir / "console.txt").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  ASSERT_GE(console_fd, 0);
  constexpr int kLines = 6000;  // 100-byte lines: 600 kB into a 256 kB disk
  std::string all;
  for (int i = 0; i < kLines; ++i) {
    std::string line = "line " + std::to_string(i) + " ";
    line.resize(99, 'x');
    all += line + "\n";
  }
  const WallTime before = SystemClock()->WallNow();
  std::vector<LostOutput> lost;
  {
    Console console(console_fd, 64 << 20);
    LogPump pump(&console);
    RankPipes full = *pump.AddRank(0, disk / "r0.txt", /*to_console=*/false);
    RankPipes fine = *pump.AddRank(1, dir / "r1.txt", /*to_console=*/false);
    ASSERT_TRUE(pump.Start().ok());
    std::thread writer([&] { WriteAll(full.stdout_fd, all); });
    WriteAll(fine.stdout_fd, "rank one is fine\n");
    writer.join();
    pump.CloseChildEnds();
    ASSERT_TRUE(pump.WaitDrained(std::chrono::seconds(20)));
    lost = pump.LostOutputs();
    EXPECT_FALSE(pump.write_status().ok());
    ASSERT_TRUE(console.Flush(std::chrono::seconds(10)));
    EXPECT_EQ(console.dropped_lines(), 0u);
  }
  close(console_fd);
  ASSERT_EQ(lost.size(), 1u);
  const LostOutput& l = lost[0];
  EXPECT_EQ(l.rank, 0);
  EXPECT_EQ(l.file, disk / "r0.txt");
  EXPECT_NE(l.error.message().find("No space left on device"), std::string::npos)
      << l.error.message();
  EXPECT_GE(l.since, before);
  EXPECT_TRUE(l.to_console);
  // The file holds whole lines up to kept_bytes, the rest was counted as lost.
  const std::string kept = ReadFile(disk / "r0.txt");
  EXPECT_EQ(kept.size(), l.kept_bytes);
  EXPECT_GT(kept.size(), 0u);
  EXPECT_EQ(kept.size() % 100, 0u) << "the log was cut in the middle of a line";
  EXPECT_EQ(kept, all.substr(0, kept.size()));
  EXPECT_EQ(l.kept_bytes + l.lost_bytes, all.size());
  // Every line after the cut is on the console, in order, and nothing before it.
  const std::string console_text = ReadFile(dir / "console.txt");
  std::string expected;
  for (size_t i = kept.size() / 100; i < kLines; ++i) {
    expected += "[rank 0] " + all.substr(i * 100, 100);
  }
  EXPECT_EQ(console_text, expected);
  EXPECT_EQ(ReadFile(dir / "r1.txt"), "rank one is fine\n");
}

}  // namespace
}  // namespace trainrun
