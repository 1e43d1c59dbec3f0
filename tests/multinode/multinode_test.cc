// Multi-node jobs end to end: one real trainrun per network namespace of a
// small cluster on this machine (netns_cluster.h), real PyTorch DDP on gloo,
// real Open MPI through trainrun's rsh agent (no sshd), real failures and
// SIGKILL.
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <map>
#include <regex>
#include <set>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/launcher/trainrun_runner.h"
#include "tests/multinode/netns_cluster.h"

namespace trainrun::testing {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr const char* kToken = "multinode-test-token-5f2c9a";

// Now as run.json writes times ("2026-11-26T09:30:00.123Z"), so that they compare
// as strings.
std::string IsoNow() {
  const auto now = std::chrono::system_clock::now();
  const std::time_t seconds = std::chrono::system_clock::to_time_t(now);
  const auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()) % 1000;
  std::tm tm;
  gmtime_r(&seconds, &tm);
  char text[32];
  std::strftime(text, sizeof(text), "%Y-%m-%dT%H:%M:%S", &tm);
  char out[40];
  std::snprintf(out, sizeof(out), "%s.%03dZ", text, static_cast<int>(ms.count()));
  return out;
}

bool HavePyTorch() {
  return std::system(
             "/usr/bin/python3 -c 'import torch.distributed' >/dev/null "
             "2>&1") == 0;
}

class MultinodeTest : public ::testing::Test {
 protected:
  // A job file in the test folder; the source is tests/multinode.
  std::string Job(json job) {
    job["sourceDirectory"] = SourceRoot() + "/tests/multinode";
    job["experimentName"] = "multinode";
    job["runId"] = run_id_ = "mn" + std::to_string(++jobs_);
    job["environment"]["python"]["interpreterPath"] = "/usr/bin/python3";
    job["environment"]["environmentVariables"]["OMP_NUM_THREADS"] = "1";
    std::string path = dir_ / ("job" + std::to_string(jobs_) + ".json");
    WriteFile(path, job.dump(2));
    return path;
  }
  std::unique_ptr<TrainrunProcess> Start(NetnsCluster& cluster, int node, const std::string& job,
                                         const std::string& token = kToken,
                                         std::vector<std::string> extra = {},
                                         std::string workdir = "",
                                         std::vector<std::string> env = {}) {
    if (workdir.empty()) workdir = dir_ / ("w" + std::to_string(node));
    std::vector<std::string> args = {TrainrunBinary(),
                                     "run",
                                     job,
                                     "--node-rank",
                                     std::to_string(node),
                                     "--master-addr",
                                     cluster.Address(0),
                                     "--history",
                                     history(),
                                     "--workdir",
                                     workdir};
    if (fixed_grace_) {
      args.push_back("--grace-period");
      args.push_back("5");
    }
    args.insert(args.end(), extra.begin(), extra.end());
    std::string out = dir_ / ("out" + std::to_string(++processes_));
    fs::create_directories(out);
    env.insert(env.begin(), extra_env_.begin(), extra_env_.end());
    env.push_back("TRAINRUN_JOB_TOKEN=" + token);
    return std::make_unique<TrainrunProcess>(cluster.Command(node, args), env, out);
  }
  std::vector<Invocation> RunAll(NetnsCluster& cluster, const std::string& job, int nodes) {
    std::vector<std::unique_ptr<TrainrunProcess>> running;
    for (int n = 0; n < nodes; ++n) running.push_back(Start(cluster, n, job));
    std::vector<Invocation> results;
    for (auto& p : running) results.push_back(p->Wait(std::chrono::seconds(300)));
    return results;
  }
  std::string history() const { return dir_ / "history"; }
  std::string RunDir() const { return history() + "/multinode/" + run_id_; }
  json Record() const { return json::parse(ReadFile(RunDir() + "/run.json")); }
  std::string RankLog(int rank) const {
    return ReadFile(RunDir() + "/user_logs/std_log_process_" + std::to_string(rank) + ".txt");
  }
  // Whether each of ranks 0..`ranks`-1 leaves `marks`/<rank>.a1 (its mark of
  // attempt 1) in time.
  static bool AllRanksMarked(const std::string& marks, int ranks) {
    return WaitFor([&] {
      for (int rank = 0; rank < ranks; ++rank) {
        if (!fs::exists(marks + "/" + std::to_string(rank) + ".a1")) return false;
      }
      return true;
    });
  }
  // Node `n` lost as a scheduler loses a pod: its trainrun SIGKILLed, and its ranks
  // (and whatever they started) gone with it.
  static void KillNode(NetnsCluster& cluster, int n, TrainrunProcess& trainrun) {
    trainrun.Signal(SIGKILL);
    trainrun.Wait();
    EXPECT_TRUE(WaitFor([&] { return cluster.Pids(n).empty(); }, std::chrono::seconds(30)))
        << cluster.Describe(n);
  }
  void ExpectNothingLeft(NetnsCluster& cluster) {
    for (int n = 0; n < cluster.size(); ++n) {
      EXPECT_TRUE(WaitFor([&] { return cluster.Pids(n).empty(); }, std::chrono::seconds(30)))
          << "processes left in node " << n << "'s namespace:\n"
          << cluster.Describe(n);
    }
  }

  // A two-node job whose node `stalled` has its trainrun stopped (SIGSTOP) for
  // 8 s while the ranks run, then resumed (SIGCONT). The stalled node's
  // heartbeat timeout is 3 s; the other's is longer than the stop, since a
  // peer silent past your own timeout is lost, and that is the heartbeat's job.
  void RunWithAStall(NetnsCluster& cluster, int stalled) {
    std::string pids = dir_ / "pids";
    fs::create_directories(pids);
    std::string job = Job({{"command", {RankHelper(), "--pid-dir", pids, "--sleep-ms", "20000"}},
                           {"nodeCount", 2},
                           {"processCountPerNode", 1}});
    std::vector<std::unique_ptr<TrainrunProcess>> nodes;
    for (int n = 0; n < 2; ++n) {
      nodes.push_back(
          Start(cluster, n, job, kToken, {"--heartbeat-timeout", n == stalled ? "3" : "60"}));
    }
    ASSERT_TRUE(WaitFor(
        [&] { return !ReadFile(pids + "/0.pid").empty() && !ReadFile(pids + "/1.pid").empty(); }));
    nodes[stalled]->Signal(SIGSTOP);
    std::this_thread::sleep_for(std::chrono::seconds(8));
    nodes[stalled]->Signal(SIGCONT);
    std::vector<Invocation> r;
    for (auto& node : nodes) r.push_back(node->Wait());
    for (int n = 0; n < 2; ++n) {
      EXPECT_EQ(r[n].exit_code, 0) << "node " << n << "\n" << r[n].err;
      for (const char* blame : {"was lost", "lost the head"}) {
        EXPECT_EQ(r[n].err.find(blame), std::string::npos) << "node " << n << "\n" << r[n].err;
      }
    }
    const std::string who = stalled == 0 ? "the head" : "node 1";
    EXPECT_TRUE(
        std::regex_search(r[stalled].err, std::regex(who + " stalled for [0-9]+\\.[0-9] s itself")))
        << r[stalled].err;
    json rec = Record();
    EXPECT_EQ(rec["status"], "Completed");
    EXPECT_EQ(rec["exitCode"], 0);
    EXPECT_FALSE(rec.contains("failure")) << rec["failure"].dump();
    ExpectNothingLeft(cluster);
  }

  TempDir dir_;
  // Start() passes --grace-period 5 unless a test clears this.
  bool fixed_grace_ = true;
  std::vector<std::string> extra_env_;  // for every node's trainrun
  int jobs_ = 0;
  int processes_ = 0;
  std::string run_id_;
};

#define NEED_CLUSTER(cluster) \
  if (!(cluster).skip_reason().empty()) GTEST_SKIP() << (cluster).skip_reason()

TEST_F(MultinodeTest, PyTorchDdpOnGlooTwoNodesTimesTwoRanks) {
  if (!HavePyTorch())
    GTEST_SKIP() << "needs PyTorch for /usr/bin/python3 (apt install python3-torch)";
  NetnsCluster cluster(2);
  NEED_CLUSTER(cluster);
  std::string job = Job({{"script", "ddp_train.py"},
                         {"communicator", "Gloo"},
                         {"nodeCount", 2},
                         {"processCountPerNode", 2}});
  std::vector<Invocation> r = RunAll(cluster, job, 2);
  for (int n = 0; n < 2; ++n)
    ASSERT_EQ(r[n].exit_code, 0) << "node " << n << "\n" << r[n].out << r[n].err;

  std::set<std::string> checksums;
  for (int rank = 0; rank < 4; ++rank) {
    std::string log = RankLog(rank);
    int node = rank / 2;
    EXPECT_NE(log.find("joined rank " + std::to_string(rank) + " of 4 on " + cluster.Host(node) +
                       " node " + std::to_string(node) + " local " + std::to_string(rank % 2) +
                       " master " + cluster.Address(0) + ":"),
              std::string::npos)
        << log;
    EXPECT_NE(log.find("ifname eth0"), std::string::npos) << log;
    std::smatch m;
    std::vector<double> losses;
    const std::regex step(R"(step \d+ loss ([0-9.]+))");
    for (std::sregex_iterator it(log.begin(), log.end(), step), end; it != end; ++it) {
      losses.push_back(std::stod((*it)[1]));
    }
    ASSERT_EQ(losses.size(), 30u) << "rank " << rank;
    EXPECT_LT(losses.back(), losses.front() / 4) << "the loss did not go down on rank " << rank;
    ASSERT_TRUE(std::regex_search(log, m, std::regex(R"(weight checksum (\S+))"))) << log;
    checksums.insert(m[1]);
  }
  EXPECT_EQ(checksums.size(), 1u) << "the ranks ended with different weights";
  json rec = Record();
  EXPECT_EQ(rec["status"], "Completed");
  EXPECT_EQ(rec["ranks"].size(), 4u);
  ASSERT_EQ(rec["nodes"].size(), 2u);
  EXPECT_EQ(rec["nodes"][1]["host"], cluster.Host(1));
  EXPECT_EQ(rec["details"]["cluster"]["masterAddr"], cluster.Address(0));
  // Outputs of both nodes are in history, and both system logs.
  for (int rank = 0; rank < 4; ++rank) {
    EXPECT_TRUE(fs::exists(RunDir() + "/outputs/rank" + std::to_string(rank) + ".txt")) << rank;
  }
  EXPECT_TRUE(fs::exists(RunDir() + "/outputs/model.pt"));
  EXPECT_TRUE(fs::exists(RunDir() + "/system_logs/trainrun_node_1.log"));
  ExpectNothingLeft(cluster);
}

