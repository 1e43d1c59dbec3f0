// The head at scale on loopback: rendezvous time, the fail-fast broadcast and
// heartbeat load versus node count. One head session (this process) and N-1
// simulated nodes in a second process (this binary with --swarm), a few threads
// serving all of them over non-blocking sockets (tests/swarm/node_swarm.h), each a
// real client: HMAC handshake, tagged frames, Join, Assign.
//
//   rendezvous  from the first node's connect to the last node holding its
//               assignment
//   stop        from one node sending RankFailed to the last node holding the Stop
//   heartbeats  (--heartbeat N) the head's CPU share and memory while N nodes beat
//               at the default interval for --heartbeat-seconds
//
// The peer: torch's TCPStore, the store torchrun's c10d rendezvous is built on,
// with N clients meeting at a barrier (tcpstore_barrier.py) - the least a c10d
// rendezvous has to do, without its own rounds. It has no stop broadcast or
// heartbeat of its own to compare.
//
// usage: rendezvous_bench [--repetitions R] [--nodes 2,8,32,128,512]
//          [--swarm-threads T] [--peer-max N] [--heartbeat N] [--heartbeat-seconds S]
//          [--heartbeat-timeout S] [--python /usr/bin/python3]
// --heartbeat-timeout (default 10) is the head's and every simulated node's, each
// beating at min(timeout / 4, 1 s) as trainrun does; the head's warnings and errors
// (a node lost) go to stderr.
// Environment: SWARM_DEBUG=1 has the simulated nodes print their connection
// attempts, when the nodes were assigned (10/50/90/100 %) and their own CPU time;
// SWARM_CONNECTING=N caps their connections in flight (default 256).
#include <fcntl.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <future>
#include <mutex>
#include <sstream>
#include <thread>

#include "base/fd_limit.h"
#include "benchmarks/bench_stats.h"
#include "runtime/cluster/control_auth.h"
#include "runtime/cluster/head_session.h"
#include "tests/swarm/node_swarm.h"

extern char** environ;

namespace trainrun::bench {
namespace {

constexpr const char* kToken = "rendezvous-benchmark-token";
constexpr const char* kDigest = "bench";

NodeJoin HeadJoin(int count) {
  NodeJoin n;
  n.node_rank = 0;
  n.node_count = count;
  n.host = "bench0";
  n.process_count = 8;
  n.job_digest = kDigest;
  n.trainrun_version = "swarm";
  return n;
}

double Since(TimePoint from, TimePoint to) {
  return std::chrono::duration<double>(to - from).count();
}

// This process's CPU time, seconds: user, system.
std::pair<double, double> CpuSplit() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  auto seconds = [](const timeval& t) { return t.tv_sec + t.tv_usec / 1e6; };
  return {seconds(usage.ru_utime), seconds(usage.ru_stime)};
}

// User + system.
double CpuSeconds() {
  auto [user, sys] = CpuSplit();
  return user + sys;
}

// The heartbeat timeout of the head and the simulated nodes (--heartbeat-timeout),
// and the interval each beats at, as cluster_run.cc sets them.
HeartbeatOptions Heartbeats(double timeout_seconds) {
  return HeartbeatOptions::ForTimeout(
      std::chrono::duration_cast<Duration>(std::chrono::duration<double>(timeout_seconds)));
}

// The head's first warnings and errors (a node lost, a stall of its own) go to
// stderr, then a count: a benchmark that lost a node must say which and why, and
// the nodes closing at its end are lost to the head too.
class HeadReporter : public QuietReporter {
 public:
  ~HeadReporter() override {
    if (count_ > kShown) std::fprintf(stderr, "head: %d more warnings/errors\n", count_ - kShown);
  }
  // After the head's Stop, every node the swarm closes is lost to it: not news.
  void Info(std::string_view message) override {
    if (message.starts_with("stopping the job")) stopped_ = true;
  }
  void Warning(std::string_view message) override { Print("warning", message); }
  void Error(std::string_view message) override { Print("error", message); }

