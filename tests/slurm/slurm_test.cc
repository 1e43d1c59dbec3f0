// trainrun started by a real Slurm 22.05: srun and sbatch on the 3-node cluster of
// scripts/slurm-cluster.sh (slurmctld and munged here, one slurmd per network
// namespace). CTest brings the cluster up before these suites (slurm.cluster_up)
// and tears it down after them, also when they fail (slurm.cluster_down); by hand:
//   scripts/slurm-cluster.sh up
//   TRAINRUN_SLURM_DIR=build/slurm-cluster build/tests/slurm_test
//   scripts/slurm-cluster.sh down
// Timings are printed, never asserted.
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <regex>
#include <set>
#include <sstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/launcher/trainrun_runner.h"

namespace trainrun::testing {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

std::string ClusterDir() {
  const char* dir = std::getenv("TRAINRUN_SLURM_DIR");
  // Absolute: the nodes' working directories differ from this process's.
  return fs::absolute(dir != nullptr && *dir != '\0' ? dir : SLURM_CLUSTER_DIR).string();
}

std::vector<std::string> Words(const std::string& text) {
  std::istringstream in(text);
  std::vector<std::string> out;
  for (std::string w; in >> w;) out.push_back(w);
  return out;
}

double Seconds(Clock::time_point since) {
  return std::chrono::duration<double>(Clock::now() - since).count();
}

// The cluster as scripts/slurm-cluster.sh wrote it in cluster.env.
struct Cluster {
  std::string skip;  // why the tests cannot run; empty when the cluster is up
  std::string dir;
  std::string slurm_conf;
  std::vector<std::string> nodes, netns, addrs;

  static Cluster Load() {
    Cluster c;
    c.dir = ClusterDir();
    std::string skip = ReadFile(c.dir + "/skip");
    if (!skip.empty()) {
      c.skip = skip;
      return c;
    }
    std::string env = ReadFile(c.dir + "/cluster.env");
    if (env.empty()) {
      c.skip = "no Slurm cluster in " + c.dir +
               " (CTest's slurm.cluster_up starts it; by hand: scripts/slurm-cluster.sh up)";
      return c;
    }
    std::map<std::string, std::string> vars;
    std::istringstream in(env);
    for (std::string line; std::getline(in, line);) {
      size_t eq = line.find('=');
      if (eq == std::string::npos) continue;
      std::string value = line.substr(eq + 1);
      if (value.size() >= 2 && value.front() == '"') value = value.substr(1, value.size() - 2);
      vars[line.substr(0, eq)] = value;
    }
    c.slurm_conf = vars["SLURM_CONF"];
    c.nodes = Words(vars["TRAINRUN_SLURM_NODES"]);
    c.netns = Words(vars["TRAINRUN_SLURM_NETNS"]);
    c.addrs = Words(vars["TRAINRUN_SLURM_ADDRS"]);
    return c;
  }

