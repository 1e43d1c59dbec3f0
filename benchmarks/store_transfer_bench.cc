// Upload and download throughput of trainrun's object stores beside `rclone copy`,
// against the same loopback servers (Azurite for az://, s3rver for s3://) started
// from <repo>/.deps: one large file, and many small files. Prints a table: median
// and p99 seconds over repetitions, MB/s at the median, and rclone's time over
// trainrun's (above 1: trainrun is faster), and for uploads the bytes each tool read
// from local files per byte uploaded (/proc/PID/io rchar: 1.00 means every byte was
// read once). Never fails for being slow.
//
//   store_transfer_bench [--reps N] [--large-mb N] [--small-files N] [--small-kb N]
//                        [--json FILE]
//
// Both tools move the same bytes with 8 transfers at once (rclone --transfers 8;
// its per-file chunking and concurrency are rclone's defaults) and verify MD5s the
// same way. Each repetition uses fresh keys and fresh local folders, so nothing is
// skipped as "already there".
#include <fcntl.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <random>
#include <thread>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "runtime/process/process_posix.h"
#include "runtime/run/fuse_mount.h"
#include "runtime/run/history.h"
#include "runtime/store/azure_auth.h"
#include "runtime/store/store_factory.h"
#include "tests/stores/store_server.h"

