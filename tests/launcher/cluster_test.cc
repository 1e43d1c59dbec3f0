// Multi-node `trainrun run` on one machine without namespaces: several
// trainruns on 127.0.0.1, each its own node (no root needed). The
// network-namespace cluster tests are in tests/multinode/.
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/launcher/trainrun_runner.h"

namespace trainrun::testing {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

class ClusterTest : public ::testing::Test {
 protected:
  std::string Job(json job) {
    job["sourceDirectory"] = "src";
    job["experimentName"] = "cluster";
    if (!job.contains("runId")) job["runId"] = run_id_ = "c" + std::to_string(++jobs_);
    WriteFile(dir_ / "src/README", "x\n");
    std::string path = dir_ / ("job" + std::to_string(++files_) + ".json");
    WriteFile(path, job.dump(2));
    return path;
  }
  std::vector<std::string> Args(const std::string& job, int node,
                                std::vector<std::string> more = {}) {
    std::vector<std::string> args = {
        TrainrunBinary(),
        "run",
        job,
        "--node-rank",
        std::to_string(node),
        "--master-addr",
        "127.0.0.1",
        "--control-port",
        std::to_string(port_),
        "--history",
        dir_ / "history",
        "--workdir",
        shared_workdir_ ? dir_ / "shared" : dir_ / ("w" + std::to_string(node))};
    args.insert(args.end(), more.begin(), more.end());
    return args;
  }
  std::unique_ptr<TrainrunProcess> Start(const std::string& job, int node,
                                         std::vector<std::string> more = {},
                                         std::vector<std::string> env = {
                                             "TRAINRUN_JOB_TOKEN=cluster-test-token-123456"}) {
    std::string out = dir_ / ("out" + std::to_string(++outs_));
    fs::create_directories(out);
    return std::make_unique<TrainrunProcess>(Args(job, node, more), env, out);
  }
  std::vector<Invocation> RunNodes(const std::string& job, int nodes,
                                   std::vector<std::string> more = {}) {
    std::vector<std::unique_ptr<TrainrunProcess>> running;
    for (int n = 0; n < nodes; ++n) running.push_back(Start(job, n, more));
    std::vector<Invocation> results;
    for (auto& p : running) results.push_back(p->Wait());
    return results;
  }
  // A two-node job of one rank each; every rank writes its pid to PidFile(rank).
  std::string PidJob() {
    fs::create_directories(dir_ / "pids");
    return Job({{"command", {RankHelper(), "--pid-dir", dir_ / "pids"}},
                {"nodeCount", 2},
                {"processCountPerNode", 1}});
  }
  std::string PidFile(int rank) const { return dir_ / ("pids/" + std::to_string(rank) + ".pid"); }
  // Both nodes of a PidJob started and their ranks are running.
  void WaitForBothRanks() {
    ASSERT_TRUE(
        WaitFor([&] { return !ReadFile(PidFile(0)).empty() && !ReadFile(PidFile(1)).empty(); }));
  }
  std::string RunDir() const { return dir_ / ("history/cluster/" + run_id_); }
  json Record() const { return json::parse(ReadFile(RunDir() + "/run.json")); }

