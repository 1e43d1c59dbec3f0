#include "runtime/cluster/cluster_discovery.h"

#include <algorithm>
#include <cctype>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "base/hashing.h"
#include "runtime/cluster/hostlist.h"
#include "runtime/process/rank_env.h"

namespace trainrun {
namespace {

const std::string* Get(const EnvMap& env, const std::string& name) {
  auto it = env.find(name);
  if (it == env.end() || it->second.empty()) return nullptr;
  return &it->second;
}

// A non-negative integer variable; an error names it.
Result<std::optional<int>> Int(const EnvMap& env, const std::string& name) {
  const std::string* value = Get(env, name);
  if (value == nullptr) return std::optional<int>();
  bool digits = !value->empty() && value->size() < 10 &&
                std::all_of(value->begin(), value->end(),
                            [](char c) { return std::isdigit(static_cast<unsigned char>(c)); });
  if (!digits) {
    return InvalidArgumentError(
        fmt::format("{}=\"{}\" is not a non-negative integer", name, *value));
  }
  return std::optional<int>(std::stoi(*value));
}

// The first of `names` that is set: its name and value.
std::pair<std::string, const std::string*> FirstOf(const EnvMap& env,
                                                   std::initializer_list<const char*> names) {
  for (const char* name : names) {
    if (const std::string* v = Get(env, name)) return {name, v};
  }
  return {"", nullptr};
}

std::vector<std::string> Split(const std::string& text, char sep) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find(sep, start);
    if (end == std::string::npos) end = text.size();
    std::string item = text.substr(start, end - start);
    while (!item.empty() && std::isspace(static_cast<unsigned char>(item.back()))) item.pop_back();
    while (!item.empty() && std::isspace(static_cast<unsigned char>(item.front())))
      item.erase(0, 1);
    if (!item.empty()) out.push_back(item);
    start = end + 1;
  }
  return out;
}

Status Contradiction(const std::string& scheduler, const std::string& what) {
  return InvalidArgumentError(
      fmt::format("{} environment contradicts itself: {}", scheduler, what));
}

}  // namespace

std::optional<Result<SchedulerView>> FromSlurm(const EnvMap& env) {
  if (Get(env, "SLURM_JOB_ID") == nullptr || Get(env, "SLURM_NODEID") == nullptr)
    return std::nullopt;
  SchedulerView v;
  v.name = "Slurm";
  auto fail = [](Status s) { return std::optional<Result<SchedulerView>>(std::move(s)); };
  Result<std::optional<int>> node_id = Int(env, "SLURM_NODEID");
  if (!node_id.ok()) return fail(node_id.status());
  v.node_rank = *node_id;
  // srun sets the step's values; a batch script sees the allocation's.
  auto [count_name, count_text] =
      FirstOf(env, {"SLURM_STEP_NUM_NODES", "SLURM_NNODES", "SLURM_JOB_NUM_NODES"});
  auto [list_name, list_text] =
      FirstOf(env, {"SLURM_STEP_NODELIST", "SLURM_JOB_NODELIST", "SLURM_NODELIST"});
  if (count_text != nullptr) {
    Result<std::optional<int>> count = Int(env, count_name);
    if (!count.ok()) return fail(count.status());
    v.node_count = *count;
  }
  v.evidence = fmt::format("SLURM_NODEID={}", *v.node_rank);
  if (count_text) v.evidence += fmt::format(", {}={}", count_name, *count_text);
  if (list_text != nullptr) {
    Result<std::vector<std::string>> hosts = ExpandHostlist(*list_text);
    if (!hosts.ok()) return fail(hosts.status().WithContext(list_name));
    if (v.node_count && static_cast<int>(hosts->size()) != *v.node_count) {
      return fail(
          Contradiction("Slurm", fmt::format("{}={} names {} host(s) but {}={}", list_name,
                                             *list_text, hosts->size(), count_name, *count_text)));
    }
    if (!v.node_count) v.node_count = static_cast<int>(hosts->size());
    v.head = hosts->front();
    v.evidence += fmt::format(", head {} (first of {}={})", v.head, list_name, *list_text);
    if (*v.node_rank < static_cast<int>(hosts->size())) {
      const std::string* self = Get(env, "SLURMD_NODENAME");
      if (self != nullptr && *self != (*hosts)[*v.node_rank]) {
        return fail(
            Contradiction("Slurm", fmt::format("SLURMD_NODENAME={} but node {} of {} is {}", *self,
                                               *v.node_rank, list_name, (*hosts)[*v.node_rank])));
      }
    }
  }
  if (v.node_count && *v.node_rank >= *v.node_count) {
    return fail(Contradiction("Slurm", fmt::format("SLURM_NODEID={} is not below {}={}",
                                                   *v.node_rank, count_name, *v.node_count)));
  }
  // srun sets SLURM_STEP_NUM_NODES and SLURM_STEP_NUM_TASKS for its step; a
  // batch script or an salloc shell sees only the allocation's variables.
  const std::string* step_nodes = Get(env, "SLURM_STEP_NUM_NODES");
  const std::string* step_tasks = Get(env, "SLURM_STEP_NUM_TASKS");
  if (step_nodes != nullptr && step_tasks != nullptr) {
    Result<std::optional<int>> nodes = Int(env, "SLURM_STEP_NUM_NODES");
    Result<std::optional<int>> tasks = Int(env, "SLURM_STEP_NUM_TASKS");
    if (nodes.ok() && tasks.ok() && **tasks > **nodes) {
      return fail(InvalidArgumentError(fmt::format(
          "srun started {} trainruns on {} node(s) (SLURM_STEP_NUM_TASKS={}, "
          "SLURM_STEP_NUM_NODES={}): trainrun runs once per node and starts the ranks itself; "
          "use `srun --ntasks-per-node=1 trainrun run JOB` and set processCountPerNode in the "
          "job file",
          **tasks, **nodes, *step_tasks, *step_nodes)));
    }
  } else if (step_nodes == nullptr && v.node_count && *v.node_count > 1) {
    return fail(InvalidArgumentError(fmt::format(
        "trainrun was started without srun in a {}-node Slurm allocation ({}={}, no "
        "SLURM_STEP_NUM_NODES: a batch script or salloc shell runs on the first node only), "
        "so the other nodes would never join; start one per node with "
        "`srun --ntasks-per-node=1 trainrun run JOB`",
        *v.node_count, count_name, *count_text)));
  }
  v.job_id = "slurm:" + *Get(env, "SLURM_JOB_ID");
  if (const std::string* step = Get(env, "SLURM_STEP_ID")) v.job_id += "." + *step;
  if (const std::string* restart = Get(env, "SLURM_RESTART_COUNT"))
    v.job_id += ".restart" + *restart;
  return std::optional<Result<SchedulerView>>(v);
}

