// A 2-node job (2 ranks a node) in network namespaces on this machine (root):
// clang-format off
//   launch    from starting the launchers to every rank running, and to the
//             launchers' exit, for ranks that do nothing
//   teardown  from rank 3 (node 1) failing to the last rank on node 0 gone, while
//             the others wait
//   restart   from rank 3 (node 1) failing on attempt 1 to the last of the 4 ranks
//             of attempt 2 running (trainrun: maxRestarts 1, backoffSeconds 0;
//             torchrun: --max_restarts 1)
// clang-format on
// beside torchrun (c10d rendezvous) on the same namespaces. Debian 12's torchrun
// (torch 1.13) crashes at launch on Python 3.11 (pytorch issue 92319), so it runs
// through benchmarks/torchrun_shim.py, which patches Std.from_str and nothing else.
//
// usage: multinode_bench [--repetitions R] [--peer-repetitions R] [--cap S] [--restart-only 1]
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <thread>

#include "benchmarks/bench_stats.h"
#include "tests/multinode/netns_cluster.h"

namespace trainrun::bench {
namespace {

namespace fs = std::filesystem;
using trainrun::testing::NetnsCluster;

constexpr const char* kPython = "/usr/bin/python3";
constexpr const char* kToken = "multinode-benchmark-token-0427";

double Now() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

double ReadTime(const std::string& path) {
  std::ifstream in(path);
  double t = NAN;
  in >> t;
  return t;
}

bool Alive(int pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string p, comm, state;
  if (!(stat >> p >> comm >> state)) return false;
  return state != "Z" && state != "X";
}

int Spawn(const std::vector<std::string>& argv, const std::string& log) {
  pid_t pid = fork();
  if (pid == 0) {
    int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(fd, 1);
    dup2(fd, 2);
    setenv("TRAINRUN_JOB_TOKEN", kToken, 1);
    std::vector<char*> args;
    for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execv(args[0], args.data());
    _exit(127);
  }
  return pid;
}

// Waits for the pids until `deadline` (realtime); kills what is left after it.
void WaitAll(const std::vector<int>& pids, double deadline) {
  for (int pid : pids) {
    while (waitpid(pid, nullptr, WNOHANG) == 0) {
      if (Now() > deadline) {
        kill(pid, SIGKILL);
        waitpid(pid, nullptr, 0);
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  }
}

bool WaitFor(const std::function<bool()>& condition, double seconds) {
  double deadline = Now() + seconds;
  while (Now() < deadline) {
    if (condition()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return condition();
}

class Bench {
 public:
  Bench(NetnsCluster* cluster, std::string dir) : cluster_(cluster), dir_(std::move(dir)) {}

  // The launchers of both nodes for the rank command `rank`, in run `id`.
  std::vector<int> Launch(bool torchrun, const std::string& id,
                          const std::vector<std::string>& rank, int max_restarts = 0) {
    std::vector<int> pids;
    for (int node = 0; node < 2; ++node) {
      std::vector<std::string> argv;
      if (torchrun) {
        argv = {kPython,
                std::string(TRAINRUN_SOURCE_DIR) + "/benchmarks/torchrun_shim.py",
                "--nnodes",
                "2",
                "--nproc_per_node",
                "2",
                "--node_rank",
                std::to_string(node),
                "--rdzv_backend",
                "c10d",
                "--rdzv_endpoint",
                cluster_->Address(0) + ":29500",
                "--rdzv_id",
                id,
                "--rdzv_conf",
                node == 0 ? "is_host=1" : "is_host=0",
                "--max_restarts",
                std::to_string(max_restarts),
                "--no_python"};
        argv.insert(argv.end(), rank.begin(), rank.end());
      } else {
        std::string job = dir_ + "/" + id + ".json";
        std::string command;
        for (const std::string& word : rank)
          command += (command.empty() ? "\"" : ", \"") + word + "\"";
        std::ofstream(job) << "{\"command\": [" << command
                           << "], \"nodeCount\": 2, \"processCountPerNode\": 2, "
                           << "\"maxRestarts\": " << max_restarts
                           << ", \"restarts\": {\"backoffSeconds\": 0}, "
                           << "\"experimentName\": \"bench\", \"runId\": \"" << id
                           << "\", \"sourceDirectory\": \"" << dir_ << "/src\"}";
        argv = {TRAINRUN_BINARY,
                "run",
                job,
                "--node-rank",
                std::to_string(node),
                "--master-addr",
                cluster_->Address(0),
                "--history",
                dir_ + "/history",
                "--workdir",
                dir_ + "/w" + std::to_string(node),
                "--console",
                "none",
                "--grace-period",
                "5"};
      }
      pids.push_back(Spawn(cluster_->Command(node, argv),
                           dir_ + "/" + id + ".node" + std::to_string(node) + ".log"));
    }
    return pids;
  }

  // Seconds to every rank started, and to both launchers gone.
  std::pair<double, double> LaunchOnce(bool torchrun, int rep) {
    std::string id = fmt::format("{}-launch-{}", torchrun ? "torchrun" : "trainrun", rep);
    std::string out = dir_ + "/" + id;
    fs::create_directories(out);
    const double t0 = Now();
    std::vector<int> pids = Launch(torchrun, id, {BENCH_RANK_BINARY, "start", out});
    WaitAll(pids, t0 + 120);
    const double done = Now();
    double last = -INFINITY;
    for (int r = 0; r < 4; ++r)
      last = std::max(last, ReadTime(out + "/start." + std::to_string(r)));
    return {std::isfinite(last) ? last - t0 : NAN, done - t0};
  }

  // Seconds from rank 3's failure to the last rank of node 0 gone; NaN when
  // they outlived `cap`.
  double TeardownOnce(bool torchrun, int rep, double cap) {
    std::string id = fmt::format("{}-teardown-{}", torchrun ? "torchrun" : "trainrun", rep);
    std::string out = dir_ + "/" + id;
    fs::create_directories(out);
    std::vector<int> pids =
        Launch(torchrun, id, {BENCH_RANK_BINARY, "hang", out, "3", "1000", "7"});
    double result = NAN;
    if (WaitFor([&] { return fs::exists(out + "/failed"); }, 120)) {
      std::vector<int> others;
      WaitFor([&] { return fs::exists(out + "/pid.0") && fs::exists(out + "/pid.1"); }, 10);
      for (int r : {0, 1})
        others.push_back(static_cast<int>(ReadTime(out + "/pid." + std::to_string(r))));
      double failed = ReadTime(out + "/failed");
      bool gone = WaitFor(
          [&] {
            for (int pid : others) {
              if (pid > 0 && Alive(pid)) return false;
            }
            return true;
          },
          cap);
      if (gone) result = Now() - failed;
    }
    WaitAll(pids, Now() + 10);
    cluster_->KillAll();
    return result;
  }

  // Seconds from rank 3's failure on attempt 1 to the last rank of attempt 2
  // started; NaN when attempt 2 did not start within `cap`.
  double RestartOnce(bool torchrun, int rep, double cap) {
    std::string id = fmt::format("{}-restart-{}", torchrun ? "torchrun" : "trainrun", rep);
    std::string out = dir_ + "/" + id;
    fs::create_directories(out);
    std::vector<int> pids =
        Launch(torchrun, id, {BENCH_RANK_BINARY, "restart", out, "3", "300", "7"}, 1);
    WaitAll(pids, Now() + 60 + cap);
    cluster_->KillAll();
    const double failed = ReadTime(out + "/failed");
    double last = -INFINITY;
    for (int r = 0; r < 4; ++r)
      last = std::max(last, ReadTime(out + "/restart." + std::to_string(r)));
    return std::isfinite(last) && last - failed <= cap ? last - failed : NAN;
  }

 private:
  NetnsCluster* cluster_;
  std::string dir_;
};

// The largest sample; NaN when there is none or one is NaN.
double Max(const std::vector<double>& v) {
  double m = v.empty() ? NAN : -INFINITY;
  for (double x : v) m = std::isnan(x) ? x : std::max(m, x);
  return m;
}

// `spread`: the second column's statistic of the samples (P99 unless given).
void Row(const std::string& metric, const std::vector<double>& ours,
         const std::vector<double>& peer, const std::string& none,
         double (*spread)(const std::vector<double>&) = nullptr) {
  auto second = [spread](const std::vector<double>& v) { return spread ? spread(v) : P99(v); };
  std::printf("%-46s  %12s  %12s  %14s  %14s  %9s\n", metric.c_str(), Seconds(Median(ours)).c_str(),
              Seconds(second(ours)).c_str(), Seconds(Median(peer), none).c_str(),
              Seconds(second(peer), none).c_str(), Ratio(Median(peer), Median(ours)).c_str());
}

}  // namespace
}  // namespace trainrun::bench

int main(int argc, char** argv) {
  using namespace trainrun::bench;
  int repetitions = 5, peer_repetitions = 3;
  double cap = 30;
  bool restart_only = false;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string flag = argv[i];
    if (flag == "--repetitions") repetitions = std::atoi(argv[i + 1]);
    if (flag == "--peer-repetitions") peer_repetitions = std::atoi(argv[i + 1]);
    if (flag == "--cap") cap = std::atof(argv[i + 1]);
    if (flag == "--restart-only") restart_only = std::atoi(argv[i + 1]) != 0;
  }
  NetnsCluster cluster(2);
  if (!cluster.skip_reason().empty()) {
    std::printf("# multinode_bench skipped: %s\n", cluster.skip_reason().c_str());
    return 0;
  }
  char pattern[] = "/tmp/trainrun-bench-XXXXXX";
  std::string dir = mkdtemp(pattern);
  std::filesystem::create_directories(dir + "/src");
  const bool have_torchrun =
      std::system(
          (std::string(kPython) + " -c 'import torch.distributed.run' 2>/dev/null").c_str()) == 0;
  Bench bench(&cluster, dir);
  std::vector<double> started, done, teardown, peer_started, peer_done, peer_teardown;
  std::vector<double> restart, peer_restart;
  for (int r = 0; r < repetitions; ++r) restart.push_back(bench.RestartOnce(false, r, cap));
  for (int r = 0; have_torchrun && r < peer_repetitions; ++r) {
    peer_restart.push_back(bench.RestartOnce(true, r, cap));
  }
  for (int r = 0; !restart_only && r < repetitions; ++r) {
    auto [s, d] = bench.LaunchOnce(false, r);
    started.push_back(s);
    done.push_back(d);
    teardown.push_back(bench.TeardownOnce(false, r, cap));
  }
  for (int r = 0; !restart_only && have_torchrun && r < peer_repetitions; ++r) {
    auto [s, d] = bench.LaunchOnce(true, r);
    peer_started.push_back(s);
    peer_done.push_back(d);
    peer_teardown.push_back(bench.TeardownOnce(true, r, cap));
  }
  const std::string never = fmt::format("> {:.0f} s", cap);
  std::printf(
      "# 2 nodes x 2 ranks in network namespaces on this machine (%u cores), "
      "file:// history\n",
      std::thread::hardware_concurrency());
  std::printf(
      "# ranks: benchmarks/bench_rank (a C program); trainrun %d repetitions, "
      "torchrun %d\n",
      repetitions, have_torchrun ? peer_repetitions : 0);
  std::printf(
      "# peer: torchrun (torch 1.13, --rdzv_backend c10d) run through "
      "benchmarks/torchrun_shim.py, which\n"
      "#   patches Std.from_str: Debian 12's torchrun crashes at launch on "
      "Python 3.11 (pytorch issue 92319)%s\n",
      have_torchrun ? "" : " - not available here");
  std::printf(
      "# teardown: rank 3 (node 1) exits 7 while ranks 0-2 wait; '%s' = node "
      "0's ranks were still running\n",
      never.c_str());
  std::printf(
      "# restart: rank 3 (node 1) exits 7 after 300 ms on attempt 1; time to the last of the 4 "
      "ranks of attempt 2 started\n");
  std::printf("%-46s  %12s  %12s  %14s  %14s  %9s\n", "metric", "trainrun med", "trainrun max",
              "torchrun med", "torchrun max", "peer/us");
  Row("restart: rank 3 fails -> 4 ranks running again", restart, peer_restart, "-", Max);
  if (restart_only) {
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
    return 0;
  }
  std::printf("%-46s  %12s  %12s  %14s  %14s  %9s\n", "metric", "trainrun med", "trainrun p99",
              "torchrun med", "torchrun p99", "peer/us");
  Row("launch: start -> all 4 ranks running", started, peer_started, "-");
  Row("launch: start -> both launchers exited", done, peer_done, "-");
  // A peer that never stopped the other node's ranks counts as the cap.
  std::vector<double> capped;
  for (double t : peer_teardown) capped.push_back(std::isnan(t) ? INFINITY : t);
  std::printf(
      "%-46s  %12s  %12s  %14s  %14s  %9s\n", "teardown: rank 3 fails -> node 0's ranks gone",
      Seconds(Median(teardown)).c_str(), Seconds(P99(teardown)).c_str(),
      capped.empty()               ? "-"
      : std::isinf(Median(capped)) ? never.c_str()
                                   : Seconds(Median(capped)).c_str(),
      capped.empty()            ? "-"
      : std::isinf(P99(capped)) ? never.c_str()
                                : Seconds(P99(capped)).c_str(),
      capped.empty()               ? "-"
      : std::isinf(Median(capped)) ? fmt::format("> {:.0f}x", cap / Median(teardown)).c_str()
                                   : Ratio(Median(capped), Median(teardown)).c_str());
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  return 0;
}