 private:
  static constexpr int kShown = 3;
  void Print(const char* what, std::string_view message) {
    std::lock_guard lock(mu_);
    if (stopped_ || count_++ >= kShown) return;
    std::fprintf(stderr, "head %s: %.*s\n", what, static_cast<int>(message.size()), message.data());
  }
  std::mutex mu_;
  int count_ = 0;
  std::atomic<bool> stopped_{false};
};

// --swarm PORT NODES THREADS HEARTBEAT_SECONDS TIMEOUT_SECONDS: the simulated nodes. Prints
//   rendezvous SECONDS ASSIGNED
//   beats SENT                   (with HEARTBEAT_SECONDS > 0)
//   stop SECONDS STOPPED
// and exits when its stdin closes or it is done.
int SwarmMain(int port, int nodes, int threads, double heartbeat_seconds, double timeout_seconds) {
  testing::SwarmOptions options;
  options.heartbeat_timeout = Heartbeats(timeout_seconds).timeout;
  options.heartbeat_interval = Heartbeats(timeout_seconds).interval;
  options.port = port;
  options.key = RoleKey(JobToken{kToken, false}, kRoleNode);
  options.node_count = nodes;
  options.threads = threads;
  options.job_digest = kDigest;
  if (const char* v = std::getenv("SWARM_CONNECTING")) options.max_connecting = std::atoi(v);
  testing::NodeSwarm swarm(options);
  Status joined = swarm.Rendezvous(std::chrono::steady_clock::now() + std::chrono::minutes(5));
  TimePoint last{};
  int assigned = 0;
  for (const auto& node : swarm.nodes()) {
    if (!node.assigned) continue;
    ++assigned;
    last = std::max(last, node.assigned_at);
  }
  if (std::getenv("SWARM_DEBUG")) {
    long connects = 0;
    std::vector<double> at;
    for (const auto& node : swarm.nodes()) {
      connects += node.connects;
      if (node.assigned) at.push_back(Since(swarm.started(), node.assigned_at));
    }
    std::sort(at.begin(), at.end());
    std::fprintf(stderr,
                 "connects %ld; assigned at 10%% %.3f 50%% %.3f 90%% %.3f 100%% %.3f; swarm CPU "
                 "%.3f s\n",
                 connects, at[at.size() / 10], at[at.size() / 2], at[at.size() * 9 / 10], at.back(),
                 CpuSeconds());
  }
  std::printf("rendezvous %.6f %d\n", joined.ok() ? Since(swarm.started(), last) : NAN, assigned);
  std::fflush(stdout);
  if (!joined.ok()) {
    std::fprintf(stderr, "swarm: %s\n", joined.message().c_str());
    return 1;
  }
  if (heartbeat_seconds > 0) {
    uint64_t before = 0, beats = 0;
    for (const auto& node : swarm.nodes()) before += node.heartbeats_sent;
    swarm.Beat(
        std::chrono::duration_cast<Duration>(std::chrono::duration<double>(heartbeat_seconds)));
    for (const auto& node : swarm.nodes()) beats += node.heartbeats_sent;
    beats -= before;
    std::printf("beats %llu\n", static_cast<unsigned long long>(beats));
    std::fflush(stdout);
  }
  Result<TimePoint> sent =
      swarm.FailAndWaitForStop(1, std::chrono::steady_clock::now() + std::chrono::seconds(60));
  last = {};
  int stopped = 0;
  std::string other;  // a Stop for another reason (a node lost) is not this figure
  for (const auto& node : swarm.nodes()) {
    if (!node.stopped) continue;
    ++stopped;
    last = std::max(last, node.stopped_at);
    if (node.stop_exit_code != 1 && other.empty()) {
      other = fmt::format("node {} was stopped with exit {}", node.node_rank, node.stop_exit_code);
    }
  }
  if (!other.empty()) std::fprintf(stderr, "swarm: %s, not 1\n", other.c_str());
  for (const auto& node : swarm.nodes()) {
    if (node.error.empty()) continue;
    std::fprintf(stderr, "swarm: node %d: %s\n", node.node_rank, node.error.c_str());
    break;
  }
  std::printf("stop %.6f %d\n", sent.ok() && other.empty() ? Since(*sent, last) : NAN, stopped);
  std::fflush(stdout);
  if (!sent.ok()) std::fprintf(stderr, "swarm: %s\n", sent.status().message().c_str());
  return sent.ok() ? 0 : 1;
}

// The peak resident memory of this process (VmHWM), MiB, since the last
// ResetPeakRss().
double PeakRssMiB() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmHWM:", 0) == 0) return std::stod(line.substr(6)) / 1024.0;
  }
  return NAN;
}

// Starts VmHWM again from the current RSS (Linux 4.0+), so each job's peak is its own.
void ResetPeakRss() { std::ofstream("/proc/self/clear_refs") << "5"; }

// The calling thread's CPU time, seconds.
double ThreadCpuSeconds() {
  rusage usage{};
  getrusage(RUSAGE_THREAD, &usage);
  auto seconds = [](const timeval& t) { return t.tv_sec + t.tv_usec / 1e6; };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

int OpenFds() {
  int n = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator("/proc/self/fd")) ++n;
  return n;
}

struct Sample {
  double rendezvous = NAN;  // seconds
  double stop = NAN;        // seconds
  double rss_mib = NAN;     // the head process's peak resident memory over the job
  int fds = 0;              // its open descriptors when the rendezvous completed (the most)
  double head_cpu = NAN;    // seconds of CPU the head process used for the rendezvous
  double cpu_share = NAN;   // of one core, during the heartbeats
  double user_share = NAN;  // its user part
  uint64_t beats = 0;
};

