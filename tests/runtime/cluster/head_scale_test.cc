// The head with a few hundred nodes: simulated ones (tests/swarm/node_swarm.h),
// each a real client over loopback with the HMAC handshake and tagged frames, on
// one thread. rendezvous_bench runs the same at up to 16,384 nodes.
#include <future>
#include <set>

#include <gtest/gtest.h>

#include "runtime/cluster/control_auth.h"
#include "runtime/cluster/head_session.h"
#include "tests/fakes/fake_clock.h"
#include "tests/swarm/node_swarm.h"

namespace trainrun {
namespace {

constexpr int kNodes = 300;
constexpr int kProcessesPerNode = 8;

NodeJoin HeadJoin() {
  NodeJoin n;
  n.node_rank = 0;
  n.node_count = kNodes;
  n.host = "head";
  n.process_count = kProcessesPerNode;
  n.job_digest = "swarm";
  n.trainrun_version = "swarm";
  return n;
}

TEST(HeadScale, EveryNodeGetsADistinctRankTheSameMasterAndTheStop) {
  const JobToken token{"head-scale-test-token", false};
  QuietReporter quiet;
  SessionOptions options;
  options.reporter = &quiet;
  options.rendezvous_timeout = std::chrono::seconds(60);
  Result<std::unique_ptr<HeadSession>> head = HeadSession::Start(options, token, 0);
  ASSERT_TRUE(head.ok()) << head.status().message();
  (*head)->set_run_id("scale");

  testing::SwarmOptions swarm_options;
  swarm_options.port = (*head)->port();
  swarm_options.key = RoleKey(token, kRoleNode);
  swarm_options.node_count = kNodes;
  swarm_options.process_count = kProcessesPerNode;
  testing::NodeSwarm swarm(swarm_options);

  auto assigned = std::async(std::launch::async, [&] { return (*head)->Rendezvous(HeadJoin()); });
  Status joined = swarm.Rendezvous(std::chrono::steady_clock::now() + std::chrono::seconds(60));
  Result<JobAssignment> assignment = assigned.get();
  ASSERT_TRUE(joined.ok()) << joined.message();
  ASSERT_TRUE(assignment.ok()) << assignment.status().message();
  EXPECT_EQ(assignment->world_size, kNodes * kProcessesPerNode);
  EXPECT_EQ(assignment->master_addr, "127.0.0.1");

  // Node-major ranks: node r's first rank is r * 8, so the first ranks are
  // distinct and, with the head's 0, cover every node exactly once.
  std::set<int> first_ranks = {0};
  ASSERT_EQ(swarm.nodes().size(), static_cast<size_t>(kNodes - 1));
  for (const testing::SwarmNode& node : swarm.nodes()) {
    ASSERT_TRUE(node.assigned) << "node " << node.node_rank << ": " << node.error;
    EXPECT_EQ(node.first_rank, node.node_rank * kProcessesPerNode) << "node " << node.node_rank;
    EXPECT_TRUE(first_ranks.insert(node.first_rank).second)
        << "node " << node.node_rank << " got rank " << node.first_rank << " twice";
    EXPECT_EQ(node.world_size, kNodes * kProcessesPerNode);
    EXPECT_EQ(node.master_addr, assignment->master_addr) << "node " << node.node_rank;
    EXPECT_EQ(node.master_port, assignment->master_port) << "node " << node.node_rank;
  }
  EXPECT_EQ(first_ranks.size(), static_cast<size_t>(kNodes));

  // One node's rank fails: the head's Stop reaches every node, that one
  // included, with the failed rank's exit code.
  Result<TimePoint> sent = swarm.FailAndWaitForStop(
      kNodes / 2, std::chrono::steady_clock::now() + std::chrono::seconds(30));
  ASSERT_TRUE(sent.ok()) << sent.status().message();
  for (const testing::SwarmNode& node : swarm.nodes()) {
    EXPECT_TRUE(node.stopped) << "node " << node.node_rank << ": " << node.error;
    EXPECT_EQ(node.stop_exit_code, 1) << "node " << node.node_rank;
  }
}

// The head beats each node as often as the most demanding node asks in its Join
// (a quarter of its heartbeat timeout), not every second of its own interval:
// with 4,096 nodes its beats were most of its heartbeat cost.
TEST(HeadScale, TheHeadBeatsAQuarterOfTheNodesTimeoutApart) {
  constexpr int kSmall = 3;
  const JobToken token{"head-scale-test-token", false};
  testing::FakeClock clock;  // the head's: its beats are due only when the test says
  QuietReporter quiet;
  SessionOptions options;
  options.reporter = &quiet;
  options.clock = &clock;
  options.rendezvous_timeout = std::chrono::seconds(60);
  Result<std::unique_ptr<HeadSession>> head = HeadSession::Start(options, token, 0);
  ASSERT_TRUE(head.ok()) << head.status().message();
  (*head)->set_run_id("beats");

  testing::SwarmOptions swarm_options;
  swarm_options.port = (*head)->port();
  swarm_options.key = RoleKey(token, kRoleNode);
  swarm_options.node_count = kSmall;
  swarm_options.process_count = 1;
  swarm_options.heartbeat_timeout = std::chrono::seconds(8);  // the head beats them 2 s apart
  testing::NodeSwarm swarm(swarm_options);
  NodeJoin self = HeadJoin();
  self.node_count = kSmall;
  self.process_count = 1;
  auto assigned = std::async(std::launch::async, [&] { return (*head)->Rendezvous(self); });
  ASSERT_TRUE(swarm.Rendezvous(std::chrono::steady_clock::now() + std::chrono::seconds(60)).ok());
  ASSERT_TRUE(assigned.get().ok());

  // Reads until every node holds `beats` of the head's heartbeats (or a minute
  // of real time passes); the fewest any node holds.
  auto wait_for = [&](uint64_t beats) {
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::minutes(1);
    uint64_t fewest = 0;
    do {
      swarm.Beat(std::chrono::milliseconds(50));
      fewest = UINT64_MAX;
      for (const testing::SwarmNode& node : swarm.nodes())
        fewest = std::min(fewest, node.heartbeats_received);
    } while (fewest < beats && std::chrono::steady_clock::now() < give_up);
    return fewest;
  };
  // The first beat goes out at the head's first tick after the rendezvous (its
  // ticks follow the clock).
  clock.Advance(kControlTick);
  EXPECT_EQ(wait_for(1), 1u);
  // A second later (the head's own interval, which used to be its beat to every
  // node) nothing more comes: several of the head's ticks pass meanwhile.
  clock.Advance(std::chrono::seconds(1));
  swarm.Beat(std::chrono::milliseconds(500));
  for (const testing::SwarmNode& node : swarm.nodes())
    EXPECT_EQ(node.heartbeats_received, 1u) << "node " << node.node_rank;
  // Two seconds after the first: the next one.
  clock.Advance(std::chrono::seconds(1));
  EXPECT_EQ(wait_for(2), 2u);
}

}  // namespace
}  // namespace trainrun
