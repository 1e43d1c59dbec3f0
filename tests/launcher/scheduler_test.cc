// trainrun started as a scheduler starts it, simulated: the SLURM_* (and PMI,
// OMPI_*) variables srun sets, set by the test, with real trainruns on
// 127.0.0.1 and real Open MPI. What a rank sees of the scheduler, Mpi jobs under
// Slurm, the control port, and the misuses that must fail within seconds (README
// "What a rank sees under a scheduler", "Multi-node"). The real Slurm cluster
// tests are in tests/slurm/.
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/launcher/trainrun_runner.h"

namespace trainrun::testing {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

// What srun sets for task `node` of a `nodes`-node step with one task per node,
// plus the PMI and Open MPI variables of srun --mpi=pmix and the allocation's.
std::vector<std::string> SrunEnv(int node, int nodes, int tasks_per_node = 1) {
  const int tasks = nodes * tasks_per_node;
  std::string list = nodes == 1 ? "sim1" : "sim[1-" + std::to_string(nodes) + "]";
  return {"SLURM_JOB_ID=4242",
          "SLURM_JOBID=4242",
          "SLURM_JOB_NAME=train",
          "SLURM_NNODES=" + std::to_string(nodes),
          "SLURM_JOB_NUM_NODES=" + std::to_string(nodes),
          "SLURM_JOB_NODELIST=" + list,
          "SLURM_NODELIST=" + list,
          "SLURM_NODEID=" + std::to_string(node),
          "SLURM_STEP_ID=0",
          "SLURM_STEPID=0",
          "SLURM_STEP_NUM_NODES=" + std::to_string(nodes),
          "SLURM_STEP_NUM_TASKS=" + std::to_string(tasks),
          "SLURM_STEP_NODELIST=" + list,
          "SLURM_STEP_TASKS_PER_NODE=" + std::to_string(tasks_per_node),
          "SLURM_NTASKS=" + std::to_string(tasks),
          "SLURM_NPROCS=" + std::to_string(tasks),
          "SLURM_PROCID=" + std::to_string(node * tasks_per_node),
          "SLURM_LOCALID=0",
          "SLURM_TASKS_PER_NODE=" + std::to_string(tasks_per_node),
          "SLURM_GTIDS=" + std::to_string(node * tasks_per_node),
          "SLURM_TASK_PID=1",
          "PMI_FD=7",
          "PMI_RANK=" + std::to_string(node),
          "PMIX_RANK=" + std::to_string(node),
          "PMIX_NAMESPACE=slurm.pmix.4242.0",
          "OMPI_COMM_WORLD_RANK=" + std::to_string(node),
          "TRAINRUN_JOB_TOKEN=scheduler-test-token-123456"};
}

class SchedulerTest : public ::testing::Test {
 protected:
  std::string Job(json job) {
    job["sourceDirectory"] = "src";
    job["experimentName"] = "sched";
    if (!job.contains("runId")) job["runId"] = run_id_ = "s" + std::to_string(++files_);
    WriteFile(dir_ / "src/README", "x\n");
    std::string path = dir_ / ("job" + std::to_string(files_) + ".json");
    WriteFile(path, job.dump(2));
    return path;
  }
  // One node's trainrun with the history and a workdir of its own.
  std::unique_ptr<TrainrunProcess> Start(const std::string& job, int node,
                                         std::vector<std::string> args,
                                         std::vector<std::string> env) {
    std::vector<std::string> argv = {TrainrunBinary(), "run", job, "--history", dir_ / "history",
                                     "--workdir", WorkdirBase(node)};
    argv.insert(argv.end(), args.begin(), args.end());
    std::string out = dir_ / ("out" + std::to_string(++outs_));
    fs::create_directories(out);
    return std::make_unique<TrainrunProcess>(argv, env, out);
  }
  std::string WorkdirBase(int node) const { return dir_ / ("w" + std::to_string(node)); }
  std::string RunDir() const { return dir_ / ("history/sched/" + run_id_); }
  json Record() const { return json::parse(ReadFile(RunDir() + "/run.json")); }