// One job of `nodes` nodes: the head here, the rest in a --swarm child.
Sample Once(int nodes, int threads, double heartbeat_seconds, double timeout_seconds) {
  Sample sample;
  HeadReporter reporter;
  SessionOptions options;
  options.reporter = &reporter;
  options.heartbeat = Heartbeats(timeout_seconds);
  options.rendezvous_timeout = std::chrono::minutes(5);
  std::atomic<bool> give_up{false};
  options.cancel_requested = [&] { return give_up.load(); };
  Result<std::unique_ptr<HeadSession>> head =
      HeadSession::Start(options, JobToken{kToken, false}, 0);
  if (!head.ok()) {
    std::fprintf(stderr, "head: %s\n", head.status().message().c_str());
    return sample;
  }
  (*head)->set_run_id("bench");
  int out[2];
  if (pipe2(out, O_CLOEXEC) != 0) return sample;
  const std::string self = std::filesystem::read_symlink("/proc/self/exe");
  std::vector<std::string> args = {self,
                                   "--swarm",
                                   std::to_string((*head)->port()),
                                   std::to_string(nodes),
                                   std::to_string(threads),
                                   fmt::format("{}", heartbeat_seconds),
                                   fmt::format("{}", timeout_seconds)};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, out[1], STDOUT_FILENO);
  pid_t child = -1;
  const int spawned = posix_spawn(&child, self.c_str(), &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  close(out[1]);
  if (spawned != 0) {
    close(out[0]);
    return sample;
  }
  FILE* from = fdopen(out[0], "r");
  ResetPeakRss();
  const double cpu_before = CpuSeconds();
  // The head's descriptors are at their most when its rendezvous completes: one
  // per node, none closed yet (the swarm closes them after the Stop). Counted
  // there, and the count's own CPU left out of the head's.
  double count_cpu = 0;
  auto rendezvous = std::async(std::launch::async, [&] {
    Result<JobAssignment> assigned = (*head)->Rendezvous(HeadJoin(nodes));
    const double before = ThreadCpuSeconds();
    sample.fds = OpenFds();
    count_cpu = ThreadCpuSeconds() - before;
    return assigned;
  });
  char word[32];
  double seconds = NAN;
  int count = 0;
  if (std::fscanf(from, "%31s %lf %d", word, &seconds, &count) == 3 && std::isfinite(seconds)) {
    sample.rendezvous = seconds;
  } else {
    give_up = true;
  }
  const bool head_ok = rendezvous.get().ok();
  if (!head_ok) sample.rendezvous = NAN;
  sample.head_cpu = CpuSeconds() - cpu_before - count_cpu;
  if (head_ok && heartbeat_seconds > 0) {
    const auto [user, sys] = CpuSplit();
    const auto wall = std::chrono::steady_clock::now();
    unsigned long long beats = 0;
    if (std::fscanf(from, "%31s %llu", word, &beats) == 2) {
      const double elapsed = Since(wall, std::chrono::steady_clock::now());
      const auto [user_after, sys_after] = CpuSplit();
      sample.cpu_share = (user_after + sys_after - user - sys) / elapsed;
      sample.user_share = (user_after - user) / elapsed;
      sample.beats = beats;
    }
  }
  if (head_ok && std::fscanf(from, "%31s %lf %d", word, &seconds, &count) == 3 &&
      std::isfinite(seconds)) {
    sample.stop = seconds;
  }
  fclose(from);
  int status = 0;
  waitpid(child, &status, 0);
  sample.rss_mib = PeakRssMiB();  // the rendezvous, the heartbeats and the stop
  return sample;
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

std::string ReadFirstLine(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

}  // namespace
}  // namespace trainrun::bench