std::optional<Result<SchedulerView>> FromKubernetes(const EnvMap& env,
                                                    const std::string& job_head_host) {
  if (Get(env, "JOB_COMPLETION_INDEX") == nullptr) return std::nullopt;
  auto fail = [](Status s) { return std::optional<Result<SchedulerView>>(std::move(s)); };
  SchedulerView v;
  v.name = "Kubernetes";
  Result<std::optional<int>> index = Int(env, "JOB_COMPLETION_INDEX");
  if (!index.ok()) return fail(index.status());
  v.node_rank = *index;
  v.evidence = fmt::format("JOB_COMPLETION_INDEX={}", *v.node_rank);
  const std::string* jobset = Get(env, "JOBSET_NAME");
  const std::string* replicated = Get(env, "REPLICATED_JOB_NAME");
  if (jobset != nullptr) {
    v.name = "Kubernetes JobSet";
    Result<std::optional<int>> job_index = Int(env, "JOB_INDEX");
    if (!job_index.ok()) return fail(job_index.status());
    if (job_index->value_or(0) != 0) {
      return fail(
          InvalidArgumentError(fmt::format("JobSet {} has more than one Job (JOB_INDEX={}): "
                                           "trainrun numbers nodes within one "
                                           "Job; give each pod --node-rank or use one Job with "
                                           "parallelism = nodeCount",
                                           *jobset, **job_index)));
    }
    v.job_id = "jobset:" + *jobset;
  }
  if (!job_head_host.empty()) {
    v.head = job_head_host;
    v.evidence += fmt::format(", head {} (job file rendezvous.headHost)", v.head);
  } else if (const std::string* master = Get(env, "MASTER_ADDR")) {
    v.head = *master;
    v.evidence += fmt::format(", head {} (MASTER_ADDR)", v.head);
  } else if (jobset != nullptr && replicated != nullptr) {
    // JobSet gives pod i of Job j the host name <jobset>-<rjob>-<j>-<i> in the
    // subdomain <jobset>.
    v.head = fmt::format("{}-{}-0-0.{}", *jobset, *replicated, *jobset);
    v.evidence += fmt::format(", head {} (from JOBSET_NAME and REPLICATED_JOB_NAME)", v.head);
  }
  return std::optional<Result<SchedulerView>>(v);
}