TEST_F(MultinodeTest, MpiJobsRunThroughTheRshAgentWithoutSshd) {
#ifndef MPI_ALLREDUCE_BINARY
  GTEST_SKIP() << "needs Open MPI's mpicc at build time (apt install libopenmpi-dev)";
#else
  if (access("/usr/bin/mpirun", X_OK) != 0)
    GTEST_SKIP() << "needs mpirun (apt install openmpi-bin)";
  NetnsCluster cluster(2);
  NEED_CLUSTER(cluster);
  EXPECT_NE(std::system("pgrep -x sshd >/dev/null"), 0) << "an sshd runs on this machine";
  struct Program {
    json job;
    std::string line;
  };
  const bool have_mpi4py = std::system("/usr/bin/python3 -c 'import mpi4py' >/dev/null 2>&1") == 0;
  std::vector<Program> programs = {{{{"command", {MPI_ALLREDUCE_BINARY}}},
                                    "allreduce rank {r} of 4 on {host}: sum 6 (expected 6)"}};
  if (have_mpi4py) {
    programs.push_back({{{"script", "mpi4py_allreduce.py"}},
                        "mpi4py rank {r} of 4 on {host}: sum 6 (expected 6)"});
  } else {
    ADD_FAILURE() << "needs mpi4py (apt install python3-mpi4py)";
  }
  for (Program& program : programs) {
    program.job["communicator"] = "Mpi";
    program.job["nodeCount"] = 2;
    program.job["mpi"] = {{"processCountPerNode", 2}};
    std::vector<Invocation> r = RunAll(cluster, Job(program.job), 2);
    for (int n = 0; n < 2; ++n)
      ASSERT_EQ(r[n].exit_code, 0) << "node " << n << "\n" << r[n].out << r[n].err;
    for (int rank = 0; rank < 4; ++rank) {
      std::string expected = std::regex_replace(
          std::regex_replace(program.line, std::regex("\\{r\\}"), std::to_string(rank)),
          std::regex("\\{host\\}"), cluster.Host(rank / 2));
      EXPECT_NE(RankLog(rank).find(expected), std::string::npos)
          << "rank " << rank << ": " << RankLog(rank);
    }
    // The daemon on node 1 came through trainrun's agent, not ssh.
    std::string head_log = ReadFile(RunDir() + "/system_logs/trainrun_node_0.log");
    std::string node_log = ReadFile(RunDir() + "/system_logs/trainrun_node_1.log");
    EXPECT_NE(head_log.find("rsh session 1: starting on node 1"), std::string::npos) << head_log;
    EXPECT_NE(node_log.find("rsh session 1: started pid"), std::string::npos) << node_log;
    EXPECT_NE(node_log.find("orted"), std::string::npos) << node_log;
    EXPECT_EQ(Record()["status"], "Completed");
    EXPECT_EQ(Record()["ranks"].size(), 4u);
    ExpectNothingLeft(cluster);
  }
#endif
}

TEST_F(MultinodeTest, ARankFailingOnNodeOneStopsEveryNodeWithItsExitCode) {
  if (!HavePyTorch())
    GTEST_SKIP() << "needs PyTorch for /usr/bin/python3 (apt install python3-torch)";
  NetnsCluster cluster(2);
  NEED_CLUSTER(cluster);
  // Rank 3 exits 7 after its first step; ranks 0-2 block in the next
  // all-reduce.
  std::string job = Job({{"script", "ddp_train.py"},
                         {"arguments", {"--fail-rank", 3, "--exit-code", 7, "--steps", 1000000}},
                         {"communicator", "Gloo"},
                         {"nodeCount", 2},
                         {"processCountPerNode", 2}});
  std::vector<Invocation> r = RunAll(cluster, job, 2);
  for (int n = 0; n < 2; ++n) EXPECT_EQ(r[n].exit_code, 7) << "node " << n << "\n" << r[n].err;
  ExpectNothingLeft(cluster);
  json rec = Record();
  EXPECT_EQ(rec["status"], "Failed");
  EXPECT_EQ(rec["exitCode"], 7);
  EXPECT_EQ(rec["failure"]["rank"], 3);
  EXPECT_EQ(rec["failure"]["nodeRank"], 1);
  EXPECT_EQ(rec["failure"]["host"], cluster.Host(1));
  EXPECT_EQ(rec["failure"]["exitCode"], 7);
  ASSERT_FALSE(rec["failure"]["stderrTail"].empty());
  EXPECT_EQ(rec["failure"]["stderrTail"].back(), "rank 3: giving up after step 0");
  EXPECT_NE(r[0].err.find("the job failed on node 1 (" + cluster.Host(1) + "): rank 3"),
            std::string::npos)
      << r[0].err;
}

TEST_F(MultinodeTest, ANodeKilledMidRunStopsTheOthersWith69NamingIt) {
  NetnsCluster cluster(3);
  NEED_CLUSTER(cluster);
  std::string pids = dir_ / "pids";
  fs::create_directories(pids);
  std::string job = Job({{"command", {RankHelper(), "--pid-dir", pids}},
                         {"nodeCount", 3},
                         {"processCountPerNode", 2}});
  std::vector<std::unique_ptr<TrainrunProcess>> nodes;
  for (int n = 0; n < 3; ++n) nodes.push_back(Start(cluster, n, job));
  ASSERT_TRUE(WaitFor([&] {
    for (int rank = 0; rank < 6; ++rank) {
      if (ReadFile(pids + "/" + std::to_string(rank) + ".pid").empty()) return false;
    }
    return true;
  }));
  nodes[2]->Signal(SIGKILL);
  nodes[2]->Wait();
  for (int n = 0; n < 2; ++n) {
    Invocation r = nodes[n]->Wait();
    EXPECT_EQ(r.exit_code, 69) << "node " << n << "\n" << r.err;
    EXPECT_NE(r.err.find("node 2 (" + cluster.Host(2)), std::string::npos) << r.err;
  }
  ExpectNothingLeft(cluster);
  json rec = Record();
  EXPECT_EQ(rec["status"], "Failed");
  EXPECT_EQ(rec["exitCode"], 69);
  EXPECT_EQ(rec["outcome"], "node lost");
  EXPECT_EQ(rec["failure"]["nodeRank"], 2);
  EXPECT_EQ(rec["failure"]["host"], cluster.Host(2));
}

TEST_F(MultinodeTest, AHeadStoppedLongerThanItsHeartbeatTimeoutBlamesNoNode) {
  NetnsCluster cluster(2);
  NEED_CLUSTER(cluster);
  RunWithAStall(cluster, 0);
}

TEST_F(MultinodeTest, ANodeStoppedLongerThanItsHeartbeatTimeoutDoesNotBlameTheHead) {
  NetnsCluster cluster(2);
  NEED_CLUSTER(cluster);
  RunWithAStall(cluster, 1);
}

TEST_F(MultinodeTest, ANodeStartedTwentySecondsAfterTheHeadStillJoins) {
  NetnsCluster cluster(2);
  NEED_CLUSTER(cluster);
  std::string job = Job({{"command", {RankHelper(), "--sleep-ms", "200"}},
                         {"nodeCount", 2},
                         {"processCountPerNode", 1}});
  std::unique_ptr<TrainrunProcess> head = Start(cluster, 0, job);
  std::this_thread::sleep_for(std::chrono::seconds(20));
  std::unique_ptr<TrainrunProcess> late = Start(cluster, 1, job);
  Invocation h = head->Wait();
  Invocation l = late->Wait();
  EXPECT_EQ(h.exit_code, 0) << h.err;
  EXPECT_EQ(l.exit_code, 0) << l.err;
  EXPECT_EQ(Record()["status"], "Completed");
}

TEST_F(MultinodeTest, APeerWithTheWrongTokenIsRefusedAndTheJobRuns) {
  NetnsCluster cluster(3);
  NEED_CLUSTER(cluster);
  std::string job = Job({{"command", {RankHelper(), "--sleep-ms", "200"}},
                         {"nodeCount", 2},
                         {"processCountPerNode", 1}});
  std::unique_ptr<TrainrunProcess> head = Start(cluster, 0, job);
  // From the third namespace, an impostor claims node 1 with another token.
  std::vector<std::string> args = {TrainrunBinary(),
                                   "run",
                                   job,
                                   "--node-rank",
                                   "1",
                                   "--master-addr",
                                   cluster.Address(0),
                                   "--history",
                                   history(),
                                   "--workdir",
                                   dir_ / "impostor"};
  fs::create_directories(dir_ / "impostor-out");
  TrainrunProcess impostor(cluster.Command(2, args), {"TRAINRUN_JOB_TOKEN=not-the-token"},
                           dir_ / "impostor-out");
  Invocation refused = impostor.Wait();
  EXPECT_EQ(refused.exit_code, 69) << refused.err;
  EXPECT_NE(refused.err.find("wrong job token"), std::string::npos) << refused.err;
  EXPECT_FALSE(fs::exists(dir_ / "impostor")) << "the impostor laid out a run directory";
  std::unique_ptr<TrainrunProcess> node1 = Start(cluster, 1, job);
  Invocation h = head->Wait();
  Invocation n1 = node1->Wait();
  EXPECT_EQ(h.exit_code, 0) << h.err;
  EXPECT_EQ(n1.exit_code, 0) << n1.err;
  json rec = Record();
  EXPECT_EQ(rec["status"], "Completed");
  EXPECT_EQ(rec["nodes"][1]["host"], cluster.Host(1));
  std::string head_log = ReadFile(RunDir() + "/system_logs/trainrun_node_0.log");
  EXPECT_NE(head_log.find("refused a control connection from " + cluster.Address(2)),
            std::string::npos)
      << head_log;
  EXPECT_NE(head_log.find("wrong job token"), std::string::npos) << head_log;
}

