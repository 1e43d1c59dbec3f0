#include "launcher/preflight.h"

#include <fcntl.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include <fmt/format.h>

#include "base/env.h"
#include "base/net_util.h"
#include "base/text.h"
#include "gpu/gpu_health.h"
#include "launcher/exit_codes.h"
#include "launcher/node_binding.h"
#include "runtime/process/supervisor.h"

namespace trainrun {

namespace {

using nlohmann::json;

std::vector<std::string> SplitLines(const std::string& text) {
  std::vector<std::string> lines;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    if (end > start) lines.push_back(text.substr(start, end - start));
    start = end + 1;
  }
  return lines;
}

// kStopped: the job's stop (another node's failure) cut this node's check short.
enum class Verdict { kPassed, kSkipped, kFailed, kCanceled, kStopped };

std::string_view VerdictName(Verdict v) {
  switch (v) {
    case Verdict::kPassed: return "passed";
    case Verdict::kSkipped: return "skipped";
    case Verdict::kFailed: return "failed";
    case Verdict::kCanceled: return "canceled";
    case Verdict::kStopped: return "stopped";
  }
  return "failed";
}

// One part of a node's preflight (health, NCCL).
struct PartResult {
  Verdict verdict = Verdict::kPassed;
  int exit_code = 0;              // when failed or canceled
  std::string reason;             // failed or skipped: why, naming the GPU and the check
  json failures = json::array();  // [{"check", "gpu", "message"}]
  json report = json::object();
};

std::string NodeName(int node_rank) {
  return fmt::format("node {} ({})", node_rank, LocalHostName());
}

std::string Mib(uint64_t bytes) {
  if (bytes >= (1u << 20) && bytes % (1u << 20) == 0) return fmt::format("{} MiB", bytes >> 20);
  if (bytes >= (1u << 10) && bytes % (1u << 10) == 0) return fmt::format("{} KiB", bytes >> 10);
  return fmt::format("{} B", bytes);
}

// The bus ids of the GPUs this node's ranks were given, in PCI order.
std::vector<std::string> PlannedBusIds(const NodeBinding& binding) {
  std::vector<std::string> ids;
  for (const gpu::RankBinding& rank : binding.plan.ranks) {
    for (int index : rank.gpus) {
      for (const gpu::Gpu& g : binding.inventory.gpus) {
        if (g.index == index && std::find(ids.begin(), ids.end(), g.bus_id) == ids.end()) {
          ids.push_back(g.bus_id);
        }
      }
    }
  }
  return ids;
}

// The GPU(s) of local rank `local`, for messages: "GPU 0000:34:00.0".
std::string RankGpus(const NodeBinding& binding, int local) {
  if (local < 0 || local >= static_cast<int>(binding.plan.ranks.size())) return "";
  std::vector<std::string> ids;
  for (int index : binding.plan.ranks[local].gpus) {
    for (const gpu::Gpu& g : binding.inventory.gpus) {
      if (g.index == index) ids.push_back(g.bus_id);
    }
  }
  if (ids.empty()) return "";
  return fmt::format("GPU {}", fmt::join(ids, ", "));
}

gpu::HealthThresholds Thresholds(const JobConfig& job) {
  gpu::HealthThresholds thresholds;
  if (job.preflight.health_thresholds_json.empty()) return thresholds;
  // Validated by ValidatePreflight when the run was loaded.
  json object = json::parse(job.preflight.health_thresholds_json, nullptr, false);
  Result<gpu::HealthThresholds> parsed = gpu::ParseHealthThresholds(object, "/preflight/health");
  if (parsed.ok()) thresholds = *parsed;
  return thresholds;
}

PartResult RunHealth(const RunContext& ctx, const JobConfig& job, const NodeBinding& binding) {
  PartResult part;
  gpu::HealthThresholds thresholds = Thresholds(job);
  const std::vector<std::string> bus_ids = PlannedBusIds(binding);
  if (!thresholds.expected_gpu_count && !bus_ids.empty()) {
    thresholds.expected_gpu_count = static_cast<int>(bus_ids.size());
  }
  gpu::HealthOptions options;
  const std::string library = EnvString(ProcessEnv(), kNvmlLibraryVariable);
  if (!library.empty()) options.nvml_library = library;
  options.bus_ids = bus_ids;
  gpu::HealthReport health = gpu::CheckGpuHealth(thresholds, options);
  part.report = gpu::HealthReportJson(health);
  part.report["thresholds"] = gpu::HealthThresholdsJson(thresholds);
  for (const std::string& line : SplitLines(gpu::HealthSummary(health))) {
    ctx.reporter->Notice("preflight: " + line);
  }
  const bool no_gpu = !health.nvml_available || health.gpus.empty();
  if (no_gpu && job.preflight.on_no_gpu == PreflightNoGpu::kSkip) {
    part.verdict = Verdict::kSkipped;
    part.reason = health.nvml_available ? "no GPU: NVML sees none"
                                        : fmt::format("no GPU: {}", health.nvml_problem.empty()
                                                                        ? "NVML unavailable"
                                                                        : health.nvml_problem);
    return part;
  }
  for (const gpu::CheckResult* failure : health.Failures()) {
    part.failures.push_back(
        {{"check", failure->check}, {"gpu", failure->bus_id}, {"message", failure->message}});
  }
  if (!health.ok()) {
    part.verdict = Verdict::kFailed;
    part.exit_code = kExitPreflightFailed;
    part.reason = health.Failures().front()->message;
    if (health.Failures().size() > 1) {
      part.reason += fmt::format(" (and {} more failed check(s))", health.Failures().size() - 1);
    }
  }
  return part;
}

// The supervisor's words about the check's ranks, as preflight lines in the system
// log: they are not the user's ranks.
class CheckReporter : public Reporter {
 public:
  explicit CheckReporter(Reporter* out) : out_(out) {}
  void PhaseStarted(Phase, double) override {}
  void RankStarted(int rank, int pid) override {
    out_->Info(fmt::format("preflight: NCCL check rank {} started (pid {})", rank, pid));
  }
  void RankExited(int rank, const ExitStatus& status, bool) override {
    out_->Info(fmt::format("preflight: NCCL check rank {} {}", rank, status.HowItEnded()));
  }
  void Transfer(const TransferProgress&) override {}
  void Info(std::string_view m) override { out_->Info(fmt::format("preflight: {}", m)); }
  void Notice(std::string_view m) override { out_->Info(fmt::format("preflight: {}", m)); }
  void Warning(std::string_view m) override { out_->Warning(fmt::format("preflight: {}", m)); }
  void Error(std::string_view m) override { out_->Info(fmt::format("preflight: {}", m)); }

