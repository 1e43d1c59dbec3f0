#include "runtime/run/fuse_mount.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/mount.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <fstream>
#include <map>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "base/fs_util.h"
#include "base/redact.h"
#include "base/text.h"
#include "runtime/process/process_posix.h"
#include "runtime/store/azure_blob_store.h"
#include "runtime/store/s3_store.h"

extern char** environ;

namespace trainrun {
namespace {

namespace fs = std::filesystem;

// "\040" and friends in mountinfo paths.
std::string UnescapeMountPath(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size()) {
      out += static_cast<char>(std::stoi(s.substr(i + 1, 3), nullptr, 8));
      i += 3;
    } else {
      out += s[i];
    }
  }
  return out;
}

// The rclone remote ("trainrun:path") and its configuration variables.
Result<std::pair<std::string, std::map<std::string, std::string>>> RcloneRemote(
    const std::string& uri, const EnvLookup& env) {
  std::map<std::string, std::string> config;
  const std::string p = "RCLONE_CONFIG_TRAINRUN_";
  if (uri.rfind("s3://", 0) == 0) {
    TR_ASSIGN_OR_RETURN(S3Location loc, ParseS3Uri(uri));
    S3Config s3 = S3ConfigFromEnv(env);
    config[p + "TYPE"] = "s3";
    config[p + "PROVIDER"] = s3.endpoint.empty() ? "AWS" : "Other";
    config[p + "ENV_AUTH"] = "false";
    config[p + "REGION"] = s3.region;
    if (!s3.endpoint.empty()) {
      config[p + "ENDPOINT"] = s3.endpoint;
      config[p + "FORCE_PATH_STYLE"] = "true";
    }
    if (!s3.credentials.access_key_id.empty()) {
      config[p + "ACCESS_KEY_ID"] = s3.credentials.access_key_id;
      config[p + "SECRET_ACCESS_KEY"] = s3.credentials.secret_access_key;
      if (!s3.credentials.session_token.empty())
        config[p + "SESSION_TOKEN"] = s3.credentials.session_token;
    }
    std::string path = loc.bucket + (loc.prefix.empty() ? "" : "/" + loc.prefix);
    return std::make_pair("trainrun:" + path, config);
  }
  TR_ASSIGN_OR_RETURN(AzureBlobLocation loc, ParseAzureUri(uri));
  TR_ASSIGN_OR_RETURN(AzureCredentials creds, AzureCredentialsFor(loc.account, env));
  std::string sas = creds.sas;
  if (!creds.account_key.empty()) {
    // A read-only grant for this container only: the account key stays with us.
    ParsedUrl url;
    ParseUrl(creds.endpoint, &url);
    TR_ASSIGN_OR_RETURN(
        sas, ContainerSas(loc.account, creds.account_key, loc.container, "rl",
                          SystemClock()->WallNow() + kMountSasLifetime, url.scheme == "http"));
  }
  config[p + "TYPE"] = "azureblob";
  config[p + "SAS_URL"] = creds.endpoint + "/" + loc.container + (sas.empty() ? "" : "?" + sas);
  std::string path = loc.container + (loc.prefix.empty() ? "" : "/" + loc.prefix);
  return std::make_pair("trainrun:" + path, config);
}

// The variables of trainrun's environment a FUSE helper may inherit: where programs
// and home are, locale and time zone, proxies and CA certificates.
bool IsRcloneEnvironment(std::string_view name) {
  static const char* const kNames[] = {
      "PATH",        "HOME",       "USER",          "TMPDIR",       "LANG",
      "TZ",          "HTTP_PROXY", "HTTPS_PROXY",   "NO_PROXY",     "http_proxy",
      "https_proxy", "no_proxy",   "SSL_CERT_FILE", "SSL_CERT_DIR", "XDG_CACHE_HOME"};
  if (name.rfind("LC_", 0) == 0) return true;
  for (const char* n : kNames) {
    if (name == n) return true;
  }
  return false;
}

std::string LastLine(const std::string& path, const std::map<std::string, std::string>& secrets) {
  std::ifstream in(path);
  std::string line, last;
  while (std::getline(in, line)) {
    if (!line.empty()) last = line;
  }
  for (const auto& [name, value] : secrets) {
    if (value.size() >= 8) ReplaceAll(&last, value, kRedacted);
  }
  return last;
}

}  // namespace

std::string FuseUnavailableReason() {
  if (FindOnPath("rclone").empty()) return "rclone is not installed (apt-get install rclone fuse3)";
  if (access("/dev/fuse", R_OK | W_OK) != 0) {
    return "/dev/fuse is not available (a container needs --device /dev/fuse --cap-add SYS_ADMIN)";
  }
  if (FindOnPath("fusermount3").empty() && FindOnPath("fusermount").empty()) {
    return "fusermount is not installed (apt-get install fuse3)";
  }
  return "";
}

bool IsMountPoint(const std::string& path) {
  std::error_code ec;
  std::string want = fs::weakly_canonical(path, ec).string();
  std::ifstream info("/proc/self/mountinfo");
  std::string line;
  while (std::getline(info, line)) {
    // id parent major:minor root mount-point ...
    size_t pos = 0;
    for (int field = 0; field < 4 && pos != std::string::npos; ++field)
      pos = line.find(' ', pos + 1);
    if (pos == std::string::npos) continue;
    size_t end = line.find(' ', pos + 1);
    if (UnescapeMountPath(line.substr(pos + 1, end - pos - 1)) == want) return true;
  }
  return false;
}

