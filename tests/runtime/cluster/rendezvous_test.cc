#include "runtime/cluster/rendezvous.h"

#include <gtest/gtest.h>

namespace trainrun {
namespace {

NodeJoin Node(int rank, int count = 3, int processes = 2) {
  NodeJoin n;
  n.node_rank = rank;
  n.node_count = count;
  n.host = "node" + std::to_string(rank);
  n.address = "10.0.0." + std::to_string(rank + 1);
  n.interface = "eth0";
  n.process_count = processes;
  n.job_digest = "abc123";
  n.trainrun_version = "0.1.0";
  return n;
}

TEST(RendezvousTest, AJoinCarriesTheNodesHeartbeatTimeout) {
  NodeJoin n = Node(1);
  n.heartbeat_timeout_ms = 8000;
  Result<NodeJoin> back = NodeJoin::FromJson(n.ToJson());
  ASSERT_TRUE(back.ok()) << back.status().message();
  EXPECT_EQ(back->heartbeat_timeout_ms, 8000);
  // A node that does not say (an older trainrun): 0, beaten at the head's own interval.
  nlohmann::json without = n.ToJson();
  without.erase("heartbeatTimeoutMs");
  back = NodeJoin::FromJson(without);
  ASSERT_TRUE(back.ok()) << back.status().message();
  EXPECT_EQ(back->heartbeat_timeout_ms, 0);
  without["heartbeatTimeoutMs"] = -1;
  EXPECT_FALSE(NodeJoin::FromJson(without).ok());
}

TEST(RendezvousTest, AnAssignmentCarriesTheHeadsHeartbeatTimeout) {
  RendezvousBook book(Node(0, 2));
  ASSERT_TRUE(book.Add(Node(1, 2)).ok());
  JobAssignment a = book.Assign("run-1", "10.0.0.1", 29500);
  a.head_heartbeat_timeout_ms = 3000;
  Result<JobAssignment> back = JobAssignment::FromJson(a.ToJson(1));
  ASSERT_TRUE(back.ok()) << back.status().message();
  EXPECT_EQ(back->head_heartbeat_timeout_ms, 3000);
  // A head that does not say (an older trainrun): 0, beaten every second.
  a.head_heartbeat_timeout_ms = 0;
  EXPECT_FALSE(a.ToJson(1).contains("headHeartbeatTimeoutMs"));
  back = JobAssignment::FromJson(a.ToJson(1));
  ASSERT_TRUE(back.ok()) << back.status().message();
  EXPECT_EQ(back->head_heartbeat_timeout_ms, 0);
}

TEST(RendezvousTest, RanksAreNumberedNodeMajor) {
  RendezvousBook book(Node(0));
  EXPECT_EQ(book.missing(), (std::vector<int>{1, 2}));
  ASSERT_TRUE(book.Add(Node(2, 3, 3)).ok());
  ASSERT_TRUE(book.Add(Node(1)).ok());
  ASSERT_TRUE(book.complete());
  JobAssignment a = book.Assign("run1", "10.0.0.1", 29500);
  EXPECT_EQ(a.world_size, 7);
  ASSERT_EQ(a.nodes.size(), 3u);
  EXPECT_EQ(a.nodes[0].first_rank, 0);
  EXPECT_EQ(a.nodes[1].first_rank, 2);
  EXPECT_EQ(a.nodes[2].first_rank, 4);
  EXPECT_EQ(book.Warnings().size(), 1u);  // node 2 runs 3 ranks, the head 2
  // The assignment survives the wire.
  Result<JobAssignment> back = JobAssignment::FromJson(a.ToJson());
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->nodes[2].address, "10.0.0.3");
  EXPECT_EQ(back->master_port, 29500);
  // A node gets the head's slot and its own; the others only by number.
  Result<JobAssignment> mine = JobAssignment::FromJson(a.ToJson(2));
  ASSERT_TRUE(mine.ok()) << mine.status().message();
  ASSERT_EQ(mine->nodes.size(), 3u);
  EXPECT_EQ(mine->nodes[2].first_rank, 4);
  EXPECT_EQ(mine->nodes[0].address, "10.0.0.1");
  EXPECT_EQ(mine->nodes[1].node_rank, 1);
  EXPECT_TRUE(mine->nodes[1].host.empty());
  EXPECT_LT(a.ToJson(2).dump().size(), a.ToJson().dump().size());
}

TEST(RendezvousTest, ConflictsNameBothSides) {
  RendezvousBook book(Node(0));
  NodeJoin other_job = Node(1);
  other_job.job_digest = "fff999";
  Status s = book.Add(other_job);
  EXPECT_NE(s.message().find("runs a different job file"), std::string::npos) << s.message();
  EXPECT_NE(
      book.Add(Node(1, 4)).message().find("thinks the job has 4 node(s); the head (node0) says 3"),
      std::string::npos);
  EXPECT_NE(book.Add(Node(0)).message().find("two nodes think they are the head"),
            std::string::npos);
  EXPECT_NE(book.Add(Node(5)).message().find("out of range"), std::string::npos);
  ASSERT_TRUE(book.Add(Node(1)).ok());
  NodeJoin twin = Node(1);
  twin.host = "elsewhere";
  EXPECT_NE(book.Add(twin).message().find("node rank 1 is claimed by node 1 (node1, "
                                          "10.0.0.2) and by node 1 (elsewhere"),
            std::string::npos);
  // The same host joining again (a restarted pod) replaces its entry.
  EXPECT_TRUE(book.Add(Node(1)).ok());
  NodeJoin run_id = Node(2);
  run_id.run_id = "mine";
  NodeJoin head = Node(0);
  head.run_id = "theirs";
  RendezvousBook with_id(head);
  EXPECT_NE(with_id.Add(run_id).message().find("was given run id \"mine\", the head \"theirs\""),
            std::string::npos);
}

TEST(RendezvousTest, ANodeThatLeftBeforeTheEndIsForgotten) {
  RendezvousBook book(Node(0, 2));
  ASSERT_TRUE(book.Add(Node(1, 2)).ok());
  book.Remove(1);
  EXPECT_FALSE(book.complete());
  EXPECT_EQ(book.missing(), std::vector<int>{1});
}

TEST(RendezvousTest, HostsAreFoundByNameAddressOrNodeNumber) {
  RendezvousBook book(Node(0, 2));
  NodeJoin n = Node(1, 2);
  n.addresses = {"10.0.0.2", "192.168.0.2"};
  n.host = "gpu-2.cluster.local";
  ASSERT_TRUE(book.Add(n).ok());
  JobAssignment a = book.Assign("r", "10.0.0.1", 1);
  for (const char* host : {"10.0.0.2", "192.168.0.2", "gpu-2.cluster.local", "gpu-2", "node1"}) {
    const NodeSlot* found = a.FindHost(host);
    ASSERT_NE(found, nullptr) << host;
    EXPECT_EQ(found->node_rank, 1) << host;
  }
  EXPECT_EQ(a.FindHost("nowhere"), nullptr);
}

TEST(RendezvousTest, TfConfigListsEveryRankAsAWorker) {
  RendezvousBook book(Node(0, 2, 1));
  NodeJoin n = Node(1, 2, 2);
  n.tf_ports = {2223, 2224};
  NodeJoin head = Node(0, 2, 1);
  head.tf_ports = {2222};
  RendezvousBook b(head);
  ASSERT_TRUE(b.Add(n).ok());
  JobAssignment a = b.Assign("r", "10.0.0.1", 1);
  nlohmann::json config = nlohmann::json::parse(TfConfigFor(a, 2));
  EXPECT_EQ(config["cluster"]["worker"],
            nlohmann::json::array({"10.0.0.1:2222", "10.0.0.2:2223", "10.0.0.2:2224"}));
  EXPECT_EQ(config["task"]["type"], "worker");
  EXPECT_EQ(config["task"]["index"], 2);
}

}  // namespace
}  // namespace trainrun
