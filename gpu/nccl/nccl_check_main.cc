// trainrun-nccl-check: runs NCCL's all_reduce, all_gather and reduce_scatter over a
// range of sizes on every rank of a job, checks every result and reports algorithm and
// bus bandwidth (see gpu/nccl/bandwidth.h for the formulas, report.h for the output).
//
// A rank is started like any trainrun rank: RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR,
// MASTER_PORT and CUDA_VISIBLE_DEVICES from the launcher (a lone process without them
// is rank 0 of 1). Rank 0 hands NCCL's unique id to the others over TCP at
// MASTER_ADDR:MASTER_PORT (unique_id_exchange.h); no MPI is needed. Only rank 0
// reports. Exit codes (README.md):
//   0  every result was right        1  some result was wrong
//   3  no GPU (the reason on stderr) 4  CUDA, NCCL or the id exchange failed
//   64 usage error
#include <cstdio>
#include <fstream>
#include <iostream>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "base/env.h"
#include "gpu/nccl/bandwidth.h"
#include "gpu/nccl/collective_runner.h"
#include "gpu/nccl/report.h"
#include "gpu/nccl/unique_id_exchange.h"

namespace {

using namespace trainrun;
using namespace trainrun::nccl;

constexpr int kExitOk = 0;
constexpr int kExitWrong = 1;
constexpr int kExitNoGpu = 3;
constexpr int kExitFailed = 4;
constexpr int kExitUsage = 64;

constexpr const char* kDefaultMinBytes = "8";
constexpr const char* kDefaultMaxBytes = "1G";
constexpr int kDefaultIterations = 20;
constexpr int kDefaultWarmup = 5;
constexpr int kDefaultTimeoutSeconds = 120;

struct Flags {
  std::string min_bytes = kDefaultMinBytes;
  std::string max_bytes = kDefaultMaxBytes;
  int iterations = kDefaultIterations;
  int warmup = kDefaultWarmup;
  std::vector<std::string> ops = {"all_reduce", "all_gather", "reduce_scatter"};
  bool table = false;
  std::string json_file;
  std::string table_file;
  int timeout_seconds = kDefaultTimeoutSeconds;
};

struct RankEnv {
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;
  std::string master_addr = "127.0.0.1";
  int master_port = 0;
};

// An integer variable; `fallback` when unset. Errors name the variable.
Result<int> IntVariable(const EnvLookup& env, const char* name, int fallback) {
  std::string text = EnvString(env, name);
  if (text.empty()) return fallback;
  size_t used = 0;
  int value = 0;
  try {
    value = std::stoi(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != text.size() || value < 0) {
    return InvalidArgumentError(fmt::format("{}=\"{}\" is not a non-negative integer", name, text));
  }
  return value;
}

Result<RankEnv> ReadRankEnv(const EnvLookup& env) {
  RankEnv r;
  TR_ASSIGN_OR_RETURN(r.rank, IntVariable(env, "RANK", 0));
  TR_ASSIGN_OR_RETURN(r.world_size, IntVariable(env, "WORLD_SIZE", 1));
  TR_ASSIGN_OR_RETURN(r.local_rank, IntVariable(env, "LOCAL_RANK", r.rank));
  TR_ASSIGN_OR_RETURN(r.master_port, IntVariable(env, "MASTER_PORT", 0));
  if (std::string addr = EnvString(env, "MASTER_ADDR"); !addr.empty()) r.master_addr = addr;
  if (r.world_size < 1 || r.rank >= r.world_size) {
    return InvalidArgumentError(
        fmt::format("RANK={} is not a rank of WORLD_SIZE={}", r.rank, r.world_size));
  }
  if (r.world_size > 1 && (r.master_port <= 0 || r.master_port > 65535)) {
    return InvalidArgumentError("MASTER_PORT must name a TCP port when WORLD_SIZE is more than 1");
  }
  return r;
}

bool WriteFile(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::trunc);
  out << text;
  return static_cast<bool>(out.flush());
}

}  // namespace

