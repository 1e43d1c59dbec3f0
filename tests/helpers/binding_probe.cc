// A rank that reports how it was started, for the binding tests: its CPU affinity
// and memory policy as the kernel sees them (also from a thread it starts, which
// inherits them) and the binding variables. One "KEY value" line each:
//
// clang-format off
//   CPUS 0-3               Cpus_allowed_list from /proc/self/status
//   THREAD_CPUS 0-3        the same, read by a new thread (sched_getaffinity)
//   MEMS 0                 Mems_allowed_list
//   MEMPOLICY bind 0       get_mempolicy(): default|preferred|bind|interleave|local, nodes
//   NUMA_MAPS bind:0       the policy /proc/self/numa_maps shows for the first mapping
//   ENV NAME=value         for OMP_NUM_THREADS, CUDA_VISIBLE_DEVICES, NCCL_IB_HCA,
//                          UCX_NET_DEVICES, CUDA_DEVICE_ORDER when set
// clang-format on
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <thread>

namespace {

std::string StatusField(const std::string& key) {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind(key + ":", 0) == 0) {
      std::string value = line.substr(key.size() + 1);
      return value.substr(value.find_first_not_of(" \t"));
    }
  }
  return "?";
}

std::string List(const cpu_set_t& set) {
  std::string text;
  for (int cpu = 0; cpu < CPU_SETSIZE;) {
    if (!CPU_ISSET(cpu, &set)) {
      ++cpu;
      continue;
    }
    int last = cpu;
    while (last + 1 < CPU_SETSIZE && CPU_ISSET(last + 1, &set)) ++last;
    if (!text.empty()) text += ",";
    text += std::to_string(cpu);
    if (last > cpu) text += "-" + std::to_string(last);
    cpu = last + 1;
  }
  return text;
}

}  // namespace

int main() {
  std::printf("CPUS %s\n", StatusField("Cpus_allowed_list").c_str());
  std::string thread_cpus;
  std::thread([&] {
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof(set), &set) == 0) thread_cpus = List(set);
  }).join();
  std::printf("THREAD_CPUS %s\n", thread_cpus.c_str());
  std::printf("MEMS %s\n", StatusField("Mems_allowed_list").c_str());

  int mode = -1;
  unsigned long mask[16] = {};
  const unsigned long max_nodes = sizeof(mask) * 8;
  if (syscall(SYS_get_mempolicy, &mode, mask, max_nodes, nullptr, 0) != 0) {
    std::printf("MEMPOLICY error\n");
  } else {
    static const char* kModes[] = {"default", "preferred", "bind", "interleave", "local"};
    std::string nodes;
    for (unsigned long node = 0; node < max_nodes; ++node) {
      if (mask[node / (8 * sizeof(unsigned long))] &
          (1UL << (node % (8 * sizeof(unsigned long))))) {
        if (!nodes.empty()) nodes += ",";
        nodes += std::to_string(node);
      }
    }
    std::printf("MEMPOLICY %s %s\n", mode >= 0 && mode <= 4 ? kModes[mode] : "other",
                nodes.c_str());
  }
  std::ifstream numa_maps("/proc/self/numa_maps");
  std::string address, policy;
  if (numa_maps >> address >> policy) std::printf("NUMA_MAPS %s\n", policy.c_str());

  for (const char* name : {"OMP_NUM_THREADS", "CUDA_VISIBLE_DEVICES", "NCCL_IB_HCA",
                           "UCX_NET_DEVICES", "CUDA_DEVICE_ORDER"}) {
    if (const char* value = std::getenv(name)) std::printf("ENV %s=%s\n", name, value);
  }
  return 0;
}
