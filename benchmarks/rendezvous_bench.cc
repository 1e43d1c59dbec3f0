// Rendezvous time versus node count on loopback: one head session and N-1 node
// sessions in this process (a thread each), over real sockets with the real
// handshake (HMAC both ways), join and assignment, from the moment the nodes
// start to the moment the last one holds its assignment.
//
// The peer: torch's TCPStore, the store torchrun's c10d rendezvous is built on,
// with N clients meeting at a barrier (tcpstore_barrier.py) - the least a c10d
// rendezvous has to do, without its own rounds.
//
// usage: rendezvous_bench [--repetitions R] [--nodes 2,8,32,128,512] [--python
// /usr/bin/python3]
#include <unistd.h>

#include <cstdio>
#include <future>
#include <sstream>
#include <thread>

#include "benchmarks/bench_stats.h"
#include "runtime/cluster/head_session.h"
#include "runtime/cluster/worker_session.h"

namespace trainrun::bench {
namespace {

NodeJoin Join(int rank, int count) {
  NodeJoin n;
  n.node_rank = rank;
  n.node_count = count;
  n.host = "bench" + std::to_string(rank);
  n.process_count = 8;
  n.job_digest = "bench";
  n.trainrun_version = "bench";
  return n;
}

// One rendezvous of `nodes` nodes; seconds, or NaN when it failed.
double Once(int nodes) {
  QuietReporter quiet;
  SessionOptions options;
  options.reporter = &quiet;
  options.rendezvous_timeout = std::chrono::seconds(120);
  JobToken token{"rendezvous-benchmark-token", false};
  Result<std::unique_ptr<HeadSession>> head = HeadSession::Start(options, token, 0);
  if (!head.ok()) {
    std::fprintf(stderr, "head: %s\n", head.status().message().c_str());
    return NAN;
  }
  (*head)->set_run_id("bench");
  std::vector<std::unique_ptr<WorkerSession>> workers;
  for (int r = 1; r < nodes; ++r) {
    workers.push_back(
        std::make_unique<WorkerSession>(options, token, "127.0.0.1", (*head)->port(), r));
  }
  const auto start = std::chrono::steady_clock::now();
  std::vector<std::future<bool>> joined;
  for (int r = 1; r < nodes; ++r) {
    WorkerSession* w = workers[r - 1].get();
    joined.push_back(std::async(std::launch::async,
                                [w, r, nodes] { return w->Rendezvous(Join(r, nodes)).ok(); }));
  }
  bool ok = (*head)->Rendezvous(Join(0, nodes)).ok();
  for (auto& j : joined) ok = j.get() && ok;
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  workers.clear();
  return ok ? seconds : NAN;
}

std::vector<double> Peer(const std::string& python, const std::string& script, int nodes,
                         int repetitions) {
  std::string command = fmt::format("{} {} {} {} 2>/dev/null", python, script, nodes, repetitions);
  std::vector<double> samples;
  FILE* p = popen(command.c_str(), "r");
  if (p == nullptr) return samples;
  double s;
  while (std::fscanf(p, "%lf", &s) == 1) samples.push_back(s);
  pclose(p);
  return samples;
}

}  // namespace
}  // namespace trainrun::bench

int main(int argc, char** argv) {
  using namespace trainrun::bench;
  int repetitions = 5;
  std::vector<int> node_counts = {2, 8, 32, 128, 512};
  std::string python = "/usr/bin/python3";
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string flag = argv[i];
    if (flag == "--repetitions") repetitions = std::atoi(argv[i + 1]);
    if (flag == "--python") python = argv[i + 1];
    if (flag == "--nodes") {
      node_counts.clear();
      std::stringstream list(argv[i + 1]);
      std::string n;
      while (std::getline(list, n, ',')) node_counts.push_back(std::stoi(n));
    }
  }
  const std::string script = std::string(TRAINRUN_SOURCE_DIR) + "/benchmarks/tcpstore_barrier.py";
  const bool have_peer =
      std::system((python + " -c 'import torch.distributed' 2>/dev/null").c_str()) == 0;
  std::printf(
      "# rendezvous time vs node count, loopback, one process (a thread per "
      "simulated node)\n");
  std::printf(
      "# trainrun: head + nodes over TCP: HMAC-SHA256 challenge-response both "
      "ways, then join and assignment in frames that each carry an HMAC-SHA256 tag\n");
  std::printf(
      "# peer: torch TCPStore barrier (%s; N clients add + wait), the store "
      "under torchrun's c10d "
      "rendezvous%s\n",
      python.c_str(), have_peer ? "" : " - not available (no torch for this python)");
  std::printf(
      "# %u cores; %d repetitions; times from first node start to last node "
      "assigned\n",
      std::thread::hardware_concurrency(), repetitions);
  std::printf("%6s  %14s  %14s  %14s  %14s  %8s\n", "nodes", "trainrun med", "trainrun p99",
              "peer med", "peer p99", "peer/us");
  for (int nodes : node_counts) {
    std::vector<double> ours;
    for (int r = 0; r < repetitions; ++r) ours.push_back(Once(nodes));
    std::vector<double> peer =
        have_peer ? Peer(python, script, nodes, repetitions) : std::vector<double>{};
    std::printf("%6d  %14s  %14s  %14s  %14s  %8s\n", nodes, Seconds(Median(ours)).c_str(),
                Seconds(P99(ours)).c_str(), Seconds(Median(peer)).c_str(),
                Seconds(P99(peer)).c_str(), Ratio(Median(peer), Median(ours)).c_str());
    std::fflush(stdout);
  }
  return 0;
}