std::optional<Result<SchedulerView>> FromKubeflow(const EnvMap& env) {
  auto fail = [](Status s) { return std::optional<Result<SchedulerView>>(std::move(s)); };
  SchedulerView v;
  v.name = "Kubeflow";
  // torchrun-style PET_* variables of the training operator, else PyTorchJob's
  // per-pod MASTER_ADDR / RANK / WORLD_SIZE (one pod per node).
  const char* rank_name = "PET_NODE_RANK";
  const char* count_name = "PET_NNODES";
  const char* head_name = "PET_MASTER_ADDR";
  if (Get(env, count_name) == nullptr) {
    if (!Get(env, "MASTER_ADDR") || !Get(env, "RANK") || !Get(env, "WORLD_SIZE"))
      return std::nullopt;
    rank_name = "RANK";
    count_name = "WORLD_SIZE";
    head_name = "MASTER_ADDR";
  }
  Result<std::optional<int>> rank = Int(env, rank_name);
  if (!rank.ok()) return fail(rank.status());
  Result<std::optional<int>> count = Int(env, count_name);
  if (!count.ok()) return fail(count.status());
  v.node_rank = *rank;
  v.node_count = *count;
  if (const std::string* head = Get(env, head_name)) v.head = *head;
  if (v.node_rank && v.node_count && *v.node_rank >= *v.node_count) {
    return fail(Contradiction("Kubeflow", fmt::format("{}={} is not below {}={}", rank_name,
                                                      *v.node_rank, count_name, *v.node_count)));
  }
  v.evidence = fmt::format("{}={}, {}={}, {}={}", rank_name, v.node_rank.value_or(0), count_name,
                           v.node_count.value_or(0), head_name, v.head);
  return std::optional<Result<SchedulerView>>(v);
}

std::optional<Result<SchedulerView>> FromAzureBatch(
    const EnvMap& env, const std::vector<std::string>& local_addresses) {
  const std::string* host_list = Get(env, "AZ_BATCH_HOST_LIST");
  const std::string* node_list = Get(env, "AZ_BATCH_NODE_LIST");
  const std::string* task_index = Get(env, "AZ_BATCHAI_TASK_INDEX");
  if (host_list == nullptr && node_list == nullptr && task_index == nullptr) return std::nullopt;
  auto fail = [](Status s) { return std::optional<Result<SchedulerView>>(std::move(s)); };
  SchedulerView v;
  v.name = "Azure Batch";
  std::vector<std::string> hosts = host_list != nullptr   ? Split(*host_list, ',')
                                   : node_list != nullptr ? Split(*node_list, ';')
                                                          : std::vector<std::string>{};
  const std::string list_name = host_list != nullptr ? "AZ_BATCH_HOST_LIST" : "AZ_BATCH_NODE_LIST";
  auto [master_name, master] = FirstOf(env, {"AZ_BATCH_MASTER_NODE", "AZ_BATCHAI_MPI_MASTER_NODE"});
  std::string head = master != nullptr ? master->substr(0, master->find(':')) : "";
  if (head.empty() && !hosts.empty()) head = hosts.front();
  // Node 0 is the master; the others follow in list order.
  if (!head.empty()) {
    auto it = std::find(hosts.begin(), hosts.end(), head);
    if (it == hosts.end() && !hosts.empty()) {
      return fail(
          Contradiction("Azure Batch", fmt::format("{}={} is not in {}={}", master_name, *master,
                                                   list_name, fmt::join(hosts, ","))));
    }
    if (it != hosts.end()) std::rotate(hosts.begin(), it, it + 1);
  }
  v.head = head;
  if (!hosts.empty()) v.node_count = static_cast<int>(hosts.size());
  v.evidence =
      hosts.empty() ? "" : fmt::format("{}={}", list_name, host_list ? *host_list : *node_list);
  if (task_index != nullptr) {
    Result<std::optional<int>> index = Int(env, "AZ_BATCHAI_TASK_INDEX");
    if (!index.ok()) return fail(index.status());
    v.node_rank = *index;
    v.evidence +=
        fmt::format("{}AZ_BATCHAI_TASK_INDEX={}", v.evidence.empty() ? "" : ", ", *task_index);
  } else if (const std::string* is_master = Get(env, "AZ_BATCH_IS_CURRENT_NODE_MASTER");
             is_master != nullptr && *is_master == "true") {
    v.node_rank = 0;
    v.evidence += ", AZ_BATCH_IS_CURRENT_NODE_MASTER=true";
  } else {
    for (size_t i = 0; i < hosts.size() && !v.node_rank; ++i) {
      if (std::find(local_addresses.begin(), local_addresses.end(), hosts[i]) !=
          local_addresses.end()) {
        v.node_rank = static_cast<int>(i);
        v.evidence += fmt::format(", this node is {}", hosts[i]);
      }
    }
    if (!v.node_rank) {
      return fail(
          Contradiction("Azure Batch", fmt::format("none of this node's addresses ({}) is in {}",
                                                   fmt::join(local_addresses, ", "), list_name)));
    }
  }
  if (!head.empty()) v.evidence += fmt::format(", head {}", head);
  if (v.node_count && v.node_rank && *v.node_rank >= *v.node_count) {
    return fail(
        Contradiction("Azure Batch", fmt::format("task index {} is not below the {} host(s) of {}",
                                                 *v.node_rank, *v.node_count, list_name)));
  }
  if (const std::string* job = Get(env, "AZ_BATCH_JOB_ID")) {
    v.job_id = "azurebatch:" + *job;
    if (const std::string* task = Get(env, "AZ_BATCH_TASK_ID")) v.job_id += "/" + *task;
  }
  return std::optional<Result<SchedulerView>>(v);
}