  TempDir dir_;
  int files_ = 0, outs_ = 0;
  std::string run_id_;
};

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// The case: srun -N2 --ntasks-per-node=1, two ranks per node. Rank 3 used
// to see SLURM_PROCID=1, SLURM_LOCALID=0, SLURM_NTASKS=2 and srun's PMI.
TEST_F(SchedulerTest, RanksSeeTheirOwnSlurmTaskVariablesAndNoLaunchVariables) {
  std::string job =
      Job({{"command",
            {RankHelper(), "--sleep-ms", "0", "--print-env", "RANK", "SLURM_PROCID",
             "SLURM_LOCALID", "SLURM_NODEID", "SLURM_NTASKS", "SLURM_NTASKS_PER_NODE",
             "SLURM_JOB_ID", "SLURM_JOB_NAME", "SLURM_JOB_NODELIST", "SLURM_STEP_ID",
             "SLURM_STEP_NUM_TASKS", "SLURM_TASKS_PER_NODE", "PMI_FD", "PMIX_RANK",
             "OMPI_COMM_WORLD_RANK"}},
           {"nodeCount", 2},
           {"processCountPerNode", 2}});
  const std::string port = std::to_string(FreePort());
  // The simulated node names do not resolve: the head's address is given.
  std::vector<std::string> flags = {"--master-addr", "127.0.0.1", "--control-port", port};
  auto head = Start(job, 0, flags, SrunEnv(0, 2));
  auto node = Start(job, 1, flags, SrunEnv(1, 2));
  Invocation h = head->Wait();
  Invocation n = node->Wait();
  ASSERT_EQ(h.exit_code, 0) << h.err;
  ASSERT_EQ(n.exit_code, 0) << n.err;
  for (const char* line :
       {"[rank 3] RANK=3\n", "[rank 3] SLURM_PROCID=3\n", "[rank 3] SLURM_LOCALID=1\n",
        "[rank 3] SLURM_NODEID=1\n", "[rank 3] SLURM_NTASKS=4\n",
        "[rank 3] SLURM_NTASKS_PER_NODE=2\n", "[rank 3] SLURM_JOB_ID=4242\n",
        "[rank 3] SLURM_JOB_NAME=train\n", "[rank 3] SLURM_JOB_NODELIST=sim[1-2]\n",
        "[rank 3] SLURM_STEP_ID=<unset>\n", "[rank 3] SLURM_STEP_NUM_TASKS=<unset>\n",
        "[rank 3] SLURM_TASKS_PER_NODE=<unset>\n", "[rank 3] PMI_FD=<unset>\n",
        "[rank 3] PMIX_RANK=<unset>\n", "[rank 3] OMPI_COMM_WORLD_RANK=<unset>\n"}) {
    EXPECT_NE(n.out.find(line), std::string::npos) << line << n.out;
  }
  EXPECT_NE(h.out.find("[rank 0] SLURM_PROCID=0\n"), std::string::npos) << h.out;
  EXPECT_NE(h.out.find("[rank 1] SLURM_LOCALID=1\n"), std::string::npos) << h.out;

  // The console's lines say which node they are from; the run record names
  // every node's local files, and `history show` prints them.
  EXPECT_NE(n.err.find("trainrun [node 1]: "), std::string::npos) << n.err;
  EXPECT_EQ(n.err.find("trainrun: "), std::string::npos) << n.err;
  json rec = Record();
  ASSERT_EQ(rec["nodes"].size(), 2u);
  for (int i = 0; i < 2; ++i) {
    const fs::path workdir = rec["nodes"][i]["workdir"].get<std::string>();
    EXPECT_EQ(workdir.parent_path(), fs::path(WorkdirBase(i)) / "sched" / run_id_);
    EXPECT_EQ(workdir.filename().string().rfind("node" + std::to_string(i) + "-", 0), 0u)
        << workdir;
  }
  Invocation show = RunTrainrun({"history", "--history", dir_ / "history", "show", run_id_},
                                dir_.path());
  EXPECT_NE(show.out.find("local files in " + rec["nodes"][1]["workdir"].get<std::string>()),
            std::string::npos)
      << show.out;
}

// mpi4py in a Gloo job under srun aborted: Open MPI took srun's SLURM_STEP_ID for
// a direct launch ("appears to have been direct launched using srun").
TEST_F(SchedulerTest, Mpi4pyInANonMpiJobUnderSlurmRunsAsASingleton) {
  if (system("/usr/bin/python3 -c 'import mpi4py' 2>/dev/null") != 0)
    GTEST_SKIP() << "needs mpi4py (apt install python3-mpi4py)";
  std::string job = Job({{"command",
                          {"/usr/bin/python3", "-c",
                           "from mpi4py import MPI; print('mpi4py size', MPI.COMM_WORLD.Get_size())"}},
                         {"communicator", "Gloo"},
                         {"processCountPerNode", 1}});
  std::vector<std::string> env = SrunEnv(0, 1);
  env.insert(env.end(), {"OMPI_ALLOW_RUN_AS_ROOT=1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1"});
  Invocation r = Start(job, 0, {}, env)->Wait();
  EXPECT_EQ(r.exit_code, 0) << r.err << r.out;
  EXPECT_NE(r.out.find("mpi4py size 1"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("direct launched"), std::string::npos) << r.out;
}

#ifdef MPI_ALLREDUCE_BINARY
// Open MPI under Slurm used the allocation (SLURM_JOB_NODELIST) and srun, and
// rejected trainrun's hostfile; it now needs no user settings, whatever the
// environment says.
TEST_F(SchedulerTest, MpiJobsUnderSlurmUseTrainrunsNodesWithoutUserSettings) {
  if (access("/usr/bin/mpirun", X_OK) != 0)
    GTEST_SKIP() << "needs mpirun (apt install openmpi-bin)";
  std::string job = Job(
      {{"command", {MPI_ALLREDUCE_BINARY}}, {"communicator", "Mpi"}, {"processCountPerNode", 2}});
  std::vector<std::string> env = SrunEnv(0, 1);
  env.insert(env.end(), {"OMPI_MCA_plm=slurm", "OMPI_MCA_ras=slurm"});
  Invocation r = Start(job, 0, {}, env)->Wait();
  ASSERT_EQ(r.exit_code, 0) << r.err << r.out;
  EXPECT_NE(r.out.find("[rank 1] allreduce rank 1 of 2"), std::string::npos) << r.out;
}
#endif

TEST_F(SchedulerTest, SeveralTrainrunsPerNodeFailWithinSecondsSayingHowToStartIt) {
  std::string job = Job({{"command", {RankHelper(), "--sleep-ms", "0"}}, {"nodeCount", 2}});
  const auto start = Clock::now();
  // srun -N2 --ntasks-per-node=2: two trainruns think they are node 0.
  auto first = Start(job, 0, {}, SrunEnv(0, 2, 2));
  auto second = Start(job, 0, {}, SrunEnv(0, 2, 2));
  for (Invocation r : {first->Wait(), second->Wait()}) {
    EXPECT_EQ(r.exit_code, 64) << r.err;
    EXPECT_NE(r.err.find("srun started 4 trainruns on 2 node(s)"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("srun --ntasks-per-node=1"), std::string::npos) << r.err;
  }
  EXPECT_LT(SecondsSince(start), 10);
  EXPECT_FALSE(fs::exists(RunDir() + "/run.json"));
}

TEST_F(SchedulerTest, ABatchScriptWithoutSrunFailsWithinSeconds) {
  std::string job = Job({{"command", {RankHelper(), "--sleep-ms", "0"}}});
  // The batch step of sbatch -N3: the allocation's variables, no step.
  const auto start = Clock::now();
  Invocation r = Start(job, 0, {},
                       {"SLURM_JOB_ID=4243", "SLURM_NODEID=0", "SLURM_NNODES=3",
                        "SLURM_JOB_NODELIST=sim[1-3]", "SLURM_TASKS_PER_NODE=1(x3)"})
                     ->Wait();
  EXPECT_EQ(r.exit_code, 64) << r.err;
  EXPECT_NE(r.err.find("started without srun in a 3-node Slurm allocation"), std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find("srun --ntasks-per-node=1 trainrun run JOB"), std::string::npos);
  EXPECT_LT(SecondsSince(start), 10);
}

// Every node, the head too, resolves the head's name first: a name nobody can
// resolve ends the job on every node in seconds, not after the 600 s rendezvous.
TEST_F(SchedulerTest, AHeadNameThatDoesNotResolveFailsEveryNodeWithinSeconds) {
  std::string job =
      Job({{"command", {RankHelper(), "--sleep-ms", "0"}}, {"nodeCount", 2}});
  const std::string port = std::to_string(FreePort());
  const auto start = Clock::now();
  std::vector<std::unique_ptr<TrainrunProcess>> nodes;
  for (int n = 0; n < 2; ++n) {
    nodes.push_back(Start(job, n,
                          {"--node-rank", std::to_string(n), "--master-addr",
                           "no-such-head.invalid", "--control-port", port},
                          {"TRAINRUN_JOB_TOKEN=scheduler-test-token-123456"}));
  }
  for (auto& node : nodes) {
    Invocation r = node->Wait(std::chrono::seconds(60));
    EXPECT_EQ(r.exit_code, 69) << r.err;
    EXPECT_NE(r.err.find("cannot resolve host \"no-such-head.invalid\""), std::string::npos)
        << r.err;
    EXPECT_NE(r.err.find("head no-such-head.invalid from --master-addr"), std::string::npos)
        << r.err;
    EXPECT_NE(r.err.find("or pass --master-addr"), std::string::npos) << r.err;
  }
  EXPECT_LT(SecondsSince(start), 20);
}

// A port in [29400, 30400) that nothing listens on, held listening by the test
// as another job's head would; -1 if none is free.
int ListenInDerivedRange(int* fd_out) {
  for (int port = 29400; port < 30400; ++port) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 && listen(fd, 1) == 0) {
      *fd_out = fd;
      return port;
    }
    close(fd);
  }
  return -1;
}

// Two jobs whose heads share a node: the port comes from SLURM_JOB_ID. If it is
// taken all the same, the head says which port, where it came from and how to
// choose another.
TEST_F(SchedulerTest, ATakenControlPortIsNamedWithItsSourceAndTheFlag) {
  int fd = -1;
  const int port = ListenInDerivedRange(&fd);
  if (port < 0) GTEST_SKIP() << "no free port in 29400-30399";
  std::string job = Job({{"command", {RankHelper(), "--sleep-ms", "0"}}, {"nodeCount", 2}});
  std::vector<std::string> env = SrunEnv(0, 2);
  const std::string job_id = std::to_string(100000 + (port - 29400));
  env.push_back("SLURM_JOB_ID=" + job_id);  // putenv: the later value wins
  const auto start = Clock::now();
  Invocation r = Start(job, 0, {"--master-addr", "127.0.0.1"}, env)->Wait();
  close(fd);
  EXPECT_EQ(r.exit_code, 69) << r.err;
  EXPECT_NE(r.err.find("control port " + std::to_string(port) + " (29400 + SLURM_JOB_ID " +
                       job_id + " mod 1000)"),
            std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find("pass --control-port PORT (or TRAINRUN_CONTROL_PORT)"), std::string::npos)
      << r.err;
  EXPECT_LT(SecondsSince(start), 10);
}

// A cancel of a two-node job: the head prints the stop once, not once for its
// ranks and again for the job.
TEST_F(SchedulerTest, ACanceledJobSaysStoppedOnce) {
  fs::create_directories(dir_ / "pids");
  std::string job = Job({{"command", {RankHelper(), "--pid-dir", dir_ / "pids"}},
                         {"nodeCount", 2},
                         {"processCountPerNode", 1}});
  const std::string port = std::to_string(FreePort());
  std::vector<std::unique_ptr<TrainrunProcess>> nodes;
  for (int n = 0; n < 2; ++n) {
    nodes.push_back(Start(job, n,
                          {"--node-rank", std::to_string(n), "--master-addr", "127.0.0.1",
                           "--control-port", port},
                          {"TRAINRUN_JOB_TOKEN=scheduler-test-token-123456"}));
  }
  ASSERT_TRUE(WaitFor([&] {
    return !ReadFile(dir_ / "pids/0.pid").empty() && !ReadFile(dir_ / "pids/1.pid").empty();
  }));
  nodes[0]->Signal(SIGTERM);
  Invocation h = nodes[0]->Wait();
  Invocation n = nodes[1]->Wait();
  EXPECT_EQ(h.exit_code, 143) << h.err;
  EXPECT_EQ(n.exit_code, 143) << n.err;
  size_t count = 0;
  for (size_t at = h.err.find("stopped: "); at != std::string::npos;
       at = h.err.find("stopped: ", at + 1)) {
    ++count;
  }
  EXPECT_EQ(count, 1u) << h.err;
  EXPECT_EQ(Record()["status"], "Canceled");
}

}  // namespace
}  // namespace trainrun::testing