TEST_F(MultinodeTest, NodesSharingOneWorkdirEachWorkInTheirOwnFolder) {
  // One --workdir for both nodes, as on NFS, Lustre or a cluster's home: each node
  // lays out its run in <workdir>/<exp>/<runId>/node<rank>-<host>/, snapshot, data,
  // logs and run.json included, and nothing of one node lands in the other's.
  NetnsCluster cluster(2);
  NEED_CLUSTER(cluster);
  WriteFile(dir_ / "datasets/d/train.csv", "1,2,3\n");
  std::string job =
      Job({{"command",
            {"/bin/sh", "-c",
             "echo \"rank $RANK node $NODE_RANK\" >> marker.txt && mkdir -p outputs && "
             "echo $RANK > outputs/rank$RANK.txt && cat \"$1/train.csv\" && "
             "echo \"cwd $(pwd)\" && touch \"$1/written-by-rank$RANK\"",
             "sh", "{{data.copy}}"}},
           {"data",
            {{"copy",
              {{"dataLocation", {{"uri", "file://" + (dir_ / "datasets/d")}}},
               {"mechanism", "download"}}}}},
           {"nodeCount", 2},
           {"processCountPerNode", 2}});
  const std::string shared = dir_ / "shared-workdir";
  std::vector<std::unique_ptr<TrainrunProcess>> nodes;
  for (int n = 0; n < 2; ++n) nodes.push_back(Start(cluster, n, job, kToken, {}, shared));
  for (int n = 0; n < 2; ++n) {
    Invocation r = nodes[n]->Wait(std::chrono::seconds(300));
    ASSERT_EQ(r.exit_code, 0) << "node " << n << "\n" << r.out << r.err;
  }
  const std::string run_root = shared + "/multinode/" + run_id_;
  std::set<std::string> entries;
  for (const auto& e : fs::directory_iterator(run_root)) entries.insert(e.path().filename());
  const std::set<std::string> expected = {"node0-" + cluster.Host(0), "node1-" + cluster.Host(1)};
  EXPECT_EQ(entries, expected) << "the shared run folder holds more than one folder per node";
  for (int n = 0; n < 2; ++n) {
    const std::string node_dir = run_root + "/node" + std::to_string(n) + "-" + cluster.Host(n);
    SCOPED_TRACE(node_dir);
    const int first = 2 * n;
    // The ranks' working directory is this node's snapshot, and only its ranks wrote there.
    EXPECT_EQ(ReadFile(node_dir + "/wd/marker.txt").size(),
              std::string("rank 0 node 0\n").size() * 2);
    for (int rank = first; rank < first + 2; ++rank) {
      EXPECT_NE(ReadFile(node_dir + "/wd/marker.txt")
                    .find("rank " + std::to_string(rank) + " node " + std::to_string(n)),
                std::string::npos);
      std::string log =
          ReadFile(node_dir + "/user_logs/std_log_process_" + std::to_string(rank) + ".txt");
      EXPECT_NE(log.find("1,2,3\ncwd " + node_dir + "/wd\n"), std::string::npos) << log;
      EXPECT_TRUE(fs::exists(node_dir + "/wd/outputs/rank" + std::to_string(rank) + ".txt"));
      EXPECT_TRUE(fs::exists(node_dir + "/data/copy/written-by-rank" + std::to_string(rank)));
    }
    std::set<std::string> logs, data;
    for (const auto& e : fs::directory_iterator(node_dir + "/user_logs"))
      logs.insert(e.path().filename());
    EXPECT_EQ(logs,
              (std::set<std::string>{"std_log_process_" + std::to_string(first) + ".txt",
                                     "std_log_process_" + std::to_string(first + 1) + ".txt"}));
    for (const auto& e : fs::directory_iterator(node_dir + "/data/copy"))
      data.insert(e.path().filename());
    EXPECT_EQ(data, (std::set<std::string>{"train.csv", "written-by-rank" + std::to_string(first),
                                           "written-by-rank" + std::to_string(first + 1)}));
    // trainrun_node_<n>.log, binding_node_<n>.txt: every file names this node.
    EXPECT_TRUE(fs::exists(node_dir + "/system_logs/trainrun_node_" + std::to_string(n) + ".log"));
    for (const auto& e : fs::directory_iterator(node_dir + "/system_logs")) {
      EXPECT_NE(e.path().filename().string().find("_node_" + std::to_string(n) + "."),
                std::string::npos)
          << e.path();
    }
    json local = json::parse(ReadFile(node_dir + "/run.json"));
    EXPECT_EQ(local["status"], "Completed");
  }
  json rec = Record();
  EXPECT_EQ(rec["status"], "Completed");
  for (int rank = 0; rank < 4; ++rank) {
    EXPECT_EQ(ReadFile(RunDir() + "/outputs/rank" + std::to_string(rank) + ".txt"),
              std::to_string(rank) + "\n");
  }
  EXPECT_TRUE(rec["details"]["outputConflicts"].empty()) << rec["details"]["outputConflicts"];
  ExpectNothingLeft(cluster);
}

TEST_F(MultinodeTest, ScancelWithSlurmsKillWaitLeavesEveryNodesOutputsInHistory) {
  NetnsCluster cluster(2);
  NEED_CLUSTER(cluster);
  // Slurm as scancel stops a step: SIGTERM to every node's trainrun at once, SIGKILL
  // KillWait later. KillWait comes from (a fake) `scontrol show config`: 30 s,
  // Slurm's default and trainrun's old grace period, with which node 1 was killed
  // before it uploaded (issue 11, defect 3). Rank 3, on node 1, ignores SIGTERM.
  const std::string bin = dir_ / "bin";
  WriteFile(bin + "/scontrol",
            "#!/bin/sh\n[ \"$1 $2\" = 'show config' ] || exit 1\n"
            "echo 'KillWait                = 30 sec'\n");
  fs::permissions(bin + "/scontrol", fs::perms::owner_all | fs::perms::group_read |
                                         fs::perms::group_exec | fs::perms::others_read |
                                         fs::perms::others_exec);
  extra_env_ = {"SLURM_JOB_ID=4242", "PATH=" + bin + ":" + std::getenv("PATH")};
  fixed_grace_ = false;
  const std::string pids = dir_ / "pids";
  fs::create_directories(pids);
  std::string job = Job(
      {{"command", {RankHelper(), "--pid-dir", pids, "--write-output", "--ignore-term-rank", "3"}},
       {"nodeCount", 2},
       {"processCountPerNode", 2}});
  std::vector<std::unique_ptr<TrainrunProcess>> nodes;
  for (int n = 0; n < 2; ++n) nodes.push_back(Start(cluster, n, job));
  const bool started = WaitFor([&] {
    for (int rank = 0; rank < 4; ++rank) {
      if (ReadFile(pids + "/" + std::to_string(rank) + ".pid").empty()) return false;
    }
    return true;
  });
  if (!started) {
    for (int n = 0; n < 2; ++n) {
      nodes[n]->Signal(SIGKILL);
      ADD_FAILURE() << "the ranks did not start; node " << n << ":\n" << nodes[n]->Wait().err;
    }
    return;
  }
  for (auto& node : nodes) node->Signal(SIGTERM);
  const auto kill_wait = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  for (int n = 0; n < 2; ++n) {
    if (!nodes[n]->ExitsBy(kill_wait)) nodes[n]->Signal(SIGKILL);
    Invocation r = nodes[n]->Wait();
    // 137: Slurm's SIGKILL came first.
    EXPECT_EQ(r.exit_code, 143) << "node " << n << "\n" << r.err;
  }
  ExpectNothingLeft(cluster);
  json rec = Record();
  EXPECT_EQ(rec["status"], "Canceled");
  EXPECT_EQ(rec["exitCode"], 143);
  for (int rank = 0; rank < 4; ++rank) {
    EXPECT_EQ(ReadFile(RunDir() + "/outputs/rank" + std::to_string(rank) + ".txt"),
              "rank " + std::to_string(rank) + "\n")
        << "rank " << rank;
  }
  EXPECT_TRUE(rec["uploadErrors"].empty()) << rec["uploadErrors"].dump();
  EXPECT_EQ(rec["details"]["stop"]["stopTimeoutSeconds"], 30);
  EXPECT_EQ(rec["details"]["stop"]["gracePeriodSeconds"], 20);
  bool rank3_killed = false;
  for (const json& rank : rec["ranks"]) {
    if (rank["rank"] == 3) rank3_killed = rank["signal"] == SIGKILL;
  }
  EXPECT_TRUE(rank3_killed) << rec["ranks"].dump();
}

