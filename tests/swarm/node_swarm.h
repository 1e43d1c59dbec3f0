// Many simulated nodes on a few threads, for the head's scale benchmark and test.
//
// Each simulated node is a real control-plane client of a head: its own TCP
// connection (non-blocking), the HMAC challenge-response of control_auth.h, a
// tag on every frame after it, and a Join like a WorkerSession's. What a node
// does after it is assigned is only what the head needs to see (heartbeats, one
// rank failure); what it hears (Assign, Stop) is recorded with the time it came.
// A thread serves a whole slice of the nodes from one epoll, so thousands of
// nodes cost a few threads, not one (or two) each, and a figure measures the
// head rather than the simulation.
//
// Test and benchmark code, not part of trainrun. IPv4 addresses only (no name
// lookup). Every node costs one descriptor and one local port of the loopback's
// ephemeral range (net.ipv4.ip_local_port_range) while connected; the
// destructor resets the connections (SO_LINGER 0), so they leave no TIME_WAIT.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "base/clock.h"
#include "base/status.h"
#include "runtime/cluster/heartbeat.h"

namespace trainrun::testing {

struct SwarmOptions {
  std::string host = "127.0.0.1";  // the head's IPv4 address
  int port = 0;                    // its control port
  std::string key;                 // RoleKey(token, kRoleNode)
  int node_count = 2;              // the job's, the head included
  int first_rank = 1;              // simulates node ranks first_rank .. node_count - 1
  int threads = 1;                 // threads that serve the nodes
  int process_count = 8;           // local ranks each node claims
  std::string job_digest = "swarm";
  // Connections connecting or authenticating at once, over all threads: a
  // scheduler starts nodes over a few seconds, not in one instant.
  int max_connecting = 256;
  // How often each node beats in Beat(); the beats of a slice are spread evenly.
  Duration heartbeat_interval = kDefaultHeartbeatInterval;
  // The timeout each node tells the head in its Join, like a real node's
  // --heartbeat-timeout: the head beats the nodes a quarter of it apart.
  Duration heartbeat_timeout = kDefaultHeartbeatTimeout;
};

// What one simulated node saw.
struct SwarmNode {
  int node_rank = 0;
  int connects = 0;  // connection attempts: more than 1 when the head closed one mid-handshake
  // The Assign message:
  bool assigned = false;
  int first_rank = -1;  // its local rank 0's global rank
  int world_size = 0;
  std::string master_addr;
  int master_port = 0;
  TimePoint assigned_at{};
  // The Stop message:
  bool stopped = false;
  int stop_exit_code = 0;
  TimePoint stopped_at{};
  uint64_t heartbeats_sent = 0;
  uint64_t heartbeats_received = 0;  // the head's
  std::string error;  // why it failed (refused, closed, port exhaustion); empty while fine
};

class NodeSwarm {
 public:
  explicit NodeSwarm(SwarmOptions options);
  // Resets every connection.
  ~NodeSwarm();
  NodeSwarm(const NodeSwarm&) = delete;
  NodeSwarm& operator=(const NodeSwarm&) = delete;

  // Connects, authenticates and joins every node, and waits for each one's
  // Assign; a connection the head closes during the handshake is retried after
  // 100 ms. Ok once every node is assigned; otherwise (a node refused, its
  // connection lost, or `deadline` passed) an error naming the first failed
  // node and how many are not assigned. The time of the first connect is
  // started().
  Status Rendezvous(TimePoint deadline);
  TimePoint started() const { return started_; }

  // Waits `duration`, reading what comes (the head's heartbeats). Like a real
  // node, every assigned node beats once an interval from its assignment on,
  // during every call (Rendezvous, Beat, FailAndWaitForStop), never between
  // them: a swarm left idle for the head's heartbeat timeout is lost to it.
  void Beat(Duration duration);

  // Node `node_rank` reports that its rank failed (RankFailed, exit code 1);
  // then waits until every assigned node holds a Stop or `deadline` passes.
  // The time the report was sent, or an error naming how many nodes got no Stop.
  Result<TimePoint> FailAndWaitForStop(int node_rank, TimePoint deadline);

  // By node rank - first_rank. Read between the calls above.
  const std::vector<SwarmNode>& nodes() const { return view_; }

 private:
  struct Conn;
  struct Slice;
  void RunSlices(const std::function<void(Slice&)>& body);
  void RendezvousSlice(Slice& slice, TimePoint deadline);
  void BeatSlice(Slice& slice, TimePoint until);
  void StopSlice(Slice& slice, int failing_rank, TimePoint deadline, TimePoint* sent);
  // One turn of an assigned slice's loop: sends the heartbeats that are due, waits
  // for its connections until the next beat or `until`, then flushes and reads
  // what is ready.
  void ServeSlice(Slice& slice, TimePoint until);
  // Reads what is ready on `conn` and handles its frames.
  void Read(Slice& slice, Conn& conn);
  // Sends the heartbeats that are due; the time the next one is.
  TimePoint BeatDue(Slice& slice);
  // A connection that ended before the handshake completed: again after a
  // pause, up to a limit.
  void Retry(Slice& slice, Conn& conn, const std::string& why);
  void HandleFrame(Slice& slice, Conn& conn, int type, std::string payload);
  void Send(Slice& slice, Conn& conn, std::string frame);
  void Flush(Slice& slice, Conn& conn);
  bool Connect(Slice& slice, Conn& conn);
  void Fail(Conn& conn, std::string error);
  void Publish();

  SwarmOptions options_;
  TimePoint started_{};
  std::vector<std::unique_ptr<Conn>> conns_;
  std::vector<std::unique_ptr<Slice>> slices_;
  std::vector<SwarmNode> view_;
};

}  // namespace trainrun::testing