int main(int argc, char** argv) {
  using namespace trainrun::bench;
  if (argc == 7 && std::string(argv[1]) == "--swarm") {
    return SwarmMain(std::atoi(argv[2]), std::atoi(argv[3]), std::atoi(argv[4]), std::atof(argv[5]),
                     std::atof(argv[6]));
  }
  int repetitions = 5;
  std::vector<int> node_counts = {2, 8, 32, 128, 512};
  std::string python = "/usr/bin/python3";
  int threads = 1;
  int peer_max = 2048;
  int heartbeat_nodes = 0;
  double heartbeat_seconds = 30;
  double timeout_seconds = trainrun::ToSeconds(trainrun::kDefaultHeartbeatTimeout);
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string flag = argv[i];
    if (flag == "--repetitions") repetitions = std::atoi(argv[i + 1]);
    if (flag == "--python") python = argv[i + 1];
    if (flag == "--swarm-threads") threads = std::atoi(argv[i + 1]);
    if (flag == "--peer-max") peer_max = std::atoi(argv[i + 1]);
    if (flag == "--heartbeat") heartbeat_nodes = std::atoi(argv[i + 1]);
    if (flag == "--heartbeat-seconds") heartbeat_seconds = std::atof(argv[i + 1]);
    if (flag == "--heartbeat-timeout") timeout_seconds = std::atof(argv[i + 1]);
    if (flag == "--nodes") {
      node_counts.clear();
      std::stringstream list(argv[i + 1]);
      std::string n;
      while (std::getline(list, n, ',')) node_counts.push_back(std::stoi(n));
    }
  }
  // Each process holds one descriptor per node (the head: accepted
  // connections; the swarm: its clients); the swarm child inherits the limit.
  trainrun::Result<trainrun::FdLimit> limit = trainrun::RaiseFdLimit();
  const std::string script = std::string(TRAINRUN_SOURCE_DIR) + "/benchmarks/tcpstore_barrier.py";
  const bool have_peer =
      std::system((python + " -c 'import torch.distributed' 2>/dev/null").c_str()) == 0;
  std::printf(
      "# the head at scale, loopback: the head session in this process, N-1 simulated nodes in a\n"
      "# second one (%d thread(s), non-blocking sockets), each a real client\n",
      threads);
  std::printf(
      "# trainrun: HMAC-SHA256 challenge-response both ways, then join and assignment in frames\n"
      "# that each carry an HMAC-SHA256 tag\n");
  std::printf(
      "# rendezvous: first node's connect to last node assigned; head CPU: the head process's\n"
      "# CPU time (user + system) for it; stop: one node's RankFailed to the last node holding\n"
      "# the Stop; head RSS: its peak (VmHWM) over the job; fds: its open descriptors when\n"
      "# its rendezvous completed (every node connected)\n");
  std::printf("# peer: torch TCPStore barrier (%s; N clients add + wait), up to %d nodes%s\n",
              python.c_str(), peer_max,
              have_peer ? "" : " - not available (no torch for this python)");
  std::printf("# bounds: open files soft %llu per process (hard %llu); local ports %s\n",
              limit.ok() ? static_cast<unsigned long long>(limit->soft) : 0ULL,
              limit.ok() ? static_cast<unsigned long long>(limit->hard) : 0ULL,
              ReadFirstLine("/proc/sys/net/ipv4/ip_local_port_range").c_str());
  std::printf("# %u cores; %d repetitions\n", std::thread::hardware_concurrency(), repetitions);
  std::printf("%6s  %11s  %11s  %11s  %11s  %8s  %11s  %11s  %11s  %9s  %6s\n", "nodes", "rdzv med",
              "rdzv p99", "peer med", "peer p99", "peer/us", "head CPU", "stop med", "stop p99",
              "head RSS", "fds");
  for (int nodes : node_counts) {
    std::vector<double> ours, stops, cpu;
    Sample last;
    for (int r = 0; r < repetitions; ++r) {
      last = Once(nodes, threads, 0, timeout_seconds);
      ours.push_back(last.rendezvous);
      stops.push_back(last.stop);
      cpu.push_back(last.head_cpu);
    }
    std::vector<double> peer = have_peer && nodes <= peer_max
                                   ? Peer(python, script, nodes, repetitions)
                                   : std::vector<double>{};
    std::printf("%6d  %11s  %11s  %11s  %11s  %8s  %11s  %11s  %11s  %6.1f MiB  %6d\n", nodes,
                Seconds(Median(ours)).c_str(), Seconds(P99(ours)).c_str(),
                Seconds(Median(peer)).c_str(), Seconds(P99(peer)).c_str(),
                Ratio(Median(peer), Median(ours)).c_str(), Seconds(Median(cpu)).c_str(),
                Seconds(Median(stops)).c_str(), Seconds(P99(stops)).c_str(), last.rss_mib,
                last.fds);
    std::fflush(stdout);
  }
  if (heartbeat_nodes > 0) {
    Sample beat = Once(heartbeat_nodes, threads, heartbeat_seconds, timeout_seconds);
    std::printf(
        "# heartbeats: %d nodes beating every %.1f s for %.0f s (%llu beats in): the head used "
        "%.2f %% of a core (user %.2f %%, system %.2f %%); peak RSS %.1f MiB\n",
        heartbeat_nodes, trainrun::ToSeconds(trainrun::kDefaultHeartbeatInterval),
        heartbeat_seconds, static_cast<unsigned long long>(beat.beats), beat.cpu_share * 100,
        beat.user_share * 100, (beat.cpu_share - beat.user_share) * 100, beat.rss_mib);
  }
  return 0;
}