// Preflight (README "Preflight"): node 1's second GPU has uncorrectable ECC errors.
// Node 1 fails its health checks; the head hears of it and stops node 0's NCCL check
// (a stand-in that would run for a minute) at once; both nodes exit 75 before the
// script starts, and the job's record names node 1, the GPU and the check.
TEST_F(MultinodeTest, APreflightFailureOnNodeOneStopsEveryNodeWith75NamingIt) {
  NetnsCluster cluster(2);
  NEED_CLUSTER(cluster);
  const std::string marker = dir_ / "script-ran";
  WriteFile(dir_ / "devices", "00000000:34:00.0 GPU-a Fake\n00000000:35:00.0 GPU-b Fake\n");
  WriteFile(dir_ / "healthy", "");
  WriteFile(dir_ / "ecc", "0000:35:00.0 ecc_volatile=3\n");
  const std::string check = dir_ / "nccl-check";
  WriteFile(check, "#!/bin/sh\nexec sleep 60\n");
  fs::permissions(check, fs::perms::owner_all);
  std::string job = Job({{"command", {"/bin/sh", "-c", "touch " + marker}},
                         {"nodeCount", 2},
                         {"processCountPerNode", 2},
                         {"binding", "none"},
                         {"preflight", true}});
  std::vector<std::unique_ptr<TrainrunProcess>> nodes;
  const auto started = std::chrono::steady_clock::now();
  for (int n = 0; n < 2; ++n) {
    nodes.push_back(Start(cluster, n, job, kToken, {}, "",
                          {std::string("TRAINRUN_NVML_LIBRARY=") + FAKE_NVML_LIBRARY,
                           "FAKE_NVML_DEVICES=" + (dir_ / "devices"),
                           "FAKE_NVML_HEALTH=" + (dir_ / (n == 1 ? "ecc" : "healthy")),
                           "TRAINRUN_NCCL_CHECK=" + check}));
  }
  std::vector<Invocation> r;
  for (auto& node : nodes) r.push_back(node->Wait(std::chrono::seconds(90)));
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  for (int n = 0; n < 2; ++n) EXPECT_EQ(r[n].exit_code, 75) << "node " << n << "\n" << r[n].err;
  EXPECT_LT(seconds, 45) << "node 0's NCCL check was not stopped when node 1 failed";
  EXPECT_FALSE(fs::exists(marker)) << "the user's script ran";
  EXPECT_NE(r[1].err.find("preflight failed on node 1"), std::string::npos) << r[1].err;
  EXPECT_NE(r[1].err.find("0000:35:00.0"), std::string::npos) << r[1].err;
  // Node 0 says which node failed, and why.
  EXPECT_NE(r[0].err.find("node 1 (" + cluster.Host(1)), std::string::npos) << r[0].err;
  EXPECT_NE(r[0].err.find("preflight: GPU 0000:35:00.0"), std::string::npos) << r[0].err;
  EXPECT_EQ(r[0].err.find("preflight failed on node 0"), std::string::npos) << r[0].err;
  EXPECT_NE(r[0].err.find("ecc"), std::string::npos) << r[0].err;
  json rec = Record();
  EXPECT_EQ(rec["status"], "Failed");
  EXPECT_EQ(rec["exitCode"], 75);
  EXPECT_NE(rec["stopReason"].get<std::string>().find("node 1 ("), std::string::npos)
      << rec["stopReason"];
  ASSERT_TRUE(rec.contains("failure")) << rec.dump(1);
  EXPECT_EQ(rec["failure"]["nodeRank"], 1);
  EXPECT_EQ(rec["failure"]["host"], cluster.Host(1));
  EXPECT_EQ(rec["outcome"], "preflight failed");
  json pf = rec["details"]["preflight"];
  EXPECT_EQ(pf["result"], "failed");
  EXPECT_NE(pf["failure"].get<std::string>().find("node 1"), std::string::npos);
  bool named = false;
  for (const json& node : pf["nodes"]) {
    if (node["nodeRank"] == 1) {
      EXPECT_EQ(node["failures"][0]["check"], "ecc");
      EXPECT_EQ(node["failures"][0]["gpu"], "0000:35:00.0");
      named = true;
    }
  }
  EXPECT_TRUE(named) << pf.dump(1);
  ExpectNothingLeft(cluster);
}

// TensorFlow parameter servers without TensorFlow (tf_ps_roles.py): 1 chief + 2
// ps + 3 workers dealt over 2 nodes (node 0: chief, ps 1, worker 1; node 1: ps 0,
// worker 0, worker 2). Every chief and worker talks to every ps across the nodes
// and exits 0; the servers never do, and trainrun stops them on both nodes.
TEST_F(MultinodeTest, ParameterServersAreStoppedOnEveryNodeOnceEveryWorkerExitedZero) {
  NetnsCluster cluster(2);
  NEED_CLUSTER(cluster);
  std::string job =
      Job({{"script", "tf_ps_roles.py"},
           {"communicator", "ParameterServer"},
           {"nodeCount", 2},
           {"tensorflow", {{"workerCount", 3}, {"parameterServerCount", 2}, {"chief", true}}}});
  std::vector<Invocation> r = RunAll(cluster, job, 2);
  for (int n = 0; n < 2; ++n) {
    ASSERT_EQ(r[n].exit_code, 0) << "node " << n << "\n" << r[n].out << r[n].err;
  }
  EXPECT_NE(r[0].err.find("every worker of the job exited 0: stopping the parameter servers"),
            std::string::npos)
      << r[0].err;
  // Ranks are node-major: node 0 runs ranks 0-2, node 1 ranks 3-5.
  const std::vector<std::string> tasks = {"chief 0", "ps 1",     "worker 1",
                                          "ps 0",    "worker 0", "worker 2"};
  const std::vector<int> node_of = {0, 0, 0, 1, 1, 1};
  json cluster_json;
  for (int rank = 0; rank < 6; ++rank) {
    const std::string log = RankLog(rank);
    std::smatch m;
    ASSERT_TRUE(std::regex_search(
        log, m,
        std::regex("rank " + std::to_string(rank) + " is " + tasks[rank] + "; cluster (.*)")))
        << "rank " << rank << ": " << log;
    json c = json::parse(m[1].str());
    if (rank == 0) cluster_json = c;
    EXPECT_EQ(c, cluster_json) << "rank " << rank << " sees another cluster";
    if (tasks[rank].rfind("ps", 0) == 0) {
      EXPECT_NE(log.find(tasks[rank] + " listening on " + cluster.Address(node_of[rank])),
                std::string::npos)
          << log;
    } else {
      for (const char* ps : {"ps 0", "ps 1"}) {
        EXPECT_NE(log.find(tasks[rank] + " got '" + ps + " acks hello from " + tasks[rank] + "'"),
                  std::string::npos)
            << log;
      }
    }
  }
  ASSERT_EQ(cluster_json["chief"].size(), 1u);
  EXPECT_EQ(cluster_json["chief"][0].get<std::string>().rfind(cluster.Address(0) + ":", 0), 0u);
  EXPECT_EQ(cluster_json["ps"].size(), 2u);
  EXPECT_EQ(cluster_json["worker"].size(), 3u);
  EXPECT_EQ(cluster_json["ps"][0].get<std::string>().rfind(cluster.Address(1) + ":", 0), 0u);
  EXPECT_EQ(cluster_json["ps"][1].get<std::string>().rfind(cluster.Address(0) + ":", 0), 0u);
  json rec = Record();
  EXPECT_EQ(rec["status"], "Completed");
  EXPECT_EQ(rec["exitCode"], 0);
  EXPECT_FALSE(rec.contains("failure")) << rec["failure"].dump();
  ASSERT_EQ(rec["ranks"].size(), 6u);
  for (const json& rank : rec["ranks"]) {
    const bool server = tasks[rank["rank"].get<int>()].rfind("ps", 0) == 0;
    EXPECT_EQ(rank["stoppedByTrainrun"], server) << rank.dump();
    if (server) {
      EXPECT_EQ(rank["signal"], SIGTERM) << rank.dump();
    } else {
      EXPECT_EQ(rank["exitCode"], 0) << rank.dump();
    }
  }
  ExpectNothingLeft(cluster);
}

// A parameter server that crashes is the normal fail-fast: every node stops, and
// the job fails with its code.
TEST_F(MultinodeTest, AParameterServerCrashStopsEveryNode) {
  NetnsCluster cluster(2);
  NEED_CLUSTER(cluster);
  std::string job =
      Job({{"command",
            {"/bin/sh", "-c",
             "case \"$TF_CONFIG\" in *'\"type\":\"ps\"'*) sleep 1; exit 7;; esac; sleep 600"}},
           {"communicator", "ParameterServer"},
           {"nodeCount", 2},
           {"tensorflow", {{"workerCount", 2}, {"parameterServerCount", 1}}}});
  std::vector<Invocation> r = RunAll(cluster, job, 2);
  for (int n = 0; n < 2; ++n) EXPECT_EQ(r[n].exit_code, 7) << "node " << n << "\n" << r[n].err;
  json rec = Record();
  EXPECT_EQ(rec["status"], "Failed");
  EXPECT_EQ(rec["failure"]["rank"], 0) << rec["failure"].dump();
  ExpectNothingLeft(cluster);
}

// In-place restarts of a job on several nodes (README "In-place restarts"): the
// head decides for the job from the attempt's earliest failure, on any node.
class MultinodeRestartTest : public MultinodeTest {
 protected:
  // A 2-node x 2-rank job whose ranks run `script` with /bin/sh in their node's
  // working directory.
  std::string RestartJob(const std::string& script, int max_restarts) {
    return Job({{"command", {"/bin/sh", "-c", script}},
                {"nodeCount", 2},
                {"processCountPerNode", 2},
                {"maxRestarts", max_restarts},
                {"restarts", {{"backoffSeconds", 0}}}});
  }
};