namespace trainrun {
namespace {

namespace fs = std::filesystem;
using testing::ServerKind;
using testing::StoreServer;

struct Options {
  int reps = 5;
  uint64_t large_mb = 256;
  int small_files = 1000;
  uint64_t small_kb = 16;
  std::string json_path;
};

void WriteRandom(const std::string& path, uint64_t size, uint64_t seed) {
  fs::create_directories(fs::path(path).parent_path());
  std::mt19937_64 rng(seed);
  std::vector<uint64_t> block(1 << 16);
  std::ofstream out(path, std::ios::binary);
  uint64_t done = 0;
  while (done < size) {
    for (uint64_t& w : block) w = rng();
    uint64_t n = std::min<uint64_t>(block.size() * 8, size - done);
    out.write(reinterpret_cast<const char*>(block.data()), static_cast<std::streamsize>(n));
    done += n;
  }
}

double Seconds(const std::function<bool()>& fn, bool* ok) {
  auto start = std::chrono::steady_clock::now();
  *ok = fn() && *ok;
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// rchar (bytes passed to read() and pread(), sockets' recv not included) of a
// process, "self" or a pid; 0 when unreadable.
uint64_t BytesRead(const std::string& pid) {
  std::ifstream in("/proc/" + pid + "/io");
  std::string name;
  uint64_t value = 0;
  while (in >> name >> value) {
    if (name == "rchar:") return value;
  }
  return 0;
}

// Runs rclone with its configuration in the environment; true on exit 0. What it
// read goes to *read when not null (taken while it is a zombie, before reaping).
bool Rclone(const std::vector<std::string>& args, const std::map<std::string, std::string>& config,
            uint64_t* read = nullptr) {
  std::vector<std::string> argv = {FindOnPath("rclone")};
  argv.insert(argv.end(), args.begin(), args.end());
  pid_t pid = fork();
  if (pid == 0) {
    for (const auto& [k, v] : config) setenv(k.c_str(), v.c_str(), 1);
    unsetenv("AWS_CA_BUNDLE");
    int null = open("/dev/null", O_WRONLY);
    dup2(null, 1);
    std::vector<char*> a;
    for (std::string& s : argv) a.push_back(s.data());
    a.push_back(nullptr);
    execv(a[0], a.data());
    _exit(127);
  }
  siginfo_t info{};
  waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOWAIT);
  if (read != nullptr) *read = BytesRead(std::to_string(pid));
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

struct Sample {
  std::vector<double> seconds;
  double Median() const {
    std::vector<double> s = seconds;
    std::sort(s.begin(), s.end());
    return s.empty() ? 0 : s[s.size() / 2];
  }
  double P99() const {
    std::vector<double> s = seconds;
    std::sort(s.begin(), s.end());
    return s.empty() ? 0
                     : s[std::min(s.size() - 1,
                                  static_cast<size_t>(0.99 * static_cast<double>(s.size())))];
  }
};

struct Row {
  std::string server, workload, direction;
  uint64_t bytes = 0;
  Sample ours, rclone;
  uint64_t ours_read = 0, rclone_read = 0;  // from local files, all repetitions (uploads)
  bool ok = true;
};

std::vector<TransferItem> Items(const std::string& dir, const std::string& prefix) {
  std::vector<TransferItem> items;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    if (!e.is_regular_file()) continue;
    items.push_back({e.path().string(), prefix + fs::relative(e.path(), dir).generic_string(),
                     static_cast<uint64_t>(e.file_size())});
  }
  return items;
}

bool DownloadAll(Store* store, const std::vector<ObjectInfo>& objects, const std::string& prefix,
                 const std::string& dest) {
  std::atomic<size_t> next{0};
  std::atomic<bool> ok{true};
  std::vector<std::thread> pool;
  for (int t = 0; t < 8; ++t) {
    pool.emplace_back([&] {
      for (size_t i = next++; i < objects.size(); i = next++) {
        if (!store->GetListedFile(objects[i], dest + "/" + objects[i].key.substr(prefix.size()))
                 .ok())
          ok = false;
      }
    });
  }
  for (std::thread& t : pool) t.join();
  return ok;
}

std::vector<Row> BenchServer(ServerKind kind, const Options& o, const std::string& work) {
  std::vector<Row> rows;
  StoreServer server(kind);
  std::string error = server.Start();
  if (!error.empty()) {
    std::cerr << "# skipped " << testing::ServerName(kind) << ": " << error << "\n";
    return rows;
  }
  std::string root;
  Status created = server.CreateRoot("bench", &root);
  if (!created.ok()) {
    std::cerr << "# skipped: " << created.message() << "\n";
    return rows;
  }
  auto opened = OpenStore(root, server.Lookup());
  if (!opened.ok()) return rows;
  Store* store = opened->get();

  // rclone's remote "bench:" for the same server.
  std::map<std::string, std::string> config;
  std::string remote = "bench:bench";
  if (kind == ServerKind::kAzurite) {
    Result<std::string> sas =
        ContainerSas("devstoreaccount1", testing::kAzuriteKeyForTests, "bench", "racwdl",
                     SystemClock()->WallNow() + std::chrono::hours(2), true);
    config["RCLONE_CONFIG_BENCH_TYPE"] = "azureblob";
    config["RCLONE_CONFIG_BENCH_SAS_URL"] = server.endpoint() + "/devstoreaccount1/bench?" + *sas;
  } else {
    config = {{"RCLONE_CONFIG_BENCH_TYPE", "s3"},
              {"RCLONE_CONFIG_BENCH_PROVIDER", "Other"},
              {"RCLONE_CONFIG_BENCH_ENDPOINT", server.endpoint()},
              {"RCLONE_CONFIG_BENCH_ACCESS_KEY_ID", testing::kS3rverKey},
              {"RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY", testing::kS3rverKey},
              {"RCLONE_CONFIG_BENCH_FORCE_PATH_STYLE", "true"},
              {"RCLONE_CONFIG_BENCH_REGION", "us-east-1"}};
  }
  const std::vector<std::string> flags = {"--transfers", "8",         "--checkers", "8",
                                          "--config",    "/dev/null", "-q"};

  struct Workload {
    std::string name, dir;
  };
  std::vector<Workload> workloads = {
      {fmt::format("1 x {} MB", o.large_mb), work + "/large"},
      {fmt::format("{} x {} kB", o.small_files, o.small_kb), work + "/small"}};
  for (const Workload& w : workloads) {
    Row up, down;
    up.server = down.server = testing::ServerName(kind);
    up.workload = down.workload = w.name;
    up.direction = "upload";
    down.direction = "download";
    for (const auto& e : fs::recursive_directory_iterator(w.dir)) {
      if (e.is_regular_file()) up.bytes += e.file_size();
    }
    down.bytes = up.bytes;
    for (int rep = 0; rep < o.reps; ++rep) {
      const std::string ours = fmt::format("t-{}-{}/", fs::path(w.dir).filename().string(), rep);
      const std::string theirs = fmt::format("r-{}-{}", fs::path(w.dir).filename().string(), rep);
      std::vector<TransferItem> items = Items(w.dir, ours);
      const uint64_t before = BytesRead("self");
      up.ours.seconds.push_back(Seconds(
          [&] { return UploadItems(store, items, kDefaultUploadParallelism, {}).errors.empty(); },
          &up.ok));
      up.ours_read += BytesRead("self") - before;
      uint64_t rclone_read = 0;
      up.rclone.seconds.push_back(Seconds(
          [&] {
            std::vector<std::string> args = {"copy", w.dir, remote + "/" + theirs};
            args.insert(args.end(), flags.begin(), flags.end());
            return Rclone(args, config, &rclone_read);
          },
          &up.ok));
      up.rclone_read += rclone_read;
      Result<std::vector<ObjectInfo>> listed = store->List(ours);
      if (!listed.ok()) {
        up.ok = false;
        continue;
      }
      const std::string dest = fmt::format("{}/down-{}", work, rep);
      down.ours.seconds.push_back(
          Seconds([&] { return DownloadAll(store, *listed, ours, dest + "/t"); }, &down.ok));
      down.rclone.seconds.push_back(Seconds(
          [&] {
            std::vector<std::string> args = {"copy", remote + "/" + theirs, dest + "/r"};
            args.insert(args.end(), flags.begin(), flags.end());
            return Rclone(args, config);
          },
          &down.ok));
      std::error_code ec;
      fs::remove_all(dest, ec);
    }
    rows.push_back(up);
    rows.push_back(down);
  }
  return rows;
}

}  // namespace
}  // namespace trainrun