std::optional<Result<SchedulerView>> FromSageMaker(const std::optional<std::string>& config_text,
                                                   const std::string& path) {
  if (!config_text) return std::nullopt;
  auto fail = [&](const std::string& what) {
    return std::optional<Result<SchedulerView>>(
        InvalidArgumentError(fmt::format("{}: {}", path, what)));
  };
  nlohmann::json config = nlohmann::json::parse(*config_text, nullptr, false);
  if (config.is_discarded() || !config.is_object()) return fail("not a JSON object");
  auto current = config.find("current_host");
  auto hosts = config.find("hosts");
  if (current == config.end() || !current->is_string())
    return fail("\"current_host\" (a string) is missing");
  if (hosts == config.end() || !hosts->is_array() || hosts->empty()) {
    return fail("\"hosts\" (a non-empty array of strings) is missing");
  }
  SchedulerView v;
  v.name = "SageMaker";
  std::vector<std::string> names;
  for (const auto& h : *hosts) {
    if (!h.is_string()) return fail("\"hosts\" must hold strings");
    names.push_back(h.get<std::string>());
  }
  auto it = std::find(names.begin(), names.end(), current->get<std::string>());
  if (it == names.end()) {
    return fail(fmt::format("current_host \"{}\" is not in hosts [{}]", current->get<std::string>(),
                            fmt::join(names, ", ")));
  }
  v.node_rank = static_cast<int>(it - names.begin());
  v.node_count = static_cast<int>(names.size());
  v.head = names.front();
  auto iface = config.find("network_interface_name");
  if (iface != config.end() && iface->is_string()) v.interface_hint = iface->get<std::string>();
  v.evidence = fmt::format("{}: current_host {}, hosts [{}]", path, current->get<std::string>(),
                           fmt::join(names, ", "));
  return std::optional<Result<SchedulerView>>(v);
}