TEST_F(MultinodeRestartTest, ARankFailingOnNodeOneRestartsEveryNodeAndResumes) {
  NetnsCluster cluster(2);
  NEED_CLUSTER(cluster);
  std::vector<Invocation> r = RunAll(cluster, RestartJob(ResumingRankScript(3), 2), 2);
  for (int n = 0; n < 2; ++n) {
    ASSERT_EQ(r[n].exit_code, 0) << "node " << n << "\n" << r[n].out << r[n].err;
    EXPECT_NE(r[n].err.find("attempt 1 failed (exit code 3): restart 1 of 2 in 0 s"),
              std::string::npos)
        << "node " << n << "\n"
        << r[n].err;
  }
  EXPECT_NE(r[1].err.find("NCCL timeout"), std::string::npos)
      << "attempt 1's summary: " << r[1].err;
  // The failure, then that it restarts: no "error:" for a failure that is retried.
  const size_t summary = r[1].err.find("rank 3 on " + cluster.Host(1) + " (node 1) exited");
  ASSERT_NE(summary, std::string::npos) << r[1].err;
  EXPECT_LT(summary, r[1].err.find("attempt 1 failed (exit code 3): restart")) << r[1].err;
  EXPECT_EQ(r[1].err.find("error:"), std::string::npos) << r[1].err;
  EXPECT_NE(r[1].out.find("[rank 3] resumed from step 500 on attempt 2 (restart 1 of 2)"),
            std::string::npos)
      << r[1].out;
  // Every rank's log, on both nodes, keeps both attempts, each after its marker.
  const std::string log3 = RankLog(3);
  const size_t saved = log3.find("saved step 500 on attempt 1");
  const size_t second = log3.find("=== trainrun: attempt 2 of at most 3 (");
  const size_t resumed = log3.find("resumed from step 500 on attempt 2");
  ASSERT_NE(saved, std::string::npos) << log3;
  ASSERT_NE(second, std::string::npos) << log3;
  EXPECT_LT(saved, second) << log3;
  EXPECT_LT(second, resumed) << log3;
  for (int rank = 0; rank < 3; ++rank) {
    const std::string log = RankLog(rank);
    EXPECT_NE(log.find("=== trainrun: attempt 1 of at most 3 ("), std::string::npos) << log;
    EXPECT_NE(log.find("=== trainrun: attempt 2 of at most 3 ("), std::string::npos) << log;
    EXPECT_NE(log.find("rank " + std::to_string(rank) + " on attempt 2 (restart 1)"),
              std::string::npos)
        << log;
  }
  json rec = Record();
  EXPECT_EQ(rec["status"], "Completed");
  EXPECT_EQ(rec["exitCode"], 0);
  EXPECT_FALSE(rec.contains("failure")) << rec.dump(2);
  ASSERT_EQ(rec["attempts"].size(), 2u) << rec.dump(2);
  const json& a1 = rec["attempts"][0];
  EXPECT_EQ(a1["outcome"], "rank failed");
  EXPECT_EQ(a1["exitCode"], 3);
  EXPECT_EQ(a1["failedRank"], 3);
  EXPECT_EQ(a1["failedNodeRank"], 1);
  EXPECT_NE(a1["reason"].get<std::string>().find("rank 3 on node 1 (" + cluster.Host(1)),
            std::string::npos)
      << a1.dump();
  EXPECT_EQ(a1["next"], "restart 1 of 2 in 0 s");
  EXPECT_EQ(rec["attempts"][1]["outcome"], "succeeded");
  EXPECT_EQ(rec["attempts"][1]["exitCode"], 0);
  ExpectNothingLeft(cluster);
}

TEST_F(MultinodeRestartTest, RestartsUsedUpEndEveryNodeWithTheLastAttemptsCode) {
  NetnsCluster cluster(2);
  NEED_CLUSTER(cluster);
  std::vector<Invocation> r =
      RunAll(cluster, RestartJob("[ \"$RANK\" = 3 ] && exit 3; exec sleep 60", 1), 2);
  for (int n = 0; n < 2; ++n) EXPECT_EQ(r[n].exit_code, 3) << "node " << n << "\n" << r[n].err;
  json rec = Record();
  EXPECT_EQ(rec["status"], "Failed");
  EXPECT_EQ(rec["failure"]["rank"], 3);
  EXPECT_EQ(rec["failure"]["nodeRank"], 1);
  ASSERT_EQ(rec["attempts"].size(), 2u) << rec.dump(2);
  EXPECT_EQ(rec["attempts"][1]["exitCode"], 3);
  EXPECT_EQ(rec["attempts"][1]["next"], "not restarted: all 1 restart(s) of maxRestarts used");
  ExpectNothingLeft(cluster);
}

TEST_F(MultinodeRestartTest, ACodeThatMeansABadJobIsNotRestarted) {
  NetnsCluster cluster(2);
  NEED_CLUSTER(cluster);
  std::vector<Invocation> r =
      RunAll(cluster, RestartJob("[ \"$RANK\" = 3 ] && exit 127; exec sleep 60", 3), 2);
  for (int n = 0; n < 2; ++n) {
    EXPECT_EQ(r[n].exit_code, 127) << "node " << n << "\n" << r[n].err;
    EXPECT_EQ(r[n].err.find("attempt 2"), std::string::npos) << r[n].err;
  }
  json rec = Record();
  ASSERT_EQ(rec["attempts"].size(), 1u) << rec.dump(2);
  EXPECT_NE(rec["attempts"][0]["next"].get<std::string>().find(
                "not restarted: exit code 127 means a bad job"),
            std::string::npos)
      << rec["attempts"][0].dump();
  ExpectNothingLeft(cluster);
}

// Node 1's trainrun is SIGKILLed while its ranks run (they die with it), then
// started again with the same arguments, as a scheduler restarts a pod: the head
// keeps the job, the new trainrun joins attempt 2, and the job completes.
TEST_F(MultinodeRestartTest, ANodeWhoseTrainrunIsKilledRejoinsAndTheJobCompletesWithAttempt2) {
  NetnsCluster cluster(2);
  NEED_CLUSTER(cluster);
  const std::string marks = dir_ / "marks";
  fs::create_directories(marks);
  // Each rank leaves an output of its own on attempt 1, and one that attempt 2
  // writes again.
  const std::string job = RestartJob(
      "echo $TRAINRUN_ATTEMPT > \"$TRAINRUN_OUTPUTS_DIR/last-rank$RANK.txt\"\n"
      "if [ \"$TRAINRUN_ATTEMPT\" = 1 ]; then\n"
      "  echo \"attempt 1 of rank $RANK\" > \"$TRAINRUN_OUTPUTS_DIR/a1-rank$RANK.txt\"\n"
      "  echo \"rank $RANK started attempt 1\"; touch " +
          marks +
          "/$RANK.a1; exec sleep 60\n"
          "fi\n"
          "echo \"rank $RANK on attempt $TRAINRUN_ATTEMPT (restart $TORCHELASTIC_RESTART_COUNT)\"",
      1);
  std::unique_ptr<TrainrunProcess> head = Start(cluster, 0, job);
  std::unique_ptr<TrainrunProcess> node1 = Start(cluster, 1, job);
  ASSERT_TRUE(AllRanksMarked(marks, 4));
  // Rank 3's line is in its log on node 1 (not yet uploaded, at the default 5 s
  // interval) when the node's trainrun is killed.
  const std::string local_log3 = dir_ / ("w1/multinode/" + run_id_ + "/node1-" + cluster.Host(1) +
                                         "/user_logs/std_log_process_3.txt");
  ASSERT_TRUE(WaitFor([&] {
    return ReadFile(local_log3).find("rank 3 started attempt 1") != std::string::npos;
  })) << local_log3;
  KillNode(cluster, 1, *node1);  // its ranks go with it
  const std::string replaced_at = IsoNow();
  std::unique_ptr<TrainrunProcess> replacement = Start(cluster, 1, job);
  Invocation r1 = replacement->Wait(std::chrono::seconds(120));
  Invocation r0 = head->Wait(std::chrono::seconds(120));
  ASSERT_EQ(r0.exit_code, 0) << r0.err;
  ASSERT_EQ(r1.exit_code, 0) << r1.err;
  EXPECT_NE(r0.err.find("joined in place of the lost node 1, for attempt 2"), std::string::npos)
      << r0.err;
  EXPECT_NE(r1.err.find("this node takes the place of the job's lost node 1: its ranks join "
                        "attempt 2"),
            std::string::npos)
      << r1.err;
  EXPECT_NE(r1.out.find("[rank 3] rank 3 on attempt 2 (restart 1)"), std::string::npos) << r1.out;
  EXPECT_NE(RankLog(0).find("rank 0 on attempt 2 (restart 1)"), std::string::npos) << RankLog(0);
  json rec = Record();
  EXPECT_EQ(rec["status"], "Completed");
  EXPECT_EQ(rec["exitCode"], 0);
  ASSERT_EQ(rec["attempts"].size(), 2u) << rec.dump(2);
  const json& a1 = rec["attempts"][0];
  EXPECT_EQ(a1["outcome"], "node lost");
  EXPECT_EQ(a1["exitCode"], 69);
  EXPECT_EQ(a1["failedNodeRank"], 1) << a1.dump();
  EXPECT_NE(a1["reason"].get<std::string>().find("node 1 (" + cluster.Host(1)), std::string::npos)
      << a1.dump();
  EXPECT_EQ(a1["next"], "restart 1 of 1 in 0 s");
  EXPECT_EQ(rec["attempts"][1]["outcome"], "succeeded");
  // Attempt 2 started with its ranks, once the new trainrun had joined and prepared.
  EXPECT_GT(rec["attempts"][1]["start"].get<std::string>(), replaced_at) << rec["attempts"].dump();
  // Nothing the lost trainrun's attempt wrote is lost from history: its rank logs
  // (from the run directory kept aside on this host, with the line written after
  // the last upload) go on with attempt 2, and its outputs are uploaded too, those
  // that attempt 2 wrote again in their attempt-2 version.
  for (int rank : {2, 3}) {
    const std::string log = RankLog(rank);
    const std::string r = std::to_string(rank);
    const size_t first = log.find("=== trainrun: attempt 1 of at most 2 (");
    const size_t started = log.find("rank " + r + " started attempt 1");
    const size_t second = log.find("=== trainrun: attempt 2 of at most 2 (");
    const size_t ended = log.find("rank " + r + " on attempt 2 (restart 1)");
    ASSERT_NE(first, std::string::npos) << log;
    ASSERT_NE(started, std::string::npos) << log;
    ASSERT_NE(second, std::string::npos) << log;
    ASSERT_NE(ended, std::string::npos) << log;
    EXPECT_LT(first, started) << log;
    EXPECT_LT(started, second) << log;
    EXPECT_LT(second, ended) << log;
    EXPECT_EQ(ReadFile(RunDir() + "/outputs/a1-rank" + r + ".txt"),
              "attempt 1 of rank " + r + "\n");
    EXPECT_EQ(ReadFile(RunDir() + "/outputs/last-rank" + r + ".txt"), "2\n");
  }
  // Node 1's system log holds both of its trainruns'.
  const std::string system_log = ReadFile(RunDir() + "/system_logs/trainrun_node_1.log");
  const std::string opening = "node1-" + cluster.Host(1) + "; run history";
  const size_t lost = system_log.find(opening);
  ASSERT_NE(lost, std::string::npos) << system_log;
  const size_t replacing = system_log.find(opening, lost + 1);
  ASSERT_NE(replacing, std::string::npos) << system_log;
  EXPECT_NE(system_log.find("is kept as", replacing), std::string::npos) << system_log;
  ExpectNothingLeft(cluster);
}