int main(int argc, char** argv) {
  Flags flags;
  CLI::App app{"trainrun-nccl-check: NCCL collectives on every rank, checked and timed"};
  app.add_option("-b,--min-bytes", flags.min_bytes, "smallest size (B; K, M, G allowed)")
      ->capture_default_str();
  app.add_option("-e,--max-bytes", flags.max_bytes, "largest size; sizes double from the smallest")
      ->capture_default_str();
  app.add_option("-n,--iterations", flags.iterations, "timed runs per size")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("-w,--warmup", flags.warmup, "untimed runs per size after the checked one")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app.add_option("--ops", flags.ops, "collectives to run")
      ->delimiter(',')
      ->capture_default_str()
      ->check(CLI::IsMember({"all_reduce", "all_gather", "reduce_scatter"}));
  app.add_flag("--table", flags.table, "print the nccl-tests-style table on stdout, not JSON");
  app.add_option("--json", flags.json_file, "also write the JSON lines to this file");
  app.add_option("--table-file", flags.table_file, "also write the table to this file");
  app.add_option("--timeout", flags.timeout_seconds,
                 "seconds the ranks wait for each other to exchange NCCL's unique id")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int code = app.exit(e);
    return code == 0 ? kExitOk : kExitUsage;
  }
  const std::optional<size_t> min_bytes = ParseByteSize(flags.min_bytes);
  const std::optional<size_t> max_bytes = ParseByteSize(flags.max_bytes);
  if (!min_bytes || !max_bytes || *min_bytes > *max_bytes) {
    fmt::print(stderr,
               "trainrun-nccl-check: --min-bytes {} and --max-bytes {}: need sizes "
               "such as 8, 64K, 1G with the smallest first\n",
               flags.min_bytes, flags.max_bytes);
    return kExitUsage;
  }
  Result<RankEnv> env = ReadRankEnv(ProcessEnv());
  if (!env.ok()) {
    fmt::print(stderr, "trainrun-nccl-check: {}\n", env.status().message());
    return kExitUsage;
  }
  const std::string me = fmt::format("trainrun-nccl-check: rank {}", env->rank);

  Result<int> gpus = VisibleGpuCount();
  if (!gpus.ok()) {
    fmt::print(stderr, "{}: no GPU to run on: {} (CUDA_VISIBLE_DEVICES=\"{}\"); exit {}\n", me,
               gpus.status().message(), EnvString(ProcessEnv(), "CUDA_VISIBLE_DEVICES"),
               kExitNoGpu);
    return kExitNoGpu;
  }
  // With binding, CUDA_VISIBLE_DEVICES leaves each rank its own GPU as device 0;
  // without, every rank sees them all and takes the one of its local rank.
  const int device = *gpus == 1 ? 0 : env->local_rank;
  if (device >= *gpus) {
    fmt::print(stderr, "{}: LOCAL_RANK {} but this process sees only {} GPUs\n", me,
               env->local_rank, *gpus);
    return kExitFailed;
  }

  ExchangeOptions exchange{.master_addr = env->master_addr,
                           .master_port = env->master_port,
                           .rank = env->rank,
                           .world_size = env->world_size,
                           .timeout = std::chrono::seconds(flags.timeout_seconds)};
  Result<std::string> id = ExchangeUniqueId(exchange, MakeUniqueId);
  if (!id.ok()) {
    fmt::print(stderr, "{}: NCCL unique id: {}\n", me, id.status().message());
    return kExitFailed;
  }
  auto runner = CollectiveRunner::Create(env->rank, env->world_size, device, *id, *max_bytes);
  if (!runner.ok()) {
    fmt::print(stderr, "{}: {}\n", me, runner.status().message());
    return kExitFailed;
  }
  Result<std::vector<std::string>> devices = (*runner)->DescribeDevices();
  if (!devices.ok()) {
    fmt::print(stderr, "{}: {}\n", me, devices.status().message());
    return kExitFailed;
  }

  const bool report = env->rank == 0;
  std::ofstream json_file;
  if (report && !flags.json_file.empty()) {
    json_file.open(flags.json_file, std::ios::trunc);
    if (!json_file) {
      fmt::print(stderr, "{}: cannot write {}\n", me, flags.json_file);
      return kExitUsage;
    }
  }
  auto emit_json = [&](const nlohmann::json& j) {
    if (!report) return;
    if (!flags.table) std::cout << j.dump() << std::endl;
    if (json_file.is_open()) json_file << j.dump() << std::endl;
  };

  std::vector<Measurement> measurements;
  for (const std::string& name : flags.ops) {
    const Collective op = *ParseCollective(name);
    for (size_t bytes : SizeLadder(*min_bytes, *max_bytes)) {
      Result<Measurement> m = (*runner)->Run(op, bytes, flags.iterations, flags.warmup);
      if (!m.ok()) {
        fmt::print(stderr, "{}: {}\n", me, m.status().message());
        return kExitFailed;
      }
      if (m->shape.count == 0) continue;  // too small to split over the ranks
      emit_json(MeasurementJson(*m));
      measurements.push_back(*m);
    }
  }
  const nlohmann::json summary = SummaryJson(env->world_size, measurements);
  emit_json(summary);
  if (report) {
    std::vector<std::string> metadata = {
        fmt::format("trainrun-nccl-check: {} rank(s), {}", env->world_size, VersionLine()),
        fmt::format("{} timed iterations after {} warmup, float, sizes {} .. {} B",
                    flags.iterations, flags.warmup, *min_bytes, *max_bytes)};
    metadata.insert(metadata.end(), devices->begin(), devices->end());
    const std::string table = FormatTable(metadata, measurements);
    if (flags.table) std::cout << table << std::flush;
    if (!flags.table_file.empty() && !WriteFile(flags.table_file, table)) {
      fmt::print(stderr, "{}: cannot write {}\n", me, flags.table_file);
      return kExitUsage;
    }
  }
  if (summary["wrong"].get<uint64_t>() > 0) {
    fmt::print(stderr, "{}: {} wrong element(s); see the #wrong column\n", me,
               summary["wrong"].get<uint64_t>());
    return kExitWrong;
  }
  return kExitOk;
}