Result<std::unique_ptr<FuseMount>> FuseMount::Mount(const std::string& uri,
                                                    const std::string& target,
                                                    const std::string& log_path,
                                                    const EnvLookup& env, ProcessSet* processes,
                                                    const FuseMountOptions& options) {
  if (processes == nullptr) {
    return InternalError(fmt::format("cannot mount {}: no process set for rclone", RedactUri(uri)));
  }
  std::string rclone = options.rclone;
  if (rclone.empty()) {
    std::string why = FuseUnavailableReason();
    if (!why.empty()) {
      return NotSupportedError(fmt::format(
          "cannot mount {}: {}; use mechanism \"download\" instead", RedactUri(uri), why));
    }
    rclone = FindOnPath("rclone");
  }
  TR_ASSIGN_OR_RETURN(auto remote, RcloneRemote(uri, env));
  TR_RETURN_IF_ERROR(MakeDirs(target));
  std::error_code ec;
  if (!fs::is_empty(target, ec)) {
    return AlreadyExistsError(fmt::format("pathOnCompute {} exists and is not empty", target));
  }
  TR_RETURN_IF_ERROR(MakeDirs(fs::path(log_path).parent_path().string()));
  SpawnSpec spec;
  spec.argv = {rclone,   "mount",       remote.first, target,     "--read-only", "--log-file",
               log_path, "--log-level", "NOTICE",     "--config", "/dev/null"};
  // Only what rclone needs from trainrun's environment: never the job token, the
  // storage keys or any other credential (the remote's own config below carries a
  // container-scoped SAS instead of an Azure account key), nor RCLONE_* settings.
  for (char** e = environ; *e != nullptr; ++e) {
    std::string_view entry(*e);
    std::string_view name = entry.substr(0, entry.find('='));
    if (IsRcloneEnvironment(name)) spec.env.emplace_back(entry);
  }
  for (const auto& [k, v] : remote.second) spec.env.push_back(k + "=" + v);
  // SIGTERM, not SIGKILL, when trainrun dies: rclone then unmounts on its way out.
  spec.parent_death_signal = SIGTERM;
  const int dev_null = open("/dev/null", O_RDWR | O_CLOEXEC);
  if (dev_null < 0) return ErrnoStatus(errno, "/dev/null");
  spec.stdin_fd = spec.stdout_fd = spec.stderr_fd = dev_null;
  Result<int> pid = processes->Spawn(spec);
  close(dev_null);
  if (!pid.ok()) {
    return pid.status().WithContext(fmt::format("cannot mount {}", RedactUri(uri)));
  }
  std::unique_ptr<FuseMount> mount(
      new FuseMount(target, "rclone", *pid, processes, log_path, remote.second));
  std::function<bool(const std::string&)> ready = options.ready;
  if (!ready) ready = IsMountPoint;
  const TimePoint deadline = SystemClock()->Now() + kFuseMountTimeout;
  while (!ready(target)) {
    if (!processes->Running(*pid)) {
      mount->pid_ = -1;
      mount->mounted_ = false;
      return UnavailableError(fmt::format("rclone could not mount {} at {}: {} (log: {})",
                                          RedactUri(uri), target, LastLine(log_path, remote.second),
                                          log_path));
    }
    if (IsCanceled(options.cancel)) {
      // The destructor unmounts, should it have happened, and stops rclone.
      return CanceledError(*options.cancel,
                           fmt::format("mounting {} at {} with rclone", RedactUri(uri), target));
    }
    if (SystemClock()->Now() > deadline) {
      return UnavailableError(fmt::format(
          "rclone did not mount {} at {} within {} s (log: {})", RedactUri(uri), target,
          std::chrono::duration_cast<std::chrono::seconds>(kFuseMountTimeout).count(), log_path));
    }
    if (options.cancel != nullptr) {
      options.cancel->WaitFor(std::chrono::milliseconds(50));
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
  return mount;
}

std::string FuseMount::HelperExited(const ExitStatus& status) {
  const int pid = pid_;
  pid_ = -1;
  if (!mounted_ || pid < 0) return "";
  std::string last = LastLine(log_path_, secrets_);
  return fmt::format("the FUSE mount's {} (pid {}) {}; the data at {} is gone ({}log: {})", tool_,
                     pid, status.HowItEnded(), target_,
                     last.empty() ? "" : fmt::format("{}'s last log line: {}; ", tool_, last),
                     log_path_);
}

Status FuseMount::Unmount() {
  Status result;
  if (mounted_ && IsMountPoint(target_)) {
    const bool unmounted = CaptureOutput({"fusermount3", "-u", "-z", target_}, "").ok() ||
                           CaptureOutput({"fusermount", "-u", "-z", target_}, "").ok();
    if (!unmounted) {
      if (umount2(target_.c_str(), MNT_DETACH) != 0) {
        result = ErrnoStatus(errno, fmt::format("unmounting {}", target_));
      }
    }
  }
  mounted_ = false;
  if (pid_ > 0) {
    // rclone exits by itself once unmounted; make sure. Its exit stays for the
    // ProcessSet's Wait() to reap.
    const TimePoint deadline = SystemClock()->Now() + std::chrono::seconds(5);
    bool killed = false;
    while (processes_->Running(pid_)) {
      if (!killed && SystemClock()->Now() > deadline) {
        processes_->SignalGroup(pid_, SIGKILL).IgnoreError();
        killed = true;
      } else if (!killed) {
        processes_->SignalGroup(pid_, SIGTERM).IgnoreError();
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(killed ? 5 : 50));
    }
    pid_ = -1;
  }
  return result;
}

FuseMount::~FuseMount() { Unmount().IgnoreError(); }

}  // namespace trainrun