// A replacement that starts at once, as Kubernetes restarts a pod within a
// second: its Join reaches the head while the head still stops attempt 1 (rank 0
// ignores SIGTERM and holds the stop for the 5 s grace period). The head holds
// the join until attempt 1's verdict, then takes it for attempt 2.
TEST_F(MultinodeRestartTest, AReplacementStartedAtOnceWaitsForTheAttemptsEndAndJoinsTheNext) {
  NetnsCluster cluster(2);
  NEED_CLUSTER(cluster);
  const std::string marks = dir_ / "marks";
  fs::create_directories(marks);
  const std::string job = RestartJob(
      "if [ \"$TRAINRUN_ATTEMPT\" = 1 ]; then\n"
      "  [ \"$RANK\" = 0 ] && trap '' TERM\n"
      "  touch " +
          marks +
          "/$RANK.a1; exec sleep 60\n"
          "fi\n"
          "echo \"rank $RANK on attempt $TRAINRUN_ATTEMPT\"",
      1);
  std::unique_ptr<TrainrunProcess> head = Start(cluster, 0, job);
  std::unique_ptr<TrainrunProcess> node1 = Start(cluster, 1, job);
  ASSERT_TRUE(AllRanksMarked(marks, 4));
  KillNode(cluster, 1, *node1);
  std::unique_ptr<TrainrunProcess> replacement = Start(cluster, 1, job);
  Invocation r1 = replacement->Wait(std::chrono::seconds(120));
  Invocation r0 = head->Wait(std::chrono::seconds(120));
  ASSERT_EQ(r0.exit_code, 0) << r0.err;
  ASSERT_EQ(r1.exit_code, 0) << r1.err;
  // The join came during the stop, and was held rather than refused.
  const size_t held = r0.err.find(
      "came to take the lost node's place; it waits for the end of "
      "attempt 1");
  const size_t joined = r0.err.find("joined in place of the lost node 1, for attempt 2");
  ASSERT_NE(held, std::string::npos) << r0.err;
  ASSERT_NE(joined, std::string::npos) << r0.err;
  EXPECT_LT(held, joined) << r0.err;
  EXPECT_EQ(r0.err.find("tried to join after the rendezvous"), std::string::npos) << r0.err;
  EXPECT_NE(r1.out.find("[rank 3] rank 3 on attempt 2"), std::string::npos) << r1.out;
  EXPECT_NE(r0.out.find("[rank 0] rank 0 on attempt 2"), std::string::npos) << r0.out;
  json rec = Record();
  EXPECT_EQ(rec["status"], "Completed");
  EXPECT_EQ(rec["exitCode"], 0);
  ASSERT_EQ(rec["attempts"].size(), 2u) << rec.dump(2);
  EXPECT_EQ(rec["attempts"][0]["outcome"], "node lost");
  EXPECT_EQ(rec["attempts"][0]["failedNodeRank"], 1);
  EXPECT_EQ(rec["attempts"][1]["outcome"], "succeeded");
  ExpectNothingLeft(cluster);
}

// The same, but no new trainrun comes: the job ends with 69 once
// restarts.rejoinTimeoutSeconds passed.
TEST_F(MultinodeRestartTest, ALostNodeThatDoesNotComeBackInTimeEndsTheJobWith69) {
  NetnsCluster cluster(2);
  NEED_CLUSTER(cluster);
  const std::string marks = dir_ / "marks";
  fs::create_directories(marks);
  const std::string job =
      Job({{"command", {"/bin/sh", "-c", "touch " + marks + "/$RANK; exec sleep 60"}},
           {"nodeCount", 2},
           {"processCountPerNode", 1},
           {"maxRestarts", 1},
           {"restarts", {{"backoffSeconds", 0}, {"rejoinTimeoutSeconds", 2}}}});
  std::unique_ptr<TrainrunProcess> head = Start(cluster, 0, job);
  std::unique_ptr<TrainrunProcess> node1 = Start(cluster, 1, job);
  ASSERT_TRUE(WaitFor([&] { return fs::exists(marks + "/0") && fs::exists(marks + "/1"); }));
  KillNode(cluster, 1, *node1);
  Invocation r0 = head->Wait(std::chrono::seconds(60));
  EXPECT_EQ(r0.exit_code, 69) << r0.err;
  EXPECT_NE(r0.err.find("no new trainrun for node 1 joined within 2 s"), std::string::npos)
      << r0.err;
  // Attempt 2's ranks never started: the pipes made for them are trainrun's own and
  // are closed, not waited for as if someone else held them.
  EXPECT_EQ(r0.err.find("a process outside the ranks' process groups"), std::string::npos)
      << r0.err;
  json rec = Record();
  EXPECT_EQ(rec["status"], "Failed");
  EXPECT_EQ(rec["exitCode"], 69);
  EXPECT_EQ(rec["outcome"], "node lost");
  ExpectNothingLeft(cluster);
}

// Node 1's trainrun is SIGKILLed after its rank 2 saved a checkpoint that went up
// to history, and started again with a fresh --workdir, as on another host: the
// rank's attempt 2 finds the checkpoint restored from the store (nothing of attempt
// 1 is on that disk), and history's log of rank 2 holds both attempts, attempt 1's
// taken from history itself.
TEST_F(MultinodeRestartTest, ARejoiningNodeOnAnotherDiskResumesFromTheCheckpointInTheStore) {
  NetnsCluster cluster(2);
  NEED_CLUSTER(cluster);
  const std::string job =
      Job({{"command",
            {"/bin/sh", "-c",
             "cd \"$TRAINRUN_CHECKPOINT_DIR\"\n"
             "if [ \"$RANK\" = 2 ] && [ \"$TRAINRUN_ATTEMPT\" = 1 ]; then\n"
             "  echo 700 > .step.tmp && mv .step.tmp step.txt\n"
             "  mkdir -p .trainrun/commit && touch .trainrun/.c && mv .trainrun/.c "
             ".trainrun/commit/step.txt\n"
             "  echo \"saved step 700 on attempt 1\"\n"
             "fi\n"
             "[ \"$TRAINRUN_ATTEMPT\" = 1 ] && exec sleep 60\n"
             "if [ \"$RANK\" = 2 ]; then\n"
             "  echo \"resumed from step $(cat step.txt) on attempt $TRAINRUN_ATTEMPT in $PWD\"\n"
             "fi"}},
           {"nodeCount", 2},
           {"processCountPerNode", 2},
           {"maxRestarts", 1},
           {"restarts", {{"backoffSeconds", 0}}},
           {"checkpoints", {{"quietPeriodSeconds", 0}, {"scanIntervalSeconds", 0.2}}}});
  std::unique_ptr<TrainrunProcess> head = Start(cluster, 0, job);
  std::unique_ptr<TrainrunProcess> node1 =
      Start(cluster, 1, job, kToken, {"--log-upload-interval", "0.2"});
  // The checkpoint is in history (its node's manifest lists it), and so is the
  // rank's line.
  const std::string manifest = RunDir() + "/checkpoints/.trainrun/node-1.json";
  ASSERT_TRUE(WaitFor([&] {
    return ReadFile(manifest).find("step.txt") != std::string::npos &&
           RankLog(2).find("saved step 700 on attempt 1") != std::string::npos;
  })) << ReadFile(manifest)
      << RankLog(2);
  KillNode(cluster, 1, *node1);
  const std::string fresh = dir_ / "w1-fresh";
  std::unique_ptr<TrainrunProcess> replacement = Start(cluster, 1, job, kToken, {}, fresh);
  Invocation r1 = replacement->Wait(std::chrono::seconds(120));
  Invocation r0 = head->Wait(std::chrono::seconds(120));
  ASSERT_EQ(r0.exit_code, 0) << r0.err;
  ASSERT_EQ(r1.exit_code, 0) << r1.err;
  EXPECT_NE(r1.err.find("restored 1 checkpoint(s) from"), std::string::npos) << r1.err;
  EXPECT_EQ(r1.err.find("is kept as"), std::string::npos) << r1.err;
  const std::string resumed = "[rank 2] resumed from step 700 on attempt 2 in " + fresh + "/";
  EXPECT_NE(r1.out.find(resumed), std::string::npos) << r1.out;
  const std::string log = RankLog(2);
  const size_t saved = log.find("saved step 700 on attempt 1");
  const size_t second = log.find("=== trainrun: attempt 2 of at most 2 (");
  const size_t resumed_line = log.find("resumed from step 700 on attempt 2");
  ASSERT_NE(saved, std::string::npos) << log;
  ASSERT_NE(second, std::string::npos) << log;
  ASSERT_NE(resumed_line, std::string::npos) << log;
  EXPECT_LT(log.find("=== trainrun: attempt 1 of at most 2 ("), saved) << log;
  EXPECT_LT(saved, second) << log;
  EXPECT_LT(second, resumed_line) << log;
  json rec = Record();
  EXPECT_EQ(rec["status"], "Completed");
  EXPECT_EQ(rec["exitCode"], 0);
  ASSERT_EQ(rec["attempts"].size(), 2u) << rec.dump(2);
  EXPECT_EQ(rec["attempts"][0]["outcome"], "node lost");
  ExpectNothingLeft(cluster);
}