  TempDir dir_;
  int port_ = FreePort();
  bool shared_workdir_ = false;  // every node gets the same --workdir
  int jobs_ = 0, files_ = 0, outs_ = 0;
  std::string run_id_;
};

std::string HostName() {
  char name[256] = {};
  gethostname(name, sizeof(name) - 1);
  return name;
}

TEST_F(ClusterTest, TwoNodesOnLoopbackRunOneJob) {
  std::string job = Job({{"command",
                          {RankHelper(), "--sleep-ms", "0", "--write-output", "--print-env", "RANK",
                           "WORLD_SIZE", "LOCAL_RANK", "NODE_RANK", "MASTER_ADDR",
                           "TRAINRUN_NODE_COUNT", "TRAINRUN_JOB_TOKEN", "NCCL_SOCKET_IFNAME"}},
                         {"nodeCount", 2},
                         {"processCountPerNode", 2}});
  std::vector<Invocation> r = RunNodes(job, 2);
  for (int n = 0; n < 2; ++n) ASSERT_EQ(r[n].exit_code, 0) << r[n].err;
  EXPECT_NE(r[1].out.find("[rank 3] RANK=3\n"), std::string::npos) << r[1].out;
  EXPECT_NE(r[1].out.find("[rank 3] LOCAL_RANK=1\n"), std::string::npos);
  EXPECT_NE(r[1].out.find("[rank 2] NODE_RANK=1\n"), std::string::npos);
  EXPECT_NE(r[0].out.find("[rank 0] WORLD_SIZE=4\n"), std::string::npos);
  EXPECT_NE(r[0].out.find("[rank 0] TRAINRUN_NODE_COUNT=2\n"), std::string::npos);
  EXPECT_NE(r[0].out.find("[rank 1] NCCL_SOCKET_IFNAME=lo\n"), std::string::npos);
  // The job token is trainrun's own: the ranks never see it.
  EXPECT_NE(r[0].out.find("[rank 0] TRAINRUN_JOB_TOKEN=<unset>\n"), std::string::npos);
  for (int rank = 0; rank < 4; ++rank) {
    EXPECT_EQ(ReadFile(RunDir() + "/outputs/rank" + std::to_string(rank) + ".txt"),
              "rank " + std::to_string(rank) + "\n");
    EXPECT_TRUE(
        fs::exists(RunDir() + "/user_logs/std_log_process_" + std::to_string(rank) + ".txt"));
  }
  EXPECT_TRUE(fs::exists(RunDir() + "/system_logs/trainrun_node_0.log"));
  EXPECT_TRUE(fs::exists(RunDir() + "/system_logs/trainrun_node_1.log"));
  json rec = Record();
  EXPECT_EQ(rec["status"], "Completed");
  EXPECT_EQ(rec["nodes"].size(), 2u);
  EXPECT_EQ(rec["ranks"].size(), 4u);
  EXPECT_EQ(rec["ranks"][3]["nodeRank"], 1);
  EXPECT_EQ(rec["ranks"][3]["localRank"], 1);
  EXPECT_EQ(rec["details"]["cluster"]["worldSize"], 4);
  EXPECT_FALSE(rec["details"]["cluster"]["jobTokenDerived"].get<bool>());
  EXPECT_EQ(ReadFile(RunDir() + "/run.json").find("cluster-test-token"), std::string::npos);
}

// A --workdir on a file system all nodes share (NFS, Lustre, a Slurm cluster's home):
// each node works in a folder of its own under the run's.
TEST_F(ClusterTest, NodesSharingOneWorkdirEachUseTheirOwnFolder) {
  shared_workdir_ = true;
  std::string job = Job({{"command", {RankHelper(), "--sleep-ms", "0", "--write-output"}},
                         {"nodeCount", 2},
                         {"processCountPerNode", 1}});
  std::vector<Invocation> r = RunNodes(job, 2);
  for (int n = 0; n < 2; ++n) ASSERT_EQ(r[n].exit_code, 0) << r[n].err;
  const std::string host = HostName();
  const std::string run = dir_ / ("shared/cluster/" + run_id_);
  for (int n = 0; n < 2; ++n) {
    const std::string node_dir = run + "/node" + std::to_string(n) + "-" + host;
    EXPECT_TRUE(fs::exists(node_dir + "/run.json")) << node_dir;
    EXPECT_EQ(ReadFile(node_dir + "/wd/outputs/rank" + std::to_string(n) + ".txt"),
              "rank " + std::to_string(n) + "\n");
    EXPECT_TRUE(fs::exists(node_dir + "/system_logs/trainrun_node_" + std::to_string(n) + ".log"));
  }
  EXPECT_EQ(Record()["status"], "Completed");
  for (int rank = 0; rank < 2; ++rank) {
    EXPECT_EQ(ReadFile(RunDir() + "/outputs/rank" + std::to_string(rank) + ".txt"),
              "rank " + std::to_string(rank) + "\n");
  }
}

TEST_F(ClusterTest, TheHeadChoosesTheRunIdWhenTheJobFileNamesNone) {
  json spec = {{"command", {RankHelper(), "--sleep-ms", "0", "--print-env", "TRAINRUN_RUN_ID"}},
               {"nodeCount", 2},
               {"processCountPerNode", 1},
               {"runId", nullptr}};
  std::string job = Job(spec);
  std::vector<Invocation> r = RunNodes(job, 2);
  for (int n = 0; n < 2; ++n) ASSERT_EQ(r[n].exit_code, 0) << r[n].err;
  size_t at = r[0].out.find("TRAINRUN_RUN_ID=");
  ASSERT_NE(at, std::string::npos);
  std::string run_id = r[0].out.substr(at + 16, r[0].out.find('\n', at) - at - 16);
  EXPECT_NE(r[1].out.find("TRAINRUN_RUN_ID=" + run_id + "\n"), std::string::npos) << r[1].out;
  EXPECT_TRUE(
      fs::exists(dir_ / ("history/cluster/" + run_id + "/user_logs/std_log_process_1.txt")));
  EXPECT_TRUE(fs::exists(dir_ / ("w1/cluster/" + run_id)));
}

TEST_F(ClusterTest, OutputsWrittenDifferentlyByTwoNodesAreBothKept) {
  std::string job = Job({{"command",
                          {"/bin/sh", "-c",
                           "mkdir -p outputs logs && echo \"node $NODE_RANK\" "
                           "> outputs/result.txt && "
                           "echo same > outputs/same.txt && echo \"$RANK\" > "
                           "logs/rank$RANK.log"}},
                         {"nodeCount", 2},
                         {"processCountPerNode", 1}});
  std::vector<Invocation> r = RunNodes(job, 2);
  for (int n = 0; n < 2; ++n) ASSERT_EQ(r[n].exit_code, 0) << r[n].err;
  EXPECT_EQ(ReadFile(RunDir() + "/outputs/result.txt"), "node 0\n");
  EXPECT_EQ(ReadFile(RunDir() + "/outputs/result.node1.txt"), "node 1\n");
  EXPECT_EQ(ReadFile(RunDir() + "/outputs/same.txt"), "same\n");
  EXPECT_FALSE(fs::exists(RunDir() + "/outputs/same.node1.txt"));
  EXPECT_EQ(ReadFile(RunDir() + "/logs/rank1.log"), "1\n");
  json conflicts = Record()["details"]["outputConflicts"];
  ASSERT_EQ(conflicts.size(), 1u) << conflicts;
  EXPECT_EQ(conflicts[0]["path"], "outputs/result.txt");
  EXPECT_NE(r[0].err.find("outputs/result.txt was written differently by several nodes"),
            std::string::npos)
      << r[0].err;
}

TEST_F(ClusterTest, ACancelOnOneNodeCancelsEveryNode) {
  std::string job = PidJob();
  auto head = Start(job, 0);
  auto node = Start(job, 1);
  ASSERT_NO_FATAL_FAILURE(WaitForBothRanks());
  node->Signal(SIGTERM);
  Invocation h = head->Wait();
  Invocation n = node->Wait();
  EXPECT_EQ(h.exit_code, 143) << h.err;
  EXPECT_EQ(n.exit_code, 143) << n.err;
  json rec = Record();
  EXPECT_EQ(rec["status"], "Canceled");
  EXPECT_NE(rec["stopReason"].get<std::string>().find("on node 1"), std::string::npos)
      << rec["stopReason"];
  for (int rank = 0; rank < 2; ++rank) {
    EXPECT_FALSE(ProcessAlive(std::stoi(ReadFile(PidFile(rank)))));
  }
}

// A SIGTERM while the nodes wait for each other (issue 9 item 9): the head waits
// for a node that never comes, and a worker retries a head that is not there. Both
// end with 143 and say so, long before the 600 s rendezvous timeout would.
TEST_F(ClusterTest, SigtermWhileWaitingForTheOtherNodesExits143) {
  std::string job = PidJob();
  auto head = Start(job, 0, {"--rendezvous-timeout", "600", "--verbose"});
  const std::string head_err = dir_ / ("out" + std::to_string(outs_) + "/trainrun.err");
  port_ = FreePort();  // nobody listens there
  auto node = Start(job, 1, {"--rendezvous-timeout", "600", "--verbose"});
  const std::string node_err = dir_ / ("out" + std::to_string(outs_) + "/trainrun.err");
  ASSERT_TRUE(WaitFor([&] {
    return ReadFile(head_err).find("waiting for 1 node(s)") != std::string::npos &&
           ReadFile(node_err).find("is not reachable yet") != std::string::npos;
  })) << ReadFile(head_err)
      << ReadFile(node_err);
  const auto signaled = std::chrono::steady_clock::now();
  head->Signal(SIGTERM);
  node->Signal(SIGTERM);
  Invocation h = head->Wait();
  Invocation n = node->Wait();
  const double took_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - signaled).count();
  EXPECT_EQ(h.exit_code, 143) << h.err;
  EXPECT_EQ(n.exit_code, 143) << n.err;
  EXPECT_LT(took_s, 60.0) << "the rendezvous timeout is 600 s";
  EXPECT_NE(h.err.find("canceled by SIGTERM while joining the other nodes"), std::string::npos)
      << h.err;
  EXPECT_NE(n.err.find("canceled by SIGTERM while joining the other nodes"), std::string::npos)
      << n.err;
}

