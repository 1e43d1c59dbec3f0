// The NCCL unique id exchange between real processes over real loopback sockets: ranks
// forked from the test, each running the real client code, rank 0 the real server.
#include "gpu/nccl/unique_id_exchange.h"

#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "base/free_port.h"
#include "base/net_util.h"

namespace trainrun::nccl {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

// A 128-byte id with every byte value a stream could mangle (NULs, 0xFF, newlines).
std::string TestId() {
  std::string id(128, '\0');
  for (size_t i = 0; i < id.size(); ++i) id[i] = static_cast<char>((i * 37 + 11) % 256);
  return id;
}

// A forked rank: fetches the id and reports through a pipe "OK" + id, or "ERR" + message.
struct Child {
  pid_t pid = -1;
  int out = -1;
};

Child ForkFetch(ExchangeOptions options) {
  int fds[2];
  EXPECT_EQ(pipe(fds), 0);
  pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    Result<std::string> id = FetchUniqueId(options);
    std::string report = id.ok() ? "OK" + *id : "ERR" + id.status().message();
    size_t off = 0;
    while (off < report.size()) {
      ssize_t n = write(fds[1], report.data() + off, report.size() - off);
      if (n <= 0) _exit(2);
      off += static_cast<size_t>(n);
    }
    _exit(id.ok() ? 0 : 1);
  }
  close(fds[1]);
  return Child{pid, fds[0]};
}

// Waits for the child and returns what it reported.
std::string Collect(Child child) {
  std::string all;
  char buffer[4096];
  ssize_t n;
  while ((n = read(child.out, buffer, sizeof(buffer))) > 0) all.append(buffer, n);
  close(child.out);
  int status = 0;
  waitpid(child.pid, &status, 0);
  return all;
}

TEST(UniqueIdExchangeTest, EveryRankGetsRankZerosIdEvenWhenRankZeroComesLast) {
  Result<int> port = FindFreePort("127.0.0.1");
  ASSERT_TRUE(port.ok()) << port.status().message();
  const int world = 4;
  std::vector<Child> children;
  for (int rank = 1; rank < world; ++rank) {
    children.push_back(ForkFetch({.master_addr = "127.0.0.1",
                                  .master_port = *port,
                                  .rank = rank,
                                  .world_size = world,
                                  .timeout = seconds(20)}));
  }
  // The others are already retrying against a port nobody listens on.
  std::this_thread::sleep_for(milliseconds(300));
  int made = 0;
  Result<std::string> id = ExchangeUniqueId({.master_addr = "127.0.0.1",
                                             .master_port = *port,
                                             .rank = 0,
                                             .world_size = world,
                                             .timeout = seconds(20)},
                                            [&]() -> Result<std::string> {
                                              ++made;
                                              return TestId();
                                            });
  ASSERT_TRUE(id.ok()) << id.status().message();
  EXPECT_EQ(*id, TestId());
  EXPECT_EQ(made, 1);
  for (Child& child : children) EXPECT_EQ(Collect(child), "OK" + TestId());
}

TEST(UniqueIdExchangeTest, OneRankNeedsNoSocket) {
  Result<std::string> id =
      ExchangeUniqueId({.master_addr = "192.0.2.1", .master_port = 1, .rank = 0, .world_size = 1},
                       [] { return Result<std::string>(TestId()); });
  ASSERT_TRUE(id.ok()) << id.status().message();
  EXPECT_EQ(*id, TestId());
}

TEST(UniqueIdExchangeTest, ARankGivesUpAtItsDeadlineNamingTheAddress) {
  Result<int> port = FindFreePort("127.0.0.1");
  ASSERT_TRUE(port.ok());
  auto start = std::chrono::steady_clock::now();
  Result<std::string> id = FetchUniqueId({.master_addr = "127.0.0.1",
                                          .master_port = *port,
                                          .rank = 2,
                                          .world_size = 3,
                                          .timeout = milliseconds(500)});
  auto took = std::chrono::steady_clock::now() - start;
  ASSERT_FALSE(id.ok());
  EXPECT_EQ(id.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(id.status().message().find("rank 2"), std::string::npos) << id.status().message();
  EXPECT_NE(id.status().message().find("127.0.0.1:" + std::to_string(*port)), std::string::npos)
      << id.status().message();
  EXPECT_LT(took, seconds(3));
}

TEST(UniqueIdExchangeTest, RankZeroNamesTheRanksThatNeverCame) {
  Result<UniqueIdServer> server = UniqueIdServer::Listen(0);
  ASSERT_TRUE(server.ok()) << server.status().message();
  Child rank1 = ForkFetch({.master_addr = "127.0.0.1",
                           .master_port = server->port(),
                           .rank = 1,
                           .world_size = 4,
                           .timeout = seconds(10)});
  Status served = server->Serve(TestId(), 4, milliseconds(800));
  EXPECT_EQ(served.code(), StatusCode::kUnavailable);
  EXPECT_NE(served.message().find("rank(s) 2, 3 of 4 never came"), std::string::npos)
      << served.message();
  EXPECT_EQ(Collect(rank1), "OK" + TestId());
}

TEST(UniqueIdExchangeTest, ARankThatDisagreesAboutTheWorldIsRefusedOnBothSides) {
  Result<UniqueIdServer> server = UniqueIdServer::Listen(0);
  ASSERT_TRUE(server.ok()) << server.status().message();
  Child stray = ForkFetch({.master_addr = "127.0.0.1",
                           .master_port = server->port(),
                           .rank = 1,
                           .world_size = 3,
                           .timeout = seconds(10)});
  Status served = server->Serve(TestId(), 2, seconds(10));
  EXPECT_EQ(served.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(served.message().find("rank 1 says the world size is 3, rank 0 says 2"),
            std::string::npos)
      << served.message();
  std::string got = Collect(stray);
  EXPECT_EQ(got.rfind("ERR", 0), 0u) << got;
  EXPECT_NE(got.find("refused rank 1 with world size 3"), std::string::npos) << got;
}

TEST(UniqueIdExchangeTest, AConnectionThatIsNotARankIsIgnored) {
  Result<UniqueIdServer> server = UniqueIdServer::Listen(0);
  ASSERT_TRUE(server.ok()) << server.status().message();
  pid_t scanner = fork();
  if (scanner == 0) {
    // Says something else and goes away; then a real rank comes.
    Result<int> fd = ConnectTcp("127.0.0.1", server->port(), seconds(5));
    if (fd.ok()) {
      SendAll(*fd, "GET / HTTP/1.0\r\n\r\n", seconds(5)).IgnoreError();
      close(*fd);
    }
    _exit(0);
  }
  waitpid(scanner, nullptr, 0);
  Child rank1 = ForkFetch({.master_addr = "127.0.0.1",
                           .master_port = server->port(),
                           .rank = 1,
                           .world_size = 2,
                           .timeout = seconds(10)});
  Status served = server->Serve(TestId(), 2, seconds(10));
  EXPECT_TRUE(served.ok()) << served.message();
  EXPECT_EQ(Collect(rank1), "OK" + TestId());
}

}  // namespace
}  // namespace trainrun::nccl