// Node 1's trainrun is SIGKILLed in the backoff after attempt 1 failed, before
// attempt 2's ranks start: as for a node lost while the ranks run, one attempt is
// used (attempt 2 ends before its ranks start), the head waits for a new trainrun,
// and it joins attempt 3, with which the job completes.
TEST_F(MultinodeRestartTest, ANodeLostBetweenAttemptsUsesOneAttemptAndItsReplacementJoinsTheNext) {
  NetnsCluster cluster(2);
  NEED_CLUSTER(cluster);
  const std::string job = Job(
      {{"command",
        {"/bin/sh", "-c",
         "if [ \"$TRAINRUN_ATTEMPT\" = 1 ]; then [ \"$RANK\" = 3 ] && exit 3; exec sleep 60; fi\n"
         "echo \"rank $RANK on attempt $TRAINRUN_ATTEMPT\""}},
       {"nodeCount", 2},
       {"processCountPerNode", 2},
       {"maxRestarts", 2},
       {"restarts", {{"backoffSeconds", 2}, {"backoffMaxSeconds", 2}}}});
  std::unique_ptr<TrainrunProcess> head = Start(cluster, 0, job);
  std::unique_ptr<TrainrunProcess> node1 = Start(cluster, 1, job);
  const std::string node1_err = dir_ / ("out" + std::to_string(processes_) + "/trainrun.err");
  // In the 2 s backoff before attempt 2.
  ASSERT_TRUE(WaitFor([&] {
    return ReadFile(node1_err).find("attempt 1 failed (exit code 3): restart 1 of 2 in 2 s") !=
           std::string::npos;
  })) << ReadFile(node1_err);
  KillNode(cluster, 1, *node1);
  std::unique_ptr<TrainrunProcess> replacement = Start(cluster, 1, job);
  Invocation r1 = replacement->Wait(std::chrono::seconds(120));
  Invocation r0 = head->Wait(std::chrono::seconds(120));
  ASSERT_EQ(r0.exit_code, 0) << r0.err;
  ASSERT_EQ(r1.exit_code, 0) << r1.err;
  EXPECT_NE(r0.err.find("attempt 2 ended before its ranks started"), std::string::npos) << r0.err;
  EXPECT_NE(r0.err.find("joined in place of the lost node 1, for attempt 3"), std::string::npos)
      << r0.err;
  EXPECT_NE(r1.out.find("[rank 3] rank 3 on attempt 3"), std::string::npos) << r1.out;
  EXPECT_NE(r0.out.find("[rank 0] rank 0 on attempt 3"), std::string::npos) << r0.out;
  json rec = Record();
  EXPECT_EQ(rec["status"], "Completed");
  EXPECT_EQ(rec["exitCode"], 0);
  ASSERT_EQ(rec["attempts"].size(), 3u) << rec.dump(2);
  EXPECT_EQ(rec["attempts"][0]["outcome"], "rank failed");
  const json& a2 = rec["attempts"][1];
  EXPECT_EQ(a2["outcome"], "node lost") << a2.dump();
  EXPECT_EQ(a2["exitCode"], 69) << a2.dump();
  EXPECT_EQ(a2["failedNodeRank"], 1) << a2.dump();
  EXPECT_NE(a2["reason"].get<std::string>().find("before the attempt's ranks started"),
            std::string::npos)
      << a2.dump();
  EXPECT_EQ(a2["next"], "restart 2 of 2 in 2 s") << a2.dump();
  EXPECT_EQ(rec["attempts"][2]["outcome"], "succeeded");
  ExpectNothingLeft(cluster);
}

// In-place restarts of an MPI job on several nodes (README "In-place restarts"):
// each attempt is a fresh mpirun on the head over the same hostfile, with a fresh
// orted on node 1 through `trainrun rsh`; nothing of attempt 1's launch is left
// when attempt 2 runs.
class MultinodeMpiRestartTest : public MultinodeTest {
 protected:
  void SetUp() override {
#ifndef MPI_ALLREDUCE_BINARY
    GTEST_SKIP() << "needs Open MPI's mpicc at build time (apt install libopenmpi-dev)";
#endif
    if (access("/usr/bin/mpirun", X_OK) != 0)
      GTEST_SKIP() << "needs mpirun (apt install openmpi-bin)";
  }
  // A 2-node x 2-rank MPI job whose ranks run `script` with /bin/sh (under
  // `trainrun mpi-rank`, started by mpirun on node 0 and by orted on node 1).
  std::string MpiRestartJob(const std::string& script, int max_restarts) {
    return Job({{"command", {"/bin/sh", "-c", script}},
                {"communicator", "Mpi"},
                {"nodeCount", 2},
                {"mpi", {{"processCountPerNode", 2}}},
                {"maxRestarts", max_restarts},
                {"restarts", {{"backoffSeconds", 0}}}});
  }
  // The processes in `node`'s namespace whose program (argv[0], and argv[1] when
  // given) is `name` (its last path component) and `arg`.
  static std::vector<int> Running(const NetnsCluster& cluster, int node, const std::string& name,
                                  const std::string& arg = "") {
    std::vector<int> found;
    for (int pid : cluster.Pids(node)) {
      std::vector<std::string> argv = Argv(pid);
      if (argv.empty() || fs::path(argv[0]).filename() != name) continue;
      if (!arg.empty() && (argv.size() < 2 || argv[1] != arg)) continue;
      found.push_back(pid);
    }
    return found;
  }
  static std::vector<std::string> Argv(int pid) {
    std::vector<std::string> argv;
    std::string text = ReadFile("/proc/" + std::to_string(pid) + "/cmdline");
    for (size_t at = 0; at < text.size();) {
      size_t end = text.find('\0', at);
      if (end == std::string::npos) end = text.size();
      argv.push_back(text.substr(at, end - at));
      at = end + 1;
    }
    return argv;
  }
};

#ifdef MPI_ALLREDUCE_BINARY
// Rank 3 (node 1) saves a checkpoint and fails on attempt 1 (exit 3); on attempt 2
// it resumes from it, and all 4 ranks then do a real MPI_Allreduce across both
// nodes. Every rank writes down its launcher (its wrapper's parent: mpirun on node
// 0, orted on node 1) as "PID ARGV0" in MARKS/launcher.RANK.aATTEMPT, with the pids
// of /proc (the ranks have a PID namespace of their own: $PPID is not one); on attempt 2
// the ranks wait for MARKS/go, so the test sees the processes of attempt 2 while
// they run.
constexpr const char* kMpiResumingRank3 = R"sh(
read -r _ _ _ wrapper _ < /proc/self/stat
read -r _ _ _ launcher _ < /proc/$wrapper/stat
echo "$launcher $(tr '\0' '\n' < /proc/$launcher/cmdline | head -n 1)" > "$MARKS/launcher.$RANK.a$TRAINRUN_ATTEMPT"
if [ "$TRAINRUN_ATTEMPT" = 1 ]; then
  [ "$RANK" = 3 ] || exec sleep 60
  echo 500 > checkpoint.txt
  echo "saved step 500 on attempt $TRAINRUN_ATTEMPT"
  echo "NCCL timeout" >&2
  exit 3
fi
i=0
while [ ! -f "$MARKS/go" ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i + 1)); done
if [ "$RANK" = 3 ]; then
  echo "resumed from step $(cat checkpoint.txt) on attempt $TRAINRUN_ATTEMPT (restart $TORCHELASTIC_RESTART_COUNT of $TORCHELASTIC_MAX_RESTARTS)"
fi
exec "$ALLREDUCE"
)sh";