// A node canceled while it prepares stops the job, and the head's own preparation
// (here a snapshot of 20,000 files) is cut short at once instead of finishing for
// nothing: the head ends with the job's stop and has not copied the whole source.
TEST_F(ClusterTest, ANodeCanceledWhilePreparingCutsTheHeadsPreparationShort) {
  constexpr int kFiles = 20000;
  fs::create_directories(dir_ / "src/many");
  for (int i = 0; i < kFiles; ++i) WriteFile(dir_ / ("src/many/f" + std::to_string(i)), "x");
  std::string job = PidJob();
  auto head = Start(job, 0);
  const std::string head_err = dir_ / ("out" + std::to_string(outs_) + "/trainrun.err");
  auto node = Start(job, 1);
  const std::string node_err = dir_ / ("out" + std::to_string(outs_) + "/trainrun.err");
  // Node 1 says where its run is just before it prepares.
  ASSERT_TRUE(WaitFor([&] {
    return ReadFile(node_err).find("run " + run_id_ + " (experiment") != std::string::npos;
  })) << ReadFile(node_err);
  node->Signal(SIGTERM);
  Invocation n = node->Wait();
  Invocation h = head->Wait();
  EXPECT_EQ(n.exit_code, 143) << n.err;
  EXPECT_EQ(h.exit_code, 143) << h.err;
  EXPECT_NE(h.err.find("the ranks were not started"), std::string::npos) << h.err;
  EXPECT_TRUE(ReadFile(PidFile(0)).empty()) << "a rank started although the job stopped";
  int copied = 0;
  for (const auto& entry : fs::recursive_directory_iterator(dir_ / "w0")) {
    if (entry.path().parent_path().filename() == "many") ++copied;
  }
  EXPECT_LT(copied, kFiles) << "the head copied the whole source after the job had stopped";
  EXPECT_EQ(Record()["status"], "Canceled") << Record().dump(2);
}