int main(int argc, char** argv) {
  using namespace trainrun;
  Options o;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string flag = argv[i];
    if (flag == "--reps")
      o.reps = std::max(1, std::atoi(argv[i + 1]));
    else if (flag == "--large-mb")
      o.large_mb = std::strtoull(argv[i + 1], nullptr, 10);
    else if (flag == "--small-files")
      o.small_files = std::atoi(argv[i + 1]);
    else if (flag == "--small-kb")
      o.small_kb = std::strtoull(argv[i + 1], nullptr, 10);
    else if (flag == "--json")
      o.json_path = argv[i + 1];
    else {
      std::cerr << "usage: store_transfer_bench [--reps N] [--large-mb N] [--small-files N] "
                   "[--small-kb N] [--json FILE]\n";
      return 64;
    }
  }
  if (FindOnPath("rclone").empty()) {
    std::cerr << "# rclone is not installed (apt-get install rclone): nothing to compare with\n";
    return 0;
  }
  std::string pattern = (fs::temp_directory_path() / "trainrun-bench-XXXXXX").string();
  std::string work = mkdtemp(pattern.data());
  WriteRandom(work + "/large/large.bin", o.large_mb * 1000 * 1000, 1);
  for (int i = 0; i < o.small_files; ++i) {
    WriteRandom(fmt::format("{}/small/d{}/f{}.bin", work, i % 10, i), o.small_kb * 1000,
                static_cast<uint64_t>(i) + 2);
  }
  utsname host{};
  uname(&host);
  std::cout << fmt::format(
      "# trainrun store transfer benchmark: {} repetitions, 8 transfers at once\n", o.reps);
  std::cout << fmt::format("# host {} ({} {}), {} CPU(s); servers on 127.0.0.1 from .deps; {}\n",
                           host.nodename, host.sysname, host.release,
                           std::thread::hardware_concurrency(),
                           FormatIso8601(SystemClock()->WallNow()));
  std::cout << "# ratio = rclone median / trainrun median (above 1: trainrun is faster)\n";
  std::cout << "# read/B = bytes read from local files per byte uploaded (/proc/PID/io rchar)\n";
  std::vector<Row> rows;
  for (ServerKind kind : {ServerKind::kAzurite, ServerKind::kS3rver}) {
    for (Row& r : BenchServer(kind, o, work)) rows.push_back(std::move(r));
  }
  std::cout << fmt::format(
      "{:<8} {:<14} {:<9} {:>10} {:>10} {:>9} {:>10} {:>10} {:>9} {:>6} {:>8} {:>8}\n", "server",
      "workload", "direction", "ours p50 s", "ours p99 s", "ours MB/s", "rclone p50", "rclone p99",
      "rcl MB/s", "ratio", "ours r/B", "rcl r/B");
  nlohmann::json out = nlohmann::json::array();
  for (const Row& r : rows) {
    double mb = static_cast<double>(r.bytes) / 1e6;
    double ours = r.ours.Median(), theirs = r.rclone.Median();
    // Per byte uploaded, over every repetition.
    const double moved = static_cast<double>(r.bytes) * static_cast<double>(r.ours.seconds.size());
    auto per_byte = [&](uint64_t read) {
      return r.direction != "upload" || moved == 0
                 ? std::string("-")
                 : fmt::format("{:.2f}", static_cast<double>(read) / moved);
    };
    std::cout << fmt::format(
        "{:<8} {:<14} {:<9} {:>10.2f} {:>10.2f} {:>9.1f} {:>10.2f} {:>10.2f} {:>9.1f} {:>6.2f} "
        "{:>8} {:>8}{}\n",
        r.server, r.workload, r.direction, ours, r.ours.P99(), ours > 0 ? mb / ours : 0, theirs,
        r.rclone.P99(), theirs > 0 ? mb / theirs : 0, ours > 0 ? theirs / ours : 0,
        per_byte(r.ours_read), per_byte(r.rclone_read), r.ok ? "" : "  (errors)");
    out.push_back({{"server", r.server},
                   {"workload", r.workload},
                   {"direction", r.direction},
                   {"bytes", r.bytes},
                   {"oursSeconds", r.ours.seconds},
                   {"rcloneSeconds", r.rclone.seconds},
                   {"oursBytesRead", r.ours_read},
                   {"rcloneBytesRead", r.rclone_read},
                   {"ok", r.ok}});
  }
  if (!o.json_path.empty()) std::ofstream(o.json_path) << out.dump(2) << "\n";
  std::error_code ec;
  fs::remove_all(work, ec);
  return 0;
}
