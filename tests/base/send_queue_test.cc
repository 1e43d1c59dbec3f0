#include "base/send_queue.h"

#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

namespace trainrun {
namespace {

class SendQueueTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds_), 0);
  }
  void TearDown() override {
    for (int fd : fds_) {
      if (fd >= 0) close(fd);
    }
  }
  // Everything the peer can read now.
  std::string Drain() {
    std::string got;
    char buffer[64 << 10];
    ssize_t n;
    while ((n = read(fds_[1], buffer, sizeof(buffer))) > 0) got.append(buffer, n);
    return got;
  }
  int fds_[2] = {-1, -1};
};

TEST_F(SendQueueTest, WhatTheSocketTakesIsWrittenAndTheQueueCleared) {
  SendQueue queue;
  EXPECT_FALSE(queue.Flush(fds_[0]));  // nothing queued: nothing to wait for
  queue.out = "hello";
  EXPECT_FALSE(queue.Flush(fds_[0]));
  EXPECT_TRUE(queue.empty());
  EXPECT_TRUE(queue.out.empty());
  EXPECT_EQ(queue.offset, 0u);
  EXPECT_EQ(Drain(), "hello");
}

TEST_F(SendQueueTest, AFullSocketLeavesTheRestQueuedInOrder) {
  std::string data(8 << 20, '\0');
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>(i * 7 + i / 4096);
  SendQueue queue;
  queue.out = data;
  // The socket's buffer is far smaller than 8 MiB: the rest waits, without blocking.
  ASSERT_TRUE(queue.Flush(fds_[0]));
  EXPECT_GT(queue.offset, 0u);
  EXPECT_LT(queue.offset, data.size());
  EXPECT_EQ(queue.pending(), data.size() - queue.offset);
  std::string got;
  bool left = true;
  while (left) {
    got += Drain();
    left = queue.Flush(fds_[0]);
  }
  got += Drain();
  EXPECT_TRUE(queue.empty());
  EXPECT_EQ(got.size(), data.size());
  EXPECT_TRUE(got == data) << "bytes out of order or changed";
}

TEST_F(SendQueueTest, ABrokenConnectionDropsWhatIsQueuedWithoutSigpipe) {
  close(fds_[1]);
  fds_[1] = -1;
  SendQueue queue;
  queue.out = "to nobody";
  EXPECT_FALSE(queue.Flush(fds_[0]));  // EPIPE: dropped (MSG_NOSIGNAL: the test lives)
  EXPECT_TRUE(queue.empty());
  queue.out = "no socket";
  EXPECT_FALSE(queue.Flush(-1));
  EXPECT_TRUE(queue.empty());
}

}  // namespace
}  // namespace trainrun
