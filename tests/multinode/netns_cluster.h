// A small cluster on this machine for multi-node tests: network namespaces
// joined by a bridge, each with its own address (10.211.0.<node + 1> on eth0)
// and, for the processes started in it, its own host name (a UTS namespace).
// Names are unique per test process, so parallel runs do not clash; everything
// is removed when the cluster goes out of scope, processes left in a namespace
// included.
#pragma once

#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace trainrun::testing {

class NetnsCluster {
 public:
  explicit NetnsCluster(int nodes) : nodes_(nodes) {
    static int counter = 0;
    char prefix[16];
    std::snprintf(prefix, sizeof(prefix), "t%06x", ((getpid() << 4) | (counter++ & 15)) & 0xffffff);
    prefix_ = prefix;
    if (geteuid() != 0) {
      skip_ = "needs root to create network namespaces";
      return;
    }
    if (!Run("command -v ip") || !Run("command -v unshare")) {
      skip_ = "needs ip (iproute2) and unshare (util-linux)";
      return;
    }
    if (!Run("ip link add " + Bridge() + " type bridge && ip link set " + Bridge() + " up")) {
      skip_ =
          "cannot create a bridge (ip link add type bridge failed): needs "
          "CAP_NET_ADMIN";
      return;
    }
    created_bridge_ = true;
    for (int i = 0; i < nodes; ++i) {
      std::string ns = Namespace(i), veth = prefix_ + "v" + std::to_string(i);
      bool ok = Run("ip netns add " + ns);
      if (ok) namespaces_.push_back(ns);
      ok = ok && Run("ip link add " + veth + " type veth peer name eth0 netns " + ns) &&
           Run("ip link set " + veth + " master " + Bridge() + " up") &&
           Run("ip -n " + ns + " addr add " + Address(i) + "/24 dev eth0") &&
           Run("ip -n " + ns + " link set eth0 up") && Run("ip -n " + ns + " link set lo up");
      if (!ok) {
        skip_ =
            "cannot create network namespaces and veth pairs (ip netns add "
            "failed)";
        return;
      }
    }
  }

  ~NetnsCluster() {
    KillAll();
    for (size_t i = 0; i < namespaces_.size(); ++i) {
      Run("ip netns del " + namespaces_[i]);
      Run("ip link del " + prefix_ + "v" + std::to_string(i));
    }
    if (created_bridge_) Run("ip link del " + Bridge());
  }

  // Why the cluster could not be made; empty when it is ready.
  const std::string& skip_reason() const { return skip_; }

  int size() const { return nodes_; }
  std::string Address(int node) const { return "10.211.0." + std::to_string(node + 1); }
  std::string Host(int node) const { return prefix_ + "-node" + std::to_string(node); }
  std::string Namespace(int node) const { return prefix_ + "n" + std::to_string(node); }

  // `argv` run inside node's namespace with the node's host name. The process
  // keeps its pid through ip netns exec, unshare and sh's exec.
  std::vector<std::string> Command(int node, const std::vector<std::string>& argv) const {
    std::vector<std::string> out = {"/usr/bin/env",
                                    "ip",
                                    "netns",
                                    "exec",
                                    Namespace(node),
                                    "unshare",
                                    "--uts",
                                    "/bin/sh",
                                    "-c",
                                    "hostname " + Host(node) + " && exec \"$@\"",
                                    "sh"};
    out.insert(out.end(), argv.begin(), argv.end());
    return out;
  }

  // The processes living in node's network namespace.
  std::vector<int> Pids(int node) const {
    std::vector<int> pids;
    FILE* p = popen(("ip netns pids " + Namespace(node) + " 2>/dev/null").c_str(), "r");
    if (p == nullptr) return pids;
    int pid;
    while (std::fscanf(p, "%d", &pid) == 1) pids.push_back(pid);
    pclose(p);
    return pids;
  }

  // The command lines of those processes, for failure messages.
  std::string Describe(int node) const {
    std::string out;
    for (int pid : Pids(node)) {
      std::ifstream cmdline("/proc/" + std::to_string(pid) + "/cmdline");
      std::string args((std::istreambuf_iterator<char>(cmdline)), {});
      for (char& c : args) c = c == '\0' ? ' ' : c;
      out += std::to_string(pid) + ": " + args + "\n";
    }
    return out;
  }

  void KillAll() const {
    for (size_t i = 0; i < namespaces_.size(); ++i) {
      for (int pid : Pids(static_cast<int>(i))) kill(pid, SIGKILL);
    }
  }

 private:
  std::string Bridge() const { return prefix_ + "b"; }
  static bool Run(const std::string& command) {
    return std::system(("(" + command + ") >/dev/null 2>&1").c_str()) == 0;
  }

  int nodes_;
  std::string prefix_;
  std::string skip_;
  bool created_bridge_ = false;
  std::vector<std::string> namespaces_;
};

}  // namespace trainrun::testing