 private:
  Reporter* out_;
};

// The last non-empty line of `path` (a rank's output), or "".
std::string LastLine(const std::string& path) {
  std::ifstream in(path);
  std::string line, last;
  while (std::getline(in, line)) {
    if (!TrimSpace(line).empty()) last = line;
  }
  return EscapeControl(last);
}

// Rank 0's summary line from its JSON lines, or null.
json ReadSummary(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  json summary;
  while (std::getline(in, line)) {
    json j = json::parse(line, nullptr, false);
    if (j.is_object() && j.value("record", "") == "summary") summary = j;
  }
  return summary;
}

PartResult RunNcclCheck(const RunContext& ctx, const LoadedRun& run, const LocalRunLayout& layout,
                        PreparedRun* prepared) {
  const PreflightNcclConfig& nccl = run.job.preflight.nccl;
  PartResult part;
  const std::string program = NcclCheckPath();
  const int world_size = prepared->plan.assignment.world_size;
  const int node_count = static_cast<int>(prepared->plan.assignment.nodes.size());
  part.report = {{"program", program},
                 {"ranks", json::array()},
                 {"worldSize", world_size},
                 {"minBytes", nccl.min_bytes},
                 {"maxBytes", nccl.max_bytes},
                 {"iterations", nccl.iterations},
                 {"warmupIterations", nccl.warmup},
                 {"operations", nccl.operations},
                 {"timeoutSeconds", nccl.timeout_seconds},
                 {"minBusBandwidthGBps", nccl.min_bus_bandwidth_gbps}};
  std::vector<std::string> argv = {program,
                                   "--min-bytes",
                                   std::to_string(nccl.min_bytes),
                                   "--max-bytes",
                                   std::to_string(nccl.max_bytes),
                                   "--iterations",
                                   std::to_string(nccl.iterations),
                                   "--warmup",
                                   std::to_string(nccl.warmup),
                                   "--ops",
                                   fmt::format("{}", fmt::join(nccl.operations, ",")),
                                   "--timeout",
                                   std::to_string(nccl.timeout_seconds)};
  const std::string json_path = layout.system_logs() + "/" + kPreflightJsonName;
  const std::string table_path = layout.system_logs() + "/" + kPreflightTableName;
  std::vector<RankLaunch> launches;
  std::vector<int> fds;
  int first_local_rank = -1;
  for (const RankLaunch& planned : prepared->plan.launches) {
    RankLaunch launch;
    launch.rank = planned.rank;
    launch.spec = planned.spec;  // the ranks' environment, working directory, binding
    launch.spec.argv = argv;
    if (planned.rank == 0) {
      launch.spec.argv.insert(launch.spec.argv.end(),
                              {"--json", json_path, "--table-file", table_path});
    }
    const std::string log = layout.system_logs() + "/" + PreflightRankLogName(planned.rank);
    const int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    launch.spec.stdin_fd = -1;
    launch.spec.stdout_fd = fd;
    launch.spec.stderr_fd = fd;
    if (fd >= 0) fds.push_back(fd);
    if (first_local_rank < 0) first_local_rank = planned.rank;
    launches.push_back(std::move(launch));
  }
  ctx.reporter->Notice(fmt::format(
      "preflight: NCCL check ({}) on {} rank(s) of {} node(s), {} to {}, {} iteration(s), "
      "timeout {} s",
      fmt::join(nccl.operations, ", "), world_size, node_count, Mib(nccl.min_bytes),
      Mib(nccl.max_bytes), nccl.iterations, nccl.timeout_seconds));

  CheckReporter reporter(ctx.reporter);
  SupervisorOptions options;
  options.grace_period = std::chrono::seconds(5);
  options.unkillable_timeout = std::chrono::seconds(10);
  options.max_run_duration = std::chrono::seconds(nccl.timeout_seconds);
  Supervisor supervisor(prepared->processes.get(), &reporter, options);
  ClusterSession* session = ctx.cluster ? ctx.cluster->session() : nullptr;
  if (session != nullptr) {
    // Another node's failure stops this node's check at once (its ranks would wait
    // for the failed node's until the timeout).
    session->SetStopHandler([&supervisor](const StopNotice& stop) {
      supervisor.RequestStop(stop.exit_code, stop.reason);
    });
  }
  const auto started = std::chrono::steady_clock::now();
  SupervisionResult result = supervisor.Run(std::move(launches));
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  if (session != nullptr) session->SetStopHandler({});
  for (int fd : fds) close(fd);
  part.report["seconds"] = seconds;

  const NodeBinding& binding = *prepared->binding;
  std::optional<std::pair<const RankResult*, int>> no_gpu, failed;  // rank, local rank
  for (size_t i = 0; i < result.ranks.size(); ++i) {
    const RankResult& r = result.ranks[i];
    const std::string log = fmt::format("{}/{}", kSystemLogsDir, PreflightRankLogName(r.rank));
    part.report["ranks"].push_back({{"rank", r.rank},
                                    {"gpu", RankGpus(binding, static_cast<int>(i))},
                                    {"exitCode", r.status.ToExitCode()},
                                    {"signal", r.status.signal},
                                    {"seconds", r.seconds},
                                    {"log", log}});
    if (r.status.ToExitCode() == kNcclCheckNoGpu && !no_gpu) no_gpu = {{&r, static_cast<int>(i)}};
    if (r.status.ToExitCode() != 0 && !failed && !r.stopped_by_trainrun) {
      failed = {{&r, static_cast<int>(i)}};
    }
  }
  auto rank_name = [&](const std::pair<const RankResult*, int>& r) {
    const std::string gpus = RankGpus(binding, r.second);
    return gpus.empty() ? fmt::format("nccl: rank {}", r.first->rank)
                        : fmt::format("{}: nccl: rank {}", gpus, r.first->rank);
  };
  auto fail = [&](std::string gpu, std::string message) {
    part.verdict = Verdict::kFailed;
    part.exit_code = kExitPreflightFailed;
    part.reason = message;
    part.failures.push_back({{"check", "nccl"}, {"gpu", gpu}, {"message", message}});
  };
  if (result.outcome == RunOutcome::kCanceled) {
    part.verdict = Verdict::kCanceled;
    part.exit_code = kExitCanceled;
    part.reason = fmt::format("NCCL check canceled: {}", result.stop_reason);
  } else if (result.outcome == RunOutcome::kTimedOut) {
    fail("", fmt::format("nccl: the NCCL check did not finish within timeoutSeconds {} s; see "
                         "{}/preflight_nccl_rank_*.txt",
                         nccl.timeout_seconds, kSystemLogsDir));
  } else if (no_gpu && run.job.preflight.on_no_gpu == PreflightNoGpu::kSkip) {
    part.verdict = Verdict::kSkipped;
    part.reason = fmt::format("no GPU: {}", LastLine(layout.system_logs() + "/" +
                                                     PreflightRankLogName(no_gpu->first->rank)));
  } else if (failed) {
    const int code = failed->first->status.ToExitCode();
    const std::string what =
        code == kNcclCheckNoGpu ? "found no GPU"
        : code == 1             ? "got wrong results"
        : code == 127           ? fmt::format(
                                      "could not start {} (not found or not executable: it is built with "
                                                "the CUDA toolkit and NCCL and installed beside trainrun, or named by "
                                                "{})",
                                      program, kNcclCheckVariable)
                      : failed->first->status.HowItEnded();
    const std::string gpus = RankGpus(binding, failed->second);
    fail(gpus.empty() ? "" : gpus.substr(4),
         fmt::format(
             "{} of the NCCL check {} (exit {}): {}", rank_name(*failed), what, code,
             LastLine(layout.system_logs() + "/" + PreflightRankLogName(failed->first->rank))));
  } else if (result.outcome != RunOutcome::kSucceeded) {
    // Stopped by the job's stop: the head's verdict says why.
    part.verdict = Verdict::kStopped;
    part.exit_code = result.exit_code != 0 ? result.exit_code : kExitPreflightFailed;
    part.reason = fmt::format("nccl: the NCCL check was stopped: {}", result.stop_reason);
  }
  if (part.verdict != Verdict::kPassed || first_local_rank != 0) return part;

  // Rank 0 is here: the job's figures, and the bandwidth floor.
  json summary = ReadSummary(json_path);
  if (!summary.is_object()) {
    fail("", fmt::format("nccl: rank 0 of the NCCL check wrote no summary to {}", json_path));
    return part;
  }
  part.report["summary"] = summary;
  part.report["table"] = fmt::format("{}/{}", kSystemLogsDir, kPreflightTableName);
  std::vector<std::string> figures;
  const double floor = nccl.min_bus_bandwidth_gbps;
  json ops =
      summary.contains("ops") && summary["ops"].is_object() ? summary["ops"] : json::object();
  for (auto it = ops.begin(); it != ops.end(); ++it) {
    if (!it.value().is_object()) continue;
    const json& op = it.value();
    const double busbw = op.contains("peak_busbw_gbps") && op["peak_busbw_gbps"].is_number()
                             ? op["peak_busbw_gbps"].get<double>()
                             : 0.0;
    const uint64_t peak_bytes = op.contains("peak_bytes") && op["peak_bytes"].is_number_unsigned()
                                    ? op["peak_bytes"].get<uint64_t>()
                                    : 0;
    figures.push_back(
        fmt::format("{} peak busbw {:.2f} GB/s at {}", it.key(), busbw, Mib(peak_bytes)));
    if (floor > 0 && world_size > 1 && busbw < floor && part.verdict == Verdict::kPassed) {
      fail("", fmt::format("nccl: {} peak bus bandwidth {:.2f} GB/s over {} rank(s) on {} node(s) "
                           "is below minBusBandwidthGBps {}",
                           it.key(), busbw, world_size, node_count, floor));
    }
  }
  if (floor > 0 && world_size == 1) {
    ctx.reporter->Warning(
        "preflight: minBusBandwidthGBps is not checked with one rank (bus bandwidth is 0 when "
        "nothing moves between GPUs)");
  }
  const uint64_t wrong = summary.contains("wrong") && summary["wrong"].is_number_unsigned()
                             ? summary["wrong"].get<uint64_t>()
                             : 0;
  ctx.reporter->Notice(fmt::format("preflight: NCCL check: {}; {} wrong; {:.1f} s",
                                   fmt::join(figures, ", "), wrong, seconds));
  return part;
}

json SettingsJson(const JobConfig& job) {
  const PreflightConfig& p = job.preflight;
  return {{"health", p.health},
          {"nccl", p.nccl.enabled},
          {"onNoGpu", p.on_no_gpu == PreflightNoGpu::kSkip ? "skip" : "fail"}};
}

}  // namespace

