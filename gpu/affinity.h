// Sets of CPUs and NUMA nodes as the kernel numbers them, and the ones this
// process may use.
//
// Every CPU number in trainrun's binding is the kernel's (hwloc's "OS index",
// what sched_setaffinity, taskset and /proc/self/status use), never hwloc's
// logical index; every NUMA node number is the kernel's node number
// (set_mempolicy, numactl, /sys/devices/system/node/nodeN).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

namespace trainrun::gpu {

// "0-3,8,10-11" for {0,1,2,3,8,10,11}: the kernel's list format
// (Cpus_allowed_list, taskset -c). The input need not be sorted or unique;
// empty gives "".
std::string FormatIdList(const std::vector<int>& ids);

// Parses the kernel's list format back; the result is sorted and unique. An
// error names `what` and the bad part, e.g. `CPU list "0-x": "x" is not a
// number`.
Result<std::vector<int>> ParseIdList(std::string_view text, std::string_view what = "list");

// The CPUs this process may run on (sched_getaffinity).
Result<std::vector<int>> ThisProcessCpus();

// The NUMA nodes this process may allocate from (Mems_allowed_list in
// /proc/self/status; the cgroup's cpuset.mems).
Result<std::vector<int>> ThisProcessMemoryNodes();

// Ok when this process may set NUMA memory policies. Containers' default
// seccomp profiles (Docker, containerd) refuse get_mempolicy/set_mempolicy
// without CAP_SYS_NICE (kPermissionDenied), kernels without NUMA support refuse
// them too.
Status CheckMemoryPolicyPermitted();

// The ids of `wanted` that are not in `allowed`, sorted.
std::vector<int> Missing(const std::vector<int>& wanted, const std::vector<int>& allowed);

}  // namespace trainrun::gpu