TEST_F(MultinodeMpiRestartTest, ARankFailingOnNodeOneRestartsMpirunAndOrtedAndResumes) {
  NetnsCluster cluster(2);
  NEED_CLUSTER(cluster);
  const std::string marks = dir_ / "marks";
  fs::create_directories(marks);
  const std::string job =
      MpiRestartJob(std::string("MARKS=") + marks + "; ALLREDUCE=" + MPI_ALLREDUCE_BINARY + "\n" +
                        kMpiResumingRank3,
                    2);
  std::vector<std::unique_ptr<TrainrunProcess>> nodes;
  for (int n = 0; n < 2; ++n) nodes.push_back(Start(cluster, n, job));
  // "PID ARGV0" of rank `rank`'s launcher on attempt `attempt`.
  auto launcher = [&](int rank, int attempt) {
    std::string text =
        ReadFile(marks + "/launcher." + std::to_string(rank) + ".a" + std::to_string(attempt));
    const size_t space = text.find(' ');
    if (space == std::string::npos) return std::pair<int, std::string>{0, ""};
    const size_t end = text.find('\n', space);
    return std::pair<int, std::string>{std::atoi(text.c_str()),
                                       text.substr(space + 1, end - space - 1)};
  };
  const bool attempt2_running = WaitFor(
      [&] {
        for (int rank = 0; rank < 4; ++rank) {
          if (launcher(rank, 2).first == 0) return false;
        }
        return true;
      },
      std::chrono::seconds(120));
  if (!attempt2_running) {
    for (auto& node : nodes) node->Signal(SIGTERM);
    for (int n = 0; n < 2; ++n) {
      Invocation r = nodes[n]->Wait();
      ADD_FAILURE() << "node " << n << " exited " << r.exit_code << "\n" << r.out << r.err;
    }
    FAIL() << "attempt 2's ranks did not all start";
  }
  // Attempt 1's orted (rank 3's launcher) is gone; attempt 2's is another one, the
  // only orted on node 1, started through the only `trainrun rsh` on node 0 by the
  // only mpirun there, which is not attempt 1's.
  const auto [orted1, orted1_name] = launcher(3, 1);
  const auto [orted2, orted2_name] = launcher(3, 2);
  EXPECT_EQ(fs::path(orted1_name).filename(), "orted") << orted1_name;
  EXPECT_EQ(fs::path(orted2_name).filename(), "orted") << orted2_name;
  EXPECT_NE(orted1, orted2);
  EXPECT_EQ(launcher(2, 2).first, orted2);
  const std::vector<std::string> left = Argv(orted1);
  EXPECT_TRUE(left.empty() || fs::path(left[0]).filename() != "orted")
      << "attempt 1's orted (pid " << orted1 << ") is still there:\n"
      << cluster.Describe(1);
  EXPECT_EQ(Running(cluster, 1, "orted"), std::vector<int>{orted2}) << cluster.Describe(1);
  EXPECT_EQ(Running(cluster, 1, "trainrun", "rsh").size(), 0u) << cluster.Describe(1);
  const auto [mpirun1, mpirun1_name] = launcher(0, 1);
  const auto [mpirun2, mpirun2_name] = launcher(0, 2);
  EXPECT_EQ(fs::path(mpirun2_name).filename(), "mpirun") << mpirun2_name;
  if (mpirun1 != 0) {
    EXPECT_NE(mpirun1, mpirun2);
  }
  EXPECT_EQ(launcher(1, 2).first, mpirun2);
  EXPECT_EQ(Running(cluster, 0, "mpirun"), std::vector<int>{mpirun2}) << cluster.Describe(0);
  EXPECT_EQ(Running(cluster, 0, "trainrun", "rsh").size(), 1u) << cluster.Describe(0);
  WriteFile(marks + "/go", "");

  std::vector<Invocation> r;
  for (auto& node : nodes) r.push_back(node->Wait(std::chrono::seconds(120)));
  for (int n = 0; n < 2; ++n) {
    ASSERT_EQ(r[n].exit_code, 0) << "node " << n << "\n" << r[n].out << r[n].err;
    EXPECT_NE(r[n].err.find("attempt 1 failed (exit code 3): restart 1 of 2 in 0 s"),
              std::string::npos)
        << "node " << n << "\n"
        << r[n].err;
  }
  EXPECT_NE(r[1].err.find("NCCL timeout"), std::string::npos)
      << "attempt 1's summary: " << r[1].err;
  EXPECT_NE(r[1].out.find("[rank 3] resumed from step 500 on attempt 2 (restart 1 of 2)"),
            std::string::npos)
      << r[1].out;
  // Every rank's log, on both nodes, keeps both attempts, each after its marker;
  // attempt 2's MPI_Allreduce spans both nodes.
  const std::string log3 = RankLog(3);
  const size_t saved = log3.find("saved step 500 on attempt 1");
  const size_t second = log3.find("=== trainrun: attempt 2 of at most 3 (");
  const size_t resumed = log3.find("resumed from step 500 on attempt 2");
  ASSERT_NE(saved, std::string::npos) << log3;
  ASSERT_NE(second, std::string::npos) << log3;
  EXPECT_LT(saved, second) << log3;
  EXPECT_LT(second, resumed) << log3;
  for (int rank = 0; rank < 4; ++rank) {
    const std::string log = RankLog(rank);
    const size_t first = log.find("=== trainrun: attempt 1 of at most 3 (");
    const size_t again = log.find("=== trainrun: attempt 2 of at most 3 (");
    const size_t sum = log.find("allreduce rank " + std::to_string(rank) + " of 4 on " +
                                cluster.Host(rank / 2) + ": sum 6 (expected 6)");
    EXPECT_NE(first, std::string::npos) << "rank " << rank << ": " << log;
    ASSERT_NE(again, std::string::npos) << "rank " << rank << ": " << log;
    ASSERT_NE(sum, std::string::npos) << "rank " << rank << ": " << log;
    EXPECT_LT(first, again) << log;
    EXPECT_LT(again, sum) << log;
  }
  // Each attempt had its own rsh session: node 1 reused none of attempt 1's.
  const std::string head_log = ReadFile(RunDir() + "/system_logs/trainrun_node_0.log");
  const std::string node_log = ReadFile(RunDir() + "/system_logs/trainrun_node_1.log");
  EXPECT_NE(head_log.find("rsh session 2: starting on node 1"), std::string::npos) << head_log;
  const size_t session1 = node_log.find("rsh session 1: started pid");
  const size_t ended1 = node_log.find("rsh session 1: pid");
  const size_t session2 = node_log.find("rsh session 2: started pid");
  ASSERT_NE(session1, std::string::npos) << node_log;
  ASSERT_NE(ended1, std::string::npos) << node_log;
  ASSERT_NE(session2, std::string::npos) << node_log;
  EXPECT_LT(ended1, session2) << node_log;
  json rec = Record();
  EXPECT_EQ(rec["status"], "Completed");
  EXPECT_EQ(rec["exitCode"], 0);
  EXPECT_FALSE(rec.contains("failure")) << rec.dump(2);
  EXPECT_EQ(rec["ranks"].size(), 4u);
  ASSERT_EQ(rec["attempts"].size(), 2u) << rec.dump(2);
  const json& a1 = rec["attempts"][0];
  EXPECT_EQ(a1["outcome"], "rank failed");
  EXPECT_EQ(a1["exitCode"], 3);
  EXPECT_EQ(a1["failedRank"], 3);
  EXPECT_EQ(a1["failedNodeRank"], 1);
  EXPECT_NE(a1["reason"].get<std::string>().find("rank 3 on node 1 (" + cluster.Host(1)),
            std::string::npos)
      << a1.dump();
  EXPECT_EQ(a1["next"], "restart 1 of 2 in 0 s");
  EXPECT_EQ(rec["attempts"][1]["outcome"], "succeeded");
  EXPECT_EQ(rec["attempts"][1]["exitCode"], 0);
  ExpectNothingLeft(cluster);
}
#endif

TEST_F(MultinodeMpiRestartTest, RestartsUsedUpEndEveryNodeWithTheLastAttemptsCode) {
  NetnsCluster cluster(2);
  NEED_CLUSTER(cluster);
  std::vector<Invocation> r =
      RunAll(cluster, MpiRestartJob("[ \"$RANK\" = 3 ] && exit 3; exec sleep 60", 1), 2);
  for (int n = 0; n < 2; ++n) {
    EXPECT_EQ(r[n].exit_code, 3) << "node " << n << "\n" << r[n].err;
    EXPECT_NE(r[n].err.find("attempt 2 ended (exit code 3), not restarted: all 1 restart(s) of "
                            "maxRestarts used"),
              std::string::npos)
        << "node " << n << "\n"
        << r[n].err;
  }
  json rec = Record();
  EXPECT_EQ(rec["status"], "Failed");
  EXPECT_EQ(rec["exitCode"], 3);
  EXPECT_EQ(rec["failure"]["rank"], 3);
  EXPECT_EQ(rec["failure"]["nodeRank"], 1);
  ASSERT_EQ(rec["attempts"].size(), 2u) << rec.dump(2);
  for (const json& attempt : rec["attempts"]) {
    EXPECT_EQ(attempt["exitCode"], 3) << attempt.dump();
    EXPECT_EQ(attempt["failedRank"], 3) << attempt.dump();
    EXPECT_EQ(attempt["failedNodeRank"], 1) << attempt.dump();
  }
  EXPECT_EQ(rec["attempts"][1]["next"], "not restarted: all 1 restart(s) of maxRestarts used");
  ExpectNothingLeft(cluster);
}

#ifdef MPI_ALLREDUCE_BINARY
// Node 1's trainrun is SIGKILLed during attempt 1 of an MPI job (its orted and
// ranks die with it) and a new one for node 1 starts on another host (the third
// namespace, another address), as a scheduler replaces a node: the new trainrun
// joins, and attempt 2's mpirun runs over the head and the new host, where ranks
// 2 and 3 take part in an MPI_Allreduce.
TEST_F(MultinodeMpiRestartTest, ANodeReplacedOnAnotherHostJoinsTheNextMpirun) {
  NetnsCluster cluster(3);
  NEED_CLUSTER(cluster);
  const std::string marks = dir_ / "marks";
  fs::create_directories(marks);
  const std::string job =
      MpiRestartJob("if [ \"$TRAINRUN_ATTEMPT\" = 1 ]; then touch " + marks +
                        "/$RANK.a1; exec sleep 60; fi\nexec " + MPI_ALLREDUCE_BINARY,
                    1);
  std::unique_ptr<TrainrunProcess> head = Start(cluster, 0, job);
  std::unique_ptr<TrainrunProcess> node1 = Start(cluster, 1, job);
  ASSERT_TRUE(AllRanksMarked(marks, 4));
  KillNode(cluster, 1, *node1);  // its orted and ranks go with it
  // The new trainrun comes at once: should the head still stop the attempt's
  // mpirun, it holds the join until the attempt's verdict.
  std::string out = dir_ / ("out" + std::to_string(++processes_));
  fs::create_directories(out);
  TrainrunProcess replacement(
      cluster.Command(
          2, {TrainrunBinary(), "run", job, "--node-rank", "1", "--master-addr", cluster.Address(0),
              "--history", history(), "--workdir", dir_ / "w2", "--grace-period", "5"}),
      {std::string("TRAINRUN_JOB_TOKEN=") + kToken}, out);
  Invocation r1 = replacement.Wait(std::chrono::seconds(120));
  Invocation r0 = head->Wait(std::chrono::seconds(120));
  ASSERT_EQ(r0.exit_code, 0) << r0.err;
  ASSERT_EQ(r1.exit_code, 0) << r1.err;
  EXPECT_NE(r0.err.find("node 1 (" + cluster.Host(2) + ", " + cluster.Address(2) +
                        ") joined in place of the lost node 1, for attempt 2"),
            std::string::npos)
      << r0.err;
  for (int rank = 0; rank < 4; ++rank) {
    const std::string line = "allreduce rank " + std::to_string(rank) + " of 4 on " +
                             cluster.Host(rank < 2 ? 0 : 2) + ": sum 6 (expected 6)";
    EXPECT_NE((rank < 2 ? r0.out : r1.out).find(line), std::string::npos) << "rank " << rank << "\n"
                                                                          << r0.out << r1.out;
  }
  json rec = Record();
  EXPECT_EQ(rec["status"], "Completed");
  ASSERT_EQ(rec["attempts"].size(), 2u) << rec.dump(2);
  EXPECT_EQ(rec["attempts"][0]["outcome"], "node lost");
  EXPECT_EQ(rec["attempts"][0]["failedNodeRank"], 1);
  EXPECT_EQ(rec["attempts"][1]["outcome"], "succeeded");
  ExpectNothingLeft(cluster);
}
#endif

}  // namespace
}  // namespace trainrun::testing