TEST_F(ClusterTest, ANodeThatCannotPrepareStopsTheJobBeforeAnyRankStarts) {
  std::string job = PidJob();
  // Node 1 finds its run directory (its own folder under the run's) taken.
  fs::create_directories(dir_ / ("w1/cluster/" + run_id_ + "/node1-" + HostName()));
  std::vector<Invocation> r = RunNodes(job, 2);
  EXPECT_EQ(r[1].exit_code, 65) << r[1].err;
  EXPECT_NE(r[1].err.find("already exists"), std::string::npos) << r[1].err;
  EXPECT_EQ(r[0].exit_code, 65) << r[0].err;
  EXPECT_TRUE(ReadFile(PidFile(0)).empty()) << "a rank started although node 1 could not prepare";
  json rec = Record();
  EXPECT_EQ(rec["status"], "Failed");
  EXPECT_NE(rec["stopReason"].get<std::string>().find("node 1"), std::string::npos)
      << rec["stopReason"];
}

TEST_F(ClusterTest, RendezvousTimeoutsNameWhatIsMissing) {
  std::string job = Job({{"command", {RankHelper(), "--sleep-ms", "0"}},
                         {"nodeCount", 3},
                         {"processCountPerNode", 1}});
  auto head = Start(job, 0, {"--rendezvous-timeout", "3"});
  auto node = Start(job, 1, {"--rendezvous-timeout", "30"});
  Invocation h = head->Wait();
  Invocation n = node->Wait();
  EXPECT_EQ(h.exit_code, 69);
  EXPECT_NE(h.err.find("rendezvous timed out after 3 s: 2 of 3 node(s) joined; "
                       "node(s) 2 never did"),
            std::string::npos)
      << h.err;
  EXPECT_EQ(n.exit_code, 69);
  EXPECT_NE(n.err.find("rendezvous failed"), std::string::npos) << n.err;
  // A node alone keeps knocking until its timeout.
  Invocation lonely = RunTrainrun(
      {"run", job, "--node-rank", "2", "--master-addr", "127.0.0.1", "--control-port",
       std::to_string(FreePort()), "--rendezvous-timeout", "2", "--workdir", dir_ / "w2"},
      dir_.path());
  EXPECT_EQ(lonely.exit_code, 69);
  EXPECT_NE(lonely.err.find("could not reach the head at 127.0.0.1:"), std::string::npos)
      << lonely.err;
  EXPECT_FALSE(fs::exists(dir_ / "w2")) << "a node laid out a run directory before the rendezvous";
}

TEST_F(ClusterTest, WithoutAJobTokenOneIsDerivedAndAWarningSaysSo) {
  std::string job = Job({{"command", {RankHelper(), "--sleep-ms", "0"}},
                         {"nodeCount", 2},
                         {"processCountPerNode", 1}});
  auto head = Start(job, 0, {}, {});
  auto node = Start(job, 1, {}, {});
  Invocation h = head->Wait();
  Invocation n = node->Wait();
  EXPECT_EQ(h.exit_code, 0) << h.err;
  EXPECT_EQ(n.exit_code, 0) << n.err;
  EXPECT_NE(h.err.find("TRAINRUN_JOB_TOKEN is not set"), std::string::npos) << h.err;
  EXPECT_TRUE(Record()["details"]["cluster"]["jobTokenDerived"].get<bool>());
}