Result<Placement> DiscoverPlacement(const DiscoveryInput& in) {
  Placement p;
  std::optional<SchedulerView> scheduler;
  std::vector<std::optional<Result<SchedulerView>>> found;
  found.push_back(FromSlurm(in.env));
  found.push_back(FromKubernetes(in.env, in.job_head_host));
  found.push_back(FromKubeflow(in.env));
  found.push_back(FromAzureBatch(in.env, in.local_addresses));
  found.push_back(FromSageMaker(in.sagemaker_config, in.sagemaker_config_path));
  for (auto& f : found) {
    if (!f) continue;
    if (!f->ok()) return f->status();
    if (!scheduler) {
      scheduler = f->value();
    } else {
      p.notes.push_back(fmt::format("{} variables are present too and ignored ({} comes first)",
                                    f->value().name, scheduler->name));
    }
  }

  std::vector<std::string> how;
  std::vector<std::string> sources;
  auto pick_int = [&](std::optional<int> flag, const char* flag_name, std::optional<int> sched,
                      const char* what) -> std::optional<int> {
    if (flag) {
      if (sched && *sched != *flag) {
        p.notes.push_back(fmt::format("{} {} overrides {}'s {} ({})", flag_name, *flag,
                                      scheduler->name, *sched, scheduler->evidence));
      }
      how.push_back(fmt::format("{} {} from {}", what, *flag, flag_name));
      if (std::find(sources.begin(), sources.end(), "flags") == sources.end())
        sources.push_back("flags");
      return flag;
    }
    if (sched) {
      how.push_back(fmt::format("{} {} from {}", what, *sched, scheduler->name));
      if (std::find(sources.begin(), sources.end(), scheduler->name) == sources.end()) {
        sources.push_back(scheduler->name);
      }
      return sched;
    }
    return std::nullopt;
  };

  std::optional<int> count = pick_int(
      in.nnodes, "--nnodes", scheduler ? scheduler->node_count : std::nullopt, "node count");
  if (in.job_node_count) {
    if (!count) {
      count = in.job_node_count;
      how.push_back(fmt::format("node count {} from {} /nodeCount", *count, in.job_file));
      sources.push_back("job file");
    } else if (*count != *in.job_node_count) {
      if (in.nnodes) {
        p.notes.push_back(fmt::format("--nnodes {} overrides {} /nodeCount {}", *count, in.job_file,
                                      *in.job_node_count));
      } else {
        return InvalidJobError(fmt::format("{}: /nodeCount {} disagrees with {} ({})", in.job_file,
                                           *in.job_node_count, scheduler->name,
                                           scheduler->evidence));
      }
    }
  }
  p.node_count = count.value_or(1);
  if (p.node_count < 1) return InvalidArgumentError("--nnodes must be at least 1");

  std::optional<int> rank = pick_int(in.node_rank, "--node-rank",
                                     scheduler ? scheduler->node_rank : std::nullopt, "node rank");
  if (!rank) {
    if (p.node_count > 1) {
      return UnavailableError(
          fmt::format("this is a {}-node job but nothing says which node this "
                      "is: pass --node-rank (or "
                      "TRAINRUN_NODE_RANK), or start trainrun under Slurm "
                      "(srun), a Kubernetes indexed Job, "
                      "Kubeflow, Azure Batch or SageMaker",
                      p.node_count));
    }
    rank = 0;
  }
  p.node_rank = *rank;
  if (p.node_rank < 0 || p.node_rank >= p.node_count) {
    return InvalidArgumentError(fmt::format("node rank {} is out of range for a {}-node job ({})",
                                            p.node_rank, p.node_count, fmt::join(how, "; ")));
  }

  if (!in.master_addr.empty()) {
    p.head = in.master_addr;
    if (scheduler && !scheduler->head.empty() && scheduler->head != in.master_addr) {
      p.notes.push_back(fmt::format("--master-addr {} overrides {}'s head {}", in.master_addr,
                                    scheduler->name, scheduler->head));
    }
    how.push_back(fmt::format("head {} from --master-addr", p.head));
  } else if (scheduler && !scheduler->head.empty()) {
    p.head = scheduler->head;
    how.push_back(fmt::format("head {} from {}", p.head, scheduler->name));
  } else if (!in.job_head_host.empty()) {
    p.head = in.job_head_host;
    how.push_back(fmt::format("head {} from {} /rendezvous/headHost", p.head, in.job_file));
  }
  if (p.node_count > 1 && p.head.empty() && p.node_rank != 0) {
    return UnavailableError(
        fmt::format("node {} of a {}-node job does not know the head's "
                    "address: pass --master-addr (or "
                    "TRAINRUN_MASTER_ADDR), or set rendezvous.headHost in {}",
                    p.node_rank, p.node_count, in.job_file));
  }
  if (scheduler) {
    p.scheduler_job_id = scheduler->job_id;
    p.interface_hint = scheduler->interface_hint;
    if (!scheduler->evidence.empty())
      how.push_back(fmt::format("{}: {}", scheduler->name, scheduler->evidence));
  }
  p.source =
      sources.empty() ? "default (single node)" : fmt::format("{}", fmt::join(sources, " + "));
  p.reason = fmt::format("{}", fmt::join(how, "; "));
  return p;
}

ControlPortChoice DefaultControlPort(const EnvMap& env) {
  const std::string* job = Get(env, "SLURM_JOB_ID");
  if (job == nullptr) job = Get(env, "SLURM_JOBID");
  if (job == nullptr || job->empty()) {
    return {kDefaultControlPort, fmt::format("the default {}", kDefaultControlPort)};
  }
  uint64_t n = 0;
  bool numeric = job->size() <= 18 &&
                 std::all_of(job->begin(), job->end(), [](char c) { return c >= '0' && c <= '9'; });
  if (numeric) {
    n = std::stoull(*job);
  } else {
    n = Fnv1a64(*job);  // the same on every node, spread over the range
  }
  int port = kDefaultControlPort + static_cast<int>(n % kControlPortSpan);
  return {port,
          fmt::format("{} + SLURM_JOB_ID {} mod {}", kDefaultControlPort, *job, kControlPortSpan)};
}

EnvMap CurrentEnvMap() { return EnvironmentMap(CurrentEnvironment()); }

}  // namespace trainrun