std::string PreflightRankLogName(int rank) {
  return fmt::format("preflight_nccl_rank_{}.txt", rank);
}

std::string NcclCheckPath() {
  const std::string given = EnvString(ProcessEnv(), kNcclCheckVariable);
  if (!given.empty()) return given;
  std::error_code ec;
  const std::filesystem::path self = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) return kNcclCheckProgram;  // then looked up in PATH
  return (self.parent_path() / kNcclCheckProgram).string();
}

Status ValidatePreflight(const JobConfig& job) {
  if (job.preflight.health_thresholds_json.empty()) return Status::Ok();
  json object = json::parse(job.preflight.health_thresholds_json, nullptr, false);
  Result<gpu::HealthThresholds> parsed = gpu::ParseHealthThresholds(object, "/preflight/health");
  if (parsed.ok()) return Status::Ok();
  std::string message;
  for (const std::string& line : SplitLines(parsed.status().message())) {
    if (!message.empty()) message += "\n";
    message += fmt::format("{}: {}", job.file, line);
  }
  return InvalidJobError(message);
}

std::optional<PreflightStop> PreflightJob(const RunContext& ctx, const LoadedRun& run,
                                          const LocalRunLayout& layout, PreparedRun* prepared) {
  const JobConfig& job = run.job;
  const int node_rank = run.node_rank();
  const std::string node = NodeName(node_rank);
  const auto started = std::chrono::steady_clock::now();
  std::vector<std::string> parts;
  if (job.preflight.health) parts.push_back("GPU health");
  if (job.preflight.nccl.enabled) parts.push_back("NCCL check");
  ctx.reporter->Notice(fmt::format(
      "preflight on {}: {}", node,
      parts.empty() ? "nothing to check" : fmt::format("{}", fmt::join(parts, ", then "))));

  json report = {{"nodeRank", node_rank}, {"host", LocalHostName()}};
  PartResult health, nccl;
  if (job.preflight.health) {
    health = RunHealth(ctx, job, *prepared->binding);
    report["health"] = health.report;
    report["health"]["result"] = VerdictName(health.verdict);
  }
  // Another node failed already: its check would only wait for this one's.
  const bool job_stopped = ctx.cluster && ctx.cluster->session()->stop().has_value();
  if (job.preflight.nccl.enabled) {
    if (health.verdict == Verdict::kPassed && !job_stopped) {
      // Rank 0 of the check binds MASTER_PORT for NCCL's id exchange, as the
      // user's rank 0 will after it.
      prepared->plan.master_port_hold.Release();
      if (ctx.cluster) ctx.cluster->session()->ReleaseMasterPort();
      nccl = RunNcclCheck(ctx, run, layout, prepared);
      report["nccl"] = nccl.report;
      report["nccl"]["result"] = VerdictName(nccl.verdict);
    } else {
      report["nccl"] = {
          {"result", "not run"},
          {"why", job_stopped ? "the job stopped"
                              : fmt::format("GPU health {}", VerdictName(health.verdict))}};
    }
  }
  PartResult* decided = nullptr;
  for (PartResult* part : {&health, &nccl}) {
    if (decided == nullptr && part->verdict != Verdict::kPassed) decided = part;
  }
  const Verdict verdict = decided ? decided->verdict : Verdict::kPassed;
  json failures = json::array();
  for (const json& f : health.failures) failures.push_back(f);
  for (const json& f : nccl.failures) failures.push_back(f);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  report["result"] = VerdictName(verdict);
  report["failures"] = failures;
  report["seconds"] = seconds;
  if (decided) report["reason"] = decided->reason;

  PreflightResult mine;
  mine.passed = verdict == Verdict::kPassed || verdict == Verdict::kSkipped;
  mine.exit_code = mine.passed ? 0 : decided->exit_code;
  mine.reason = mine.passed ? "" : "preflight: " + decided->reason;
  mine.report = report;
  if (verdict == Verdict::kSkipped) {
    ctx.reporter->Warning(
        fmt::format("preflight skipped on {} (onNoGpu \"skip\"): {}", node, decided->reason));
  } else if (verdict == Verdict::kFailed) {
    ctx.reporter->Error(fmt::format("preflight failed on {}: {}", node, decided->reason));
  }

  std::vector<json> reports;
  std::optional<StopNotice> stop;
  if (ctx.cluster) {
    stop = ctx.cluster->session()->GatherPreflight(mine, &reports);
  } else {
    reports.push_back(report);
    if (!mine.passed) stop = StopNotice{mine.exit_code, fmt::format("{}: {}", node, mine.reason)};
  }
  bool skipped = false;
  for (const json& r : reports) skipped = skipped || r.value("result", "") == "skipped";
  RunRecord& record = ctx.journal->record();
  json details = {{"result", stop      ? "failed"
                             : skipped ? "skipped"
                                       : "passed"},
                  {"settings", SettingsJson(job)},
                  {"nodes", reports}};
  if (stop) details["failure"] = stop->reason;
  record.details["preflight"] = details;
  if (!stop) {
    ctx.reporter->Notice(
        skipped
            ? fmt::format("preflight skipped on {} node(s) in {:.1f} s: a node has no GPU and "
                          "\"onNoGpu\" is \"skip\", so the job goes on",
                          reports.size(), seconds)
            : fmt::format("preflight passed on {} node(s) in {:.1f} s", reports.size(), seconds));
    return std::nullopt;
  }
  PreflightStop out;
  out.exit_code = stop->exit_code;
  out.reason = stop->reason;
  out.canceled = stop->exit_code == kExitCanceled;
  out.outcome = stop->exit_code == kExitPreflightFailed ? "preflight failed"
                : out.canceled                          ? "canceled"
                                                        : "stopped";
  if (stop->exit_code == kExitPreflightFailed && verdict == Verdict::kFailed) {
    FailureRecord failure;
    failure.rank = -1;
    failure.node_rank = node_rank;
    failure.host = LocalHostName();
    failure.exit_code = kExitPreflightFailed;
    failure.reason = mine.reason;
    record.failure = failure;
  }
  if (verdict == Verdict::kFailed) {
    ctx.reporter->Error(
        fmt::format("the user's script was not started (exit {})", stop->exit_code));
  } else {
    ctx.reporter->Error(fmt::format("the user's script was not started: {} (exit {})", stop->reason,
                                    stop->exit_code));
  }
  return out;
}

}  // namespace trainrun