TEST_F(ClusterTest, DryRunShowsWhereTheNodeStandsAndWhy) {
  std::string job = Job({{"command", {RankHelper()}}, {"processCountPerNode", 2}});
  Invocation r = RunTrainrun(
      {"run", job, "--dry-run"}, dir_.path(),
      {"SLURM_JOB_ID=77", "SLURM_NODEID=1", "SLURM_NNODES=2", "SLURM_JOB_NODELIST=gpu-[001-002]",
       "SLURM_STEP_NUM_NODES=2", "SLURM_STEP_NUM_TASKS=2"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("nodes:          2 (this node: 1; from Slurm)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("head gpu-001 (first of SLURM_JOB_NODELIST=gpu-[001-002])"),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("rank 3:"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("WORLD_SIZE=4"), std::string::npos);
  // What only the rendezvous decides is named as such, not guessed.
  EXPECT_NE(r.out.find("MASTER_ADDR=<known at rendezvous: the head's address"), std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("MASTER_PORT=<known at rendezvous: picked free on the head>"),
            std::string::npos);
  EXPECT_NE(r.out.find("NCCL_SOCKET_IFNAME=<known at rendezvous"), std::string::npos);
  for (const char* wrong : {"MASTER_PORT=0", "MASTER_ADDR=gpu-001", "SOCKET_IFNAME=lo"}) {
    EXPECT_EQ(r.out.find(wrong), std::string::npos) << wrong << "\n" << r.out;
  }
  // Under Slurm the ranks see trainrun's values, and the control port comes from
  // the job id.
  EXPECT_NE(r.out.find("SLURM_PROCID=3"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("control port 29477 (29400 + SLURM_JOB_ID 77 mod 1000)"), std::string::npos);
  // An explicit port wins, from the environment too.
  Invocation explicit_port = RunTrainrun(
      {"run", job, "--dry-run"}, dir_.path(),
      {"SLURM_JOB_ID=77", "SLURM_NODEID=1", "SLURM_NNODES=2", "SLURM_JOB_NODELIST=gpu-[001-002]",
       "SLURM_STEP_NUM_NODES=2", "SLURM_STEP_NUM_TASKS=2", "TRAINRUN_CONTROL_PORT=31002"});
  ASSERT_EQ(explicit_port.exit_code, 0) << explicit_port.err;
  EXPECT_NE(explicit_port.out.find("control port 31002 (--control-port)"), std::string::npos)
      << explicit_port.out;
  // A job file's value is its own, known before the rendezvous.
  Invocation pinned = RunTrainrun(
      {"run",
       Job({{"command", {RankHelper()}},
            {"processCountPerNode", 1},
            {"environment", {{"environmentVariables", {{"NCCL_SOCKET_IFNAME", "eth7"}}}}}}),
       "--dry-run", "--nnodes", "2", "--node-rank", "1", "--master-addr", "10.0.0.1",
       "--control-port", "31001"},
      dir_.path());
  ASSERT_EQ(pinned.exit_code, 0) << pinned.err;
  EXPECT_NE(pinned.out.find("NCCL_SOCKET_IFNAME=eth7"), std::string::npos) << pinned.out;
  EXPECT_NE(pinned.out.find("control port 31001 (--control-port)"), std::string::npos);
  // A multi-node job that cannot tell which node this is.
  Invocation unknown = RunTrainrun(
      {"run", Job({{"command", {RankHelper()}}, {"nodeCount", 2}}), "--dry-run"}, dir_.path());
  EXPECT_EQ(unknown.exit_code, 69);
  EXPECT_NE(unknown.err.find("pass --node-rank"), std::string::npos) << unknown.err;
  // A scheduler that contradicts the job file.
  Invocation contradiction = RunTrainrun(
      {"run", Job({{"command", {RankHelper()}}, {"nodeCount", 3}}), "--dry-run"}, dir_.path(),
      {"SLURM_JOB_ID=77", "SLURM_NODEID=0", "SLURM_NNODES=2", "SLURM_JOB_NODELIST=n[1-2]",
       "SLURM_STEP_NUM_NODES=2"});
  EXPECT_EQ(contradiction.exit_code, 65);
  EXPECT_NE(contradiction.err.find("/nodeCount 3 disagrees with Slurm"), std::string::npos)
      << contradiction.err;
}

TEST_F(ClusterTest, TensorFlowRanksGetTfConfig) {
  std::string job = Job({{"command", {RankHelper(), "--sleep-ms", "0", "--print-env", "TF_CONFIG"}},
                         {"communicator", "TensorFlow"},
                         {"processCountPerNode", 2}});
  Invocation r = RunTrainrun({"run", job, "--history", dir_ / "history", "--workdir", dir_ / "w"},
                             dir_.path());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (int rank = 0; rank < 2; ++rank) {
    std::string prefix = "[rank " + std::to_string(rank) + "] TF_CONFIG=";
    size_t at = r.out.find(prefix);
    ASSERT_NE(at, std::string::npos) << r.out;
    json config =
        json::parse(r.out.substr(at + prefix.size(), r.out.find('\n', at) - at - prefix.size()));
    EXPECT_EQ(config["cluster"]["worker"].size(), 2u);
    EXPECT_EQ(config["task"]["type"], "worker");
    EXPECT_EQ(config["task"]["index"], rank);
    EXPECT_NE(config["cluster"]["worker"][0], config["cluster"]["worker"][1]);
  }
}

// One node, 1 parameter server + 2 workers (tests/multinode/tf_ps_roles.py): the
// workers talk to the server and exit 0, trainrun stops the server, the run is
// Completed with exit 0. The multi-node case is in tests/multinode.
TEST_F(ClusterTest, ParameterServerOnOneNodeIsStoppedWhenTheWorkersExitZero) {
  std::string job =
      Job({{"command", {"/usr/bin/python3", SourceRoot() + "/tests/multinode/tf_ps_roles.py"}},
           {"communicator", "ParameterServer"},
           {"tensorflow", {{"workerCount", 2}, {"parameterServerCount", 1}}}});
  Invocation r = RunTrainrun({"run", job, "--history", dir_ / "history", "--workdir", dir_ / "w"},
                             dir_.path());
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("[rank 0] ps 0 listening on 127.0.0.1:"), std::string::npos) << r.out;
  for (const char* worker : {"worker 0", "worker 1"}) {
    EXPECT_NE(r.out.find(std::string(worker) + " got 'ps 0 acks hello from " + worker + "'"),
              std::string::npos)
        << r.out;
  }
  json rec = Record();
  EXPECT_EQ(rec["status"], "Completed");
  EXPECT_EQ(rec["exitCode"], 0);
  ASSERT_EQ(rec["ranks"].size(), 3u);
  EXPECT_TRUE(rec["ranks"][0]["stoppedByTrainrun"].get<bool>());
  EXPECT_EQ(rec["ranks"][0]["signal"], SIGTERM);
  for (int rank : {1, 2}) {
    EXPECT_FALSE(rec["ranks"][rank]["stoppedByTrainrun"].get<bool>());
    EXPECT_EQ(rec["ranks"][rank]["exitCode"], 0);
  }

  // Counts that do not fit processCountPerNode are refused before anything starts.
  std::string bad = Job({{"command", {"/bin/true"}},
                         {"communicator", "ParameterServer"},
                         {"processCountPerNode", 2},
                         {"tensorflow", {{"workerCount", 2}}}});
  Invocation refused = RunTrainrun({"run", bad, "--dry-run"}, dir_.path());
  EXPECT_EQ(refused.exit_code, 65);
  EXPECT_NE(refused.err.find("/tensorflow: 1 parameter server + 2 workers = 3 processes, but "
                             "nodeCount 1 x processCountPerNode 2 = 2"),
            std::string::npos)
      << refused.err;
}

#ifdef MPI_ALLREDUCE_BINARY
TEST_F(ClusterTest, MpiOnOneNodeKeepsPerRankLogsAndFailFast) {
  if (access("/usr/bin/mpirun", X_OK) != 0)
    GTEST_SKIP() << "needs mpirun (apt install openmpi-bin)";
  std::string job = Job(
      {{"command", {MPI_ALLREDUCE_BINARY}}, {"communicator", "Mpi"}, {"processCountPerNode", 3}});
  Invocation r = RunTrainrun({"run", job, "--history", dir_ / "history", "--workdir", dir_ / "w"},
                             dir_.path());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (int rank = 0; rank < 3; ++rank) {
    EXPECT_NE(ReadFile(RunDir() + "/user_logs/std_log_process_" + std::to_string(rank) + ".txt")
                  .find("allreduce rank " + std::to_string(rank) + " of 3"),
              std::string::npos);
  }
  EXPECT_NE(r.out.find("[rank 2] allreduce rank 2 of 3"), std::string::npos) << r.out;
  // An MPI rank that fails is named like any other.
  std::string failing =
      Job({{"command",
            {"/bin/sh", "-c", "if [ \"$RANK\" = 1 ]; then echo bad >&2; exit 5; fi; sleep 600"}},
           {"communicator", "Mpi"},
           {"processCountPerNode", 2}});
  Invocation f = RunTrainrun({"run", failing, "--history", dir_ / "history", "--workdir",
                              dir_ / "w", "--grace-period", "3"},
                             dir_.path());
  EXPECT_EQ(f.exit_code, 5) << f.err;
  json rec = Record();
  EXPECT_EQ(rec["failure"]["rank"], 1);
  EXPECT_EQ(rec["failure"]["stderrTail"].back(), "bad");
}
#endif

// An on-path attacker without the job token (tests/launcher/control_relay.py)
// relays node 1's control connection and, once the ranks run, injects, replays
// or alters one frame. Every frame after the handshake is authenticated, so none
// takes effect: the connection is closed, and the job fails with a message that
// names the failed authentication.
struct Relayed {
  Invocation head, node;
  std::string relay_log;
};

class RelayTest : public ClusterTest {
 protected:
  Relayed RunThroughRelay(const std::string& mode) {
    std::string job = Job({{"command", {RankHelper(), "--sleep-ms", "4000"}},
                           {"nodeCount", 2},
                           {"processCountPerNode", 1}});
    Relayed r;
    auto head = Start(job, 0);
    const std::string port_file = dir_ / "relay.port";
    const std::string log = dir_ / "relay.log";
    fs::create_directories(dir_ / "relay");
    TrainrunProcess relay(
        {"/usr/bin/python3", TRAINRUN_SOURCE_DIR "/tests/launcher/control_relay.py",
         std::to_string(port_), mode, port_file, log},
        {}, dir_ / "relay");
    EXPECT_TRUE(WaitFor([&] { return !ReadFile(port_file).empty(); }, std::chrono::seconds(20)));
    std::vector<std::string> args = Args(job, 1);
    auto port = std::find(args.begin(), args.end(), "--control-port");
    *(port + 1) = ReadFile(port_file);  // node 1 reaches the head through the relay
    fs::create_directories(dir_ / "node1");
    TrainrunProcess node(args, {"TRAINRUN_JOB_TOKEN=cluster-test-token-123456"}, dir_ / "node1");
    r.node = node.Wait();
    r.head = head->Wait();
    r.relay_log = ReadFile(log);
    return r;
  }
};

TEST_F(RelayTest, ARelayThatOnlyRelaysChangesNothing) {
  Relayed r = RunThroughRelay("none");
  EXPECT_EQ(r.head.exit_code, 0) << r.head.err;
  EXPECT_EQ(r.node.exit_code, 0) << r.node.err;
  EXPECT_EQ(Record()["status"], "Completed");
}

TEST_F(RelayTest, AnInjectedStopIsRefusedAndTheJobFailsNamingTheAuthentication) {
  Relayed r = RunThroughRelay("inject");
  ASSERT_NE(r.relay_log.find("injected a forged Stop"), std::string::npos) << r.relay_log;
  // Taken, the forged Stop would have stopped node 1 with exit code 42 and its reason.
  EXPECT_EQ(r.node.exit_code, 69) << r.node.err;
  EXPECT_NE(r.node.err.find("(Stop) failed authentication"), std::string::npos) << r.node.err;
  // Node 1 closed the connection at once: the head loses it, not at a heartbeat timeout.
  EXPECT_EQ(r.head.exit_code, 69) << r.head.err;
  EXPECT_NE(r.head.err.find("node 1 (" + HostName() + ", 127.0.0.1) was lost"), std::string::npos)
      << r.head.err;
  json rec = Record();
  EXPECT_EQ(rec["status"], "Failed");
  EXPECT_EQ(rec["exitCode"], 69);
  for (const std::string& text : {r.node.out, r.node.err, r.head.out, r.head.err, rec.dump()}) {
    EXPECT_EQ(text.find("forged stop"), std::string::npos) << text;
  }
}

TEST_F(RelayTest, AReplayedFrameIsRefusedAndTheJobFailsNamingTheAuthentication) {
  Relayed r = RunThroughRelay("replay");
  ASSERT_NE(r.relay_log.find("replayed Start"), std::string::npos) << r.relay_log;
  EXPECT_EQ(r.node.exit_code, 69) << r.node.err;
  EXPECT_NE(r.node.err.find("(Start) failed authentication"), std::string::npos) << r.node.err;
  EXPECT_EQ(r.head.exit_code, 69) << r.head.err;
  EXPECT_EQ(Record()["status"], "Failed");
}

TEST_F(RelayTest, AFlippedByteIsRefusedAndTheHeadNamesThePeerOnce) {
  Relayed r = RunThroughRelay("flip");
  ASSERT_NE(r.relay_log.find("flipped a payload byte"), std::string::npos) << r.relay_log;
  EXPECT_EQ(r.head.exit_code, 69) << r.head.err;
  EXPECT_EQ(r.node.exit_code, 69) << r.node.err;
  json rec = Record();
  EXPECT_EQ(rec["status"], "Failed");
  // One warning naming the relay's address, and the lost node's reason.
  const std::string warnings = rec["warnings"].dump();
  size_t count = 0;
  for (const json& w : rec["warnings"]) {
    const std::string line = w.dump();
    if (line.find("refused a control connection from 127.0.0.1:") != std::string::npos &&
        line.find("failed authentication") != std::string::npos) {
      ++count;
    }
  }
  EXPECT_EQ(count, 1u) << warnings;
  EXPECT_NE(rec.dump().find("failed authentication"), std::string::npos);
}

TEST_F(ClusterTest, WhenTheHeadDiesTheOtherNodesExit69AndFinishTheRecord) {
  std::string job = PidJob();
  auto head = Start(job, 0);
  auto node = Start(job, 1);
  ASSERT_NO_FATAL_FAILURE(WaitForBothRanks());
  ASSERT_EQ(Record()["status"], "Running");
  head->Signal(SIGKILL);
  head->Wait();
  Invocation n = node->Wait();
  EXPECT_EQ(n.exit_code, 69) << n.err;
  // Nobody is left to write the head's final status but the surviving node.
  json rec = Record();
  EXPECT_EQ(rec["status"], "Failed");
  EXPECT_EQ(rec["exitCode"], 69);
  std::string warnings = rec["warnings"].dump();
  EXPECT_NE(warnings.find("the head was lost"), std::string::npos) << warnings;
  for (int rank = 0; rank < 2; ++rank) {
    int pid = std::stoi(ReadFile(PidFile(rank)));
    EXPECT_TRUE(WaitFor([&] { return !ProcessAlive(pid); }, std::chrono::seconds(10)))
        << "rank " << rank << " outlived the job";
  }
}

// A peer's words reach the head's console, its system log and `history show`
// escaped, as one line each: node 1's host name (set in a UTS namespace of its own)
// and a role that a stranger claims both hold a newline and a colour escape.
TEST_F(ClusterTest, TextFromPeersIsEscapedOnTheConsoleInTheSystemLogAndInHistory) {
  if (geteuid() != 0 || system("unshare --uts true 2>/dev/null") != 0) {
    GTEST_SKIP() << "needs root and unshare(1) to give node 1 a host name of its own";
  }
  const std::string evil_host = "evil\n\x1b[31mFORGED HOST";
  const std::string evil_role = "x\n\x1b[31mFORGED ROLE";
  std::string job = Job({{"command",
                          {RankHelper(), "--fail-rank", "1", "--exit-code", "3", "--after-ms",
                           "500", "--sleep-ms", "30000"}},
                         {"nodeCount", 2},
                         {"processCountPerNode", 1}});
  auto head = Start(job, 0);
  // A stranger claims a role with control characters in it; the head refuses it.
  int fd = -1;
  ASSERT_TRUE(WaitFor([&] {
    fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port_));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) return true;
    close(fd);
    return false;
  }));
  std::string hello =
      json{{"role", evil_role}, {"nodeRank", 1}, {"nonce", std::string(64, '0')}}.dump();
  // A Hello frame (control_protocol.h): magic, protocol version 2, type 1, reserved.
  std::string frame = std::string("TRNC\x02\x01\x00\x00", 8);
  for (int shift : {24, 16, 8, 0}) frame.push_back(static_cast<char>(hello.size() >> shift));
  frame += hello;
  ASSERT_EQ(send(fd, frame.data(), frame.size(), MSG_NOSIGNAL), static_cast<ssize_t>(frame.size()));
  char buffer[512];
  while (recv(fd, buffer, sizeof(buffer), 0) > 0) {
  }
  close(fd);
  // Node 1 runs with that host name; its rank fails.
  std::vector<std::string> argv = {"/usr/bin/unshare",
                                   "--uts",
                                   "/bin/sh",
                                   "-c",
                                   "/usr/bin/python3 -c 'import os, socket; "
                                   "socket.sethostname(os.environ[\"EVIL_HOST\"])' && exec \"$@\"",
                                   "sh"};
  std::vector<std::string> args = Args(job, 1);
  argv.insert(argv.end(), args.begin(), args.end());
  std::string out = dir_ / "evil-node";
  fs::create_directories(out);
  TrainrunProcess node(
      argv, {"TRAINRUN_JOB_TOKEN=cluster-test-token-123456", "EVIL_HOST=" + evil_host}, out);
  Invocation h = head->Wait();
  Invocation n = node.Wait();
  EXPECT_EQ(h.exit_code, 3) << h.err;
  EXPECT_EQ(n.exit_code, 3) << n.err;

  const std::string shown_host = "evil\\n\\x1b[31mFORGED HOST";
  const std::string shown_role = "x\\n\\x1b[31mFORGED ROLE";
  Invocation show =
      RunTrainrun({"history", "--history", dir_ / "history", "show", run_id_}, dir_ / "evil-node");
  ASSERT_EQ(show.exit_code, 0) << show.err;
  const std::string console = h.out + h.err;
  const std::string system_log = ReadFile(RunDir() + "/system_logs/trainrun_node_0.log");
  for (const auto& [name, text] :
       {std::pair{"console", console}, {"system log", system_log}, {"history show", show.out}}) {
    SCOPED_TRACE(name);
    EXPECT_NE(text.find(shown_host), std::string::npos) << text;
    EXPECT_EQ(text.find('\x1b'), std::string::npos) << text;
    EXPECT_EQ(text.find("\nFORGED"), std::string::npos) << text;
  }
  for (const auto& [name, text] : {std::pair{"console", console}, {"system log", system_log}}) {
    EXPECT_NE(text.find(shown_role), std::string::npos) << name << ": " << text;
  }
  // run.json keeps the escaped form too.
  EXPECT_EQ(Record()["failure"]["host"], shown_host);
}

}  // namespace
}  // namespace trainrun::testing