  // Processes in node i's namespace other than its slurmd.
  std::vector<int> JobPids(size_t i) const {
    int slurmd = std::atoi(ReadFile(dir + "/slurmd." + nodes[i] + ".pid").c_str());
    std::vector<int> pids;
    FILE* p = popen(("ip netns pids " + netns[i] + " 2>/dev/null").c_str(), "r");
    if (p == nullptr) return pids;
    for (int pid; std::fscanf(p, "%d", &pid) == 1;) {
      if (pid != slurmd) pids.push_back(pid);
    }
    pclose(p);
    return pids;
  }
  std::string Describe(size_t i) const {
    std::string out;
    for (int pid : JobPids(i)) {
      std::string args = ReadFile("/proc/" + std::to_string(pid) + "/cmdline");
      for (char& ch : args) ch = ch == '\0' ? ' ' : ch;
      out += std::to_string(pid) + ": " + args + "\n";
    }
    return out;
  }
};

// `NAME=value` lines of a rank's log.
std::map<std::string, std::string> EnvLines(const std::string& log) {
  std::map<std::string, std::string> env;
  std::istringstream in(log);
  for (std::string line; std::getline(in, line);) {
    size_t eq = line.find('=');
    if (eq != std::string::npos && eq > 0) env[line.substr(0, eq)] = line.substr(eq + 1);
  }
  return env;
}

class SlurmTest : public ::testing::Test {
 protected:
  void SetUp() override {
    cluster_ = Cluster::Load();
    if (!cluster_.skip.empty()) GTEST_SKIP() << cluster_.skip;
    ASSERT_EQ(cluster_.nodes.size(), 3u) << "cluster.env in " << cluster_.dir;
    // Every node sees the test's folder (the cluster's own /tmp is node-local).
    static int counter = 0;
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = cluster_.dir + "/tests/" + info->name() + "-" + std::to_string(getpid()) + "-" +
           std::to_string(counter++);
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override {
    if (!HasFailure() && !dir_.empty()) fs::remove_all(dir_);
  }

  // A job file in the test's folder with its own run id.
  std::string Job(json job, const std::string& source = "/tests/multinode") {
    if (!job.contains("sourceDirectory")) job["sourceDirectory"] = SourceRoot() + source;
    job["experimentName"] = "slurm";
    job["runId"] = run_id_ = std::string("slurm-") +
                             ::testing::UnitTest::GetInstance()->current_test_info()->name() + "-" +
                             std::to_string(getpid()) + "-" + std::to_string(++jobs_);
    job["environment"]["python"]["interpreterPath"] = "/usr/bin/python3";
    job["environment"]["environmentVariables"]["OMP_NUM_THREADS"] = "1";
    std::string path = dir_ + "/job" + std::to_string(jobs_) + ".json";
    WriteFile(path, job.dump(2));
    return path;
  }

  // A Slurm command (srun, sbatch, scancel...) run from this machine with the
  // cluster's SLURM_CONF, history and token in its environment (srun and sbatch
  // pass it on to the nodes).
  std::unique_ptr<TrainrunProcess> Slurm(std::vector<std::string> argv,
                                         std::vector<std::string> env = {}) {
    std::string out = dir_ + "/cmd" + std::to_string(++commands_);
    fs::create_directories(out);
    env.push_back("SLURM_CONF=" + cluster_.slurm_conf);
    env.push_back("TRAINRUN_HISTORY=" + history());
    // Each job its own token, as the sbatch example makes one per job.
    env.push_back("TRAINRUN_JOB_TOKEN=slurm-test-token-" + std::to_string(getpid()) + "-" +
                  std::to_string(commands_));
    env.push_back("PATH=" + fs::path(TrainrunBinary()).parent_path().string() + ":" +
                  std::getenv("PATH"));
    argv[0] = "/usr/bin/" + argv[0];
    return std::make_unique<TrainrunProcess>(argv, env, out);
  }
  Invocation SlurmWait(std::vector<std::string> argv, std::vector<std::string> env = {}) {
    return Slurm(std::move(argv), std::move(env))->Wait(std::chrono::seconds(240));
  }
  // `srun` one trainrun per node on `nodes` nodes.
  std::vector<std::string> Srun(int nodes, const std::string& job,
                                std::vector<std::string> extra = {}) {
    std::vector<std::string> argv = {
        "srun", "--time",         "4",   "--nodes", std::to_string(nodes), "--ntasks-per-node",
        "1",    TrainrunBinary(), "run", job};
    argv.insert(argv.end(), extra.begin(), extra.end());
    return argv;
  }

  std::string history() const { return dir_ + "/history"; }
  std::string RunDir() const { return history() + "/slurm/" + run_id_; }
  json Record() const {
    std::string text = ReadFile(RunDir() + "/run.json");
    if (text.empty()) return json::object();
    return json::parse(text, nullptr, false);
  }
  std::string RankLog(int rank) const {
    return ReadFile(RunDir() + "/user_logs/std_log_process_" + std::to_string(rank) + ".txt");
  }
  // Nothing but slurmd left on any node, within 30 s.
  void ExpectNothingLeft() {
    for (size_t n = 0; n < cluster_.nodes.size(); ++n) {
      EXPECT_TRUE(WaitFor([&] { return cluster_.JobPids(n).empty(); }, std::chrono::seconds(30)))
          << "processes left on " << cluster_.nodes[n] << ":\n"
          << cluster_.Describe(n);
    }
  }
  bool AllExist(const std::string& folder, int count) {
    for (int i = 0; i < count; ++i) {
      if (ReadFile(folder + "/" + std::to_string(i) + ".pid").empty()) return false;
    }
    return true;
  }

  Cluster cluster_;
  std::string dir_;
  std::string run_id_;
  int jobs_ = 0;
  int commands_ = 0;
};

// 3 nodes x 2 ranks under srun: each rank prints its host and environment.
TEST_F(SlurmTest, SrunGivesEveryRankItsOwnPlaceAndConsistentSchedulerVariables) {
  std::string job = Job({{"command", {"/bin/sh", "-c", "echo HOST=$(hostname); env"}},
                         {"nodeCount", 3},
                         {"processCountPerNode", 2}});
  auto start = Clock::now();
  Invocation r = SlurmWait(Srun(3, job, {"--grace-period", "5"}));
  std::printf("srun of 3 nodes x 2 ranks: %.2f s\n", Seconds(start));
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  for (int rank = 0; rank < 6; ++rank) {
    std::map<std::string, std::string> env = EnvLines(RankLog(rank));
    const std::string node = std::to_string(rank / 2);
    SCOPED_TRACE("rank " + std::to_string(rank));
    EXPECT_EQ(env["HOST"], cluster_.nodes[rank / 2]);
    EXPECT_EQ(env["RANK"], std::to_string(rank));
    EXPECT_EQ(env["WORLD_SIZE"], "6");
    EXPECT_EQ(env["LOCAL_RANK"], std::to_string(rank % 2));
    EXPECT_EQ(env["LOCAL_WORLD_SIZE"], "2");
    EXPECT_EQ(env["NODE_RANK"], node);
    EXPECT_EQ(env["MASTER_ADDR"], cluster_.addrs[0]);
    EXPECT_FALSE(env["MASTER_PORT"].empty());
    EXPECT_EQ(env["TRAINRUN_RUN_ID"], run_id_);
    // A scheduler's variables that a rank sees agree with trainrun's, or are gone.
    const std::map<std::string, std::string> agree = {
        {"SLURM_PROCID", env["RANK"]},
        {"SLURM_LOCALID", env["LOCAL_RANK"]},
        {"SLURM_NODEID", node},
        {"SLURM_NTASKS", "6"},
        {"SLURM_NPROCS", "6"},
        {"SLURM_NTASKS_PER_NODE", "2"},
        {"SLURM_STEP_NUM_TASKS", "6"},
        {"PMI_RANK", env["RANK"]},
        {"PMI_SIZE", "6"},
        {"PMIX_RANK", env["RANK"]},
        {"OMPI_COMM_WORLD_RANK", env["RANK"]},
        {"OMPI_COMM_WORLD_SIZE", "6"},
        {"OMPI_COMM_WORLD_LOCAL_RANK", env["LOCAL_RANK"]},
    };
    std::string contradictions;
    for (const auto& [name, want] : agree) {
      if (env.count(name) && env[name] != want) {
        contradictions += " " + name + "=" + env[name] + " (trainrun's: " + want + ")";
      }
    }
    EXPECT_EQ(contradictions, "") << "variables that contradict trainrun's ranks";
  }
  json rec = Record();
  EXPECT_EQ(rec["status"], "Completed");
  EXPECT_EQ(rec["ranks"].size(), 6u);
  ASSERT_EQ(rec["nodes"].size(), 3u);
  for (int n = 0; n < 3; ++n) EXPECT_EQ(rec["nodes"][n]["host"], cluster_.nodes[n]);
  const json& c = rec["details"]["cluster"];
  EXPECT_EQ(c["source"], "Slurm");
  EXPECT_EQ(c["head"], cluster_.nodes[0]);
  EXPECT_EQ(c["masterAddr"], cluster_.addrs[0]);
  EXPECT_TRUE(c["schedulerJobId"].get<std::string>().rfind("slurm:", 0) == 0) << c.dump();
  ExpectNothingLeft();
}

// The sbatch example (docker/examples/slurm/train.sbatch) running the PyTorch DDP
// example (docker/examples/mnist-like) on 2 nodes x 2 ranks over gloo.
TEST_F(SlurmTest, TheSbatchExampleTrainsTheDdpExampleOnTwoNodes) {
  if (std::system("/usr/bin/python3 -c 'import torch.distributed' >/dev/null 2>&1") != 0)
    GTEST_SKIP() << "needs PyTorch for /usr/bin/python3 (apt install python3-torch)";
  json example = json::parse(ReadFile(SourceRoot() + "/docker/examples/mnist-like/job.json"));
  example["sourceDirectory"] = SourceRoot() + "/docker/examples/mnist-like";
  example["arguments"] = {"--epochs", 2, "--batch-size", 64};
  std::string job = Job(example);
  auto start = Clock::now();
  Invocation r = SlurmWait(
      {"sbatch", "--time", "4", "--wait", "--parsable", "--output", dir_ + "/slurm-%j.out",
       SourceRoot() + "/docker/examples/slurm/train.sbatch", job, "--grace-period", "5"});
  std::printf("sbatch of the DDP example, 2 nodes x 2 ranks, 2 epochs: %.2f s\n", Seconds(start));
  std::string job_id = Words(r.out).empty() ? "" : Words(r.out)[0];
  std::string batch_out = ReadFile(dir_ + "/slurm-" + job_id + ".out");
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err << batch_out;
  std::set<std::string> checksums;
  for (int rank = 0; rank < 4; ++rank) {
    std::string log = RankLog(rank);
    EXPECT_NE(log.find("rank " + std::to_string(rank) + "/4 epoch 1:"), std::string::npos) << log;
    std::smatch m;
    ASSERT_TRUE(std::regex_search(log, m, std::regex(R"(weight checksum (\S+))"))) << log;
    checksums.insert(m[1]);
  }
  EXPECT_EQ(checksums.size(), 1u) << "the ranks ended with different weights";
  json rec = Record();
  EXPECT_EQ(rec["status"], "Completed");
  EXPECT_EQ(rec["ranks"].size(), 4u);
  ASSERT_EQ(rec["nodes"].size(), 2u);
  EXPECT_EQ(rec["nodes"][1]["host"], cluster_.nodes[1]);
  EXPECT_EQ(rec["details"]["cluster"]["schedulerJobId"].get<std::string>().rfind(
                "slurm:" + job_id + ".", 0),
            0u)
      << rec["details"]["cluster"].dump();
  EXPECT_EQ(rec["details"]["cluster"]["jobTokenDerived"], false);
  EXPECT_TRUE(fs::exists(RunDir() + "/outputs/model.pt"));
  EXPECT_TRUE(fs::exists(RunDir() + "/system_logs/trainrun_node_1.log"));
  ExpectNothingLeft();
}

// Rank 3 (on node2) exits 7 while the others wait for a signal: every node's
// trainrun exits 7, srun with it, and nothing is left on any node.
TEST_F(SlurmTest, ARankFailingOnTheSecondNodeStopsEveryNodeWithItsCode) {
  std::string pids = dir_ + "/pids";
  fs::create_directories(pids);
  std::string job = Job({{"command",
                          {RankHelper(), "--pid-dir", pids, "--fail-rank", "3", "--exit-code", "7",
                           "--after-ms", "1000"}},
                         {"nodeCount", 3},
                         {"processCountPerNode", 2}});
  auto start = Clock::now();
  Invocation r = SlurmWait(Srun(3, job, {"--grace-period", "5"}));
  std::printf("srun with rank 3 failing: %.2f s from srun's start to its exit\n", Seconds(start));
  EXPECT_EQ(r.exit_code, 7) << r.out << r.err;
  for (int n = 0; n < 3; ++n) {
    EXPECT_NE(
        r.err.find(cluster_.nodes[n] + ": task " + std::to_string(n) + ": Exited with exit code 7"),
        std::string::npos)
        << r.err;
  }
  ExpectNothingLeft();
  json rec = Record();
  EXPECT_EQ(rec["status"], "Failed");
  EXPECT_EQ(rec["exitCode"], 7);
  EXPECT_EQ(rec["failure"]["rank"], 3);
  EXPECT_EQ(rec["failure"]["nodeRank"], 1);
  EXPECT_EQ(rec["failure"]["host"], cluster_.nodes[1]);
}

// scancel of a batch job whose ranks all ignore SIGTERM, with the grace period
// left to trainrun's default: Slurm SIGKILLs after KillWait (its default, 30 s,
// on this cluster), so trainrun must have stopped the ranks and uploaded every
// node's outputs by then.
TEST_F(SlurmTest, ScancelEndsTheRunCanceledWithEveryNodesOutputs) {
  std::string pids = dir_ + "/pids";
  fs::create_directories(pids);
  std::string rank =
      "trap '' TERM; mkdir -p outputs; echo \"rank $RANK on $(hostname)\" > "
      "outputs/rank$RANK.txt; echo $$ > " +
      pids + "/$RANK.pid; while :; do sleep 1; done";
  std::string job =
      Job({{"command", {"/bin/sh", "-c", rank}}, {"nodeCount", 3}, {"processCountPerNode", 2}});
  Invocation submitted = SlurmWait({"sbatch", "--time", "4", "--parsable", "--nodes", "3",
                                    "--output", dir_ + "/slurm-%j.out",
                                    SourceRoot() + "/docker/examples/slurm/train.sbatch", job});
  ASSERT_EQ(submitted.exit_code, 0) << submitted.err;
  std::string job_id = Words(submitted.out)[0];
  ASSERT_TRUE(WaitFor([&] { return AllExist(pids, 6); }, std::chrono::seconds(120)))
      << ReadFile(dir_ + "/slurm-" + job_id + ".out");
  auto start = Clock::now();
  Invocation cancel = SlurmWait({"scancel", job_id});
  ASSERT_EQ(cancel.exit_code, 0) << cancel.err;
  auto ended = [&] {
    Invocation state = SlurmWait({"squeue", "-h", "-j", job_id, "-o", "%T"});
    return state.out.find_first_not_of(" \n") == std::string::npos;
  };
  EXPECT_TRUE(WaitFor(ended, std::chrono::seconds(120)));
  std::printf("scancel to the job's end: %.2f s\n", Seconds(start));
  ExpectNothingLeft();
  json rec = Record();
  EXPECT_EQ(rec["status"], "Canceled") << ReadFile(dir_ + "/slurm-" + job_id + ".out");
  EXPECT_EQ(rec["exitCode"], 143);
  EXPECT_TRUE(rec["uploadErrors"].empty()) << rec["uploadErrors"].dump();
  for (int r = 0; r < 6; ++r) {
    EXPECT_EQ(ReadFile(RunDir() + "/outputs/rank" + std::to_string(r) + ".txt"),
              "rank " + std::to_string(r) + " on " + cluster_.nodes[r / 2] + "\n")
        << "rank " << r << "'s outputs are not in history";
  }
  for (int n = 0; n < 3; ++n) {
    EXPECT_TRUE(fs::exists(RunDir() + "/system_logs/trainrun_node_" + std::to_string(n) + ".log"))
        << n;
  }
}

// Mpi jobs under srun with no user settings: Open MPI runs over trainrun's node
// list and launch agent, not Slurm's allocation.
TEST_F(SlurmTest, MpiJobsInCAndMpi4pyRunUnderSrunWithoutSettings) {
#ifndef MPI_ALLREDUCE_BINARY
  GTEST_SKIP() << "needs Open MPI's mpicc at build time (apt install libopenmpi-dev)";
#else
  struct Program {
    json job;
    std::string line;
  };
  std::vector<Program> programs = {
      {{{"command", {MPI_ALLREDUCE_BINARY}}}, "allreduce rank {r} of 4 on {host}: sum 6"},
      {{{"script", "mpi4py_allreduce.py"}}, "mpi4py rank {r} of 4 on {host}: sum 6"}};
  for (Program& program : programs) {
    program.job["communicator"] = "Mpi";
    program.job["nodeCount"] = 2;
    program.job["mpi"] = {{"processCountPerNode", 2}};
    auto start = Clock::now();
    Invocation r = SlurmWait(Srun(2, Job(program.job), {"--grace-period", "5"}));
    std::printf("srun of an Mpi job (%s), 2 nodes x 2 ranks: %.2f s\n",
                program.job.value("script", "C").c_str(), Seconds(start));
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
    for (int rank = 0; rank < 4; ++rank) {
      std::string expected = std::regex_replace(
          std::regex_replace(program.line, std::regex("\\{r\\}"), std::to_string(rank)),
          std::regex("\\{host\\}"), cluster_.nodes[rank / 2]);
      EXPECT_NE(RankLog(rank).find(expected), std::string::npos)
          << "rank " << rank << ": " << RankLog(rank);
    }
    EXPECT_EQ(Record()["status"], "Completed");
    ExpectNothingLeft();
  }
#endif
}

// Two jobs on the same two nodes at once (their heads share node1): each gets a
// control port of its own and both complete.
TEST_F(SlurmTest, TwoJobsSharingNodesBothComplete) {
  std::vector<std::string> jobs, folders;
  for (int j = 0; j < 2; ++j) {
    std::string folder = dir_ + "/job" + std::to_string(j);
    fs::create_directories(folder);
    std::string rank = "echo $$ > " + folder + "/$RANK.pid; while [ ! -e " + folder +
                       "/release ]; do sleep 0.2; done";
    jobs.push_back(
        Job({{"command", {"/bin/sh", "-c", rank}}, {"nodeCount", 2}, {"processCountPerNode", 1}}));
    folders.push_back(folder);
  }
  std::vector<std::string> run_ids;
  std::vector<std::unique_ptr<TrainrunProcess>> sruns;
  for (int j = 0; j < 2; ++j) {
    std::vector<std::string> argv = Srun(2, jobs[j], {"--grace-period", "5"});
    argv.insert(argv.begin() + 1, {"--nodelist", cluster_.nodes[0] + "," + cluster_.nodes[1],
                                   "--cpus-per-task", "1"});
    sruns.push_back(Slurm(argv));
    // The second starts once the first's ranks run, its head's port taken.
    TrainrunProcess& srun = *sruns.back();
    EXPECT_TRUE(WaitFor([&] { return AllExist(folders[j], 2) || !ProcessAlive(srun.pid()); },
                        std::chrono::seconds(120)));
    EXPECT_TRUE(AllExist(folders[j], 2)) << "job " << j << "'s ranks did not start";
    if (HasFailure()) break;
  }
  for (const std::string& folder : folders) WriteFile(folder + "/release", "");
  std::set<int> ports;
  for (int j = 0; j < static_cast<int>(sruns.size()); ++j) {
    Invocation r = sruns[j]->Wait(std::chrono::seconds(120));
    EXPECT_EQ(r.exit_code, 0) << "job " << j << "\n" << r.out << r.err;
    run_id_ = json::parse(ReadFile(jobs[j]))["runId"];
    json rec = Record();
    EXPECT_EQ(rec["status"], "Completed") << "job " << j;
    if (rec.contains("details")) ports.insert(rec["details"]["cluster"]["controlPort"].get<int>());
  }
  EXPECT_EQ(ports.size(), 2u) << "the two jobs used the same control port";
  ExpectNothingLeft();
}

// Every node is given a head name that does not resolve there (a Slurm node name
// missing from /etc/hosts and DNS): each says so within seconds instead of
// waiting out the rendezvous timeout.
TEST_F(SlurmTest, AHeadNameThatDoesNotResolveIsAClearErrorOnEveryNode) {
  // Host names come from /etc/hosts alone, where the nodes are missing: a name
  // that is not known (EAI_NONAME), as a node name missing from DNS would be.
  std::string hosts = dir_ + "/hosts", nsswitch = dir_ + "/nsswitch.conf";
  WriteFile(hosts, "127.0.0.1 localhost\n");
  WriteFile(nsswitch, "hosts: files\n");
  std::string job = Job({{"command", {RankHelper(), "--sleep-ms", "100"}},
                         {"nodeCount", 2},
                         {"processCountPerNode", 1}});
  // Slurm ends it after a minute if trainrun waits for the rendezvous timeout.
  std::vector<std::string> argv = {"srun",
                                   "--time",
                                   "1",
                                   "--nodes",
                                   "2",
                                   "--ntasks-per-node",
                                   "1",
                                   "/usr/bin/unshare",
                                   "--mount",
                                   "/bin/sh",
                                   "-c",
                                   "mount --bind " + hosts + " /etc/hosts && mount --bind " +
                                       nsswitch + " /etc/nsswitch.conf && exec \"$@\"",
                                   "sh",
                                   TrainrunBinary(),
                                   "run",
                                   job,
                                   "--grace-period",
                                   "5"};
  auto start = Clock::now();
  Invocation r = SlurmWait(argv);
  std::printf("srun with an unresolvable head: %.2f s, exit %d\n", Seconds(start), r.exit_code);
  EXPECT_NE(r.exit_code, 0);
  // trainrun ended by itself on every node, not by Slurm's time limit.
  EXPECT_EQ(r.err.find("TIME LIMIT"), std::string::npos) << r.err;
  for (int n = 0; n < 2; ++n) {
    EXPECT_TRUE(std::regex_search(r.err, std::regex(cluster_.nodes[n] + ": task " +
                                                    std::to_string(n) + ": Exited with exit code")))
        << r.err;
  }
  EXPECT_TRUE(std::regex_search(
      r.err, std::regex(cluster_.nodes[0] + ".*(resolve|not known)", std::regex::icase)))
      << r.err;
  ExpectNothingLeft();
}

}  // namespace
}  // namespace trainrun::testing
