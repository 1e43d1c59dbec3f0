// A real object-store server for the tests and benchmarks, started from the npm
// packages that scripts/install-deps.sh puts in <repo>/.deps: Azurite (Azure Blob)
// or s3rver (S3), on 127.0.0.1 and a free port, with its data in a temporary
// folder. It can be stopped and started again on the same port with the same data,
// to test outages. The destructor stops it and removes the data. No GoogleTest
// here: the benchmarks use it too.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "base/free_port.h"
#include "runtime/store/azure_blob_store.h"
#include "runtime/store/s3_store.h"

namespace trainrun::testing {

enum class ServerKind { kAzurite, kS3rver };

inline const char* ServerName(ServerKind kind) {
  return kind == ServerKind::kAzurite ? "Azurite" : "s3rver";
}

// Azurite's documented development account.
constexpr const char* kAzuriteKeyForTests =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
constexpr const char* kS3rverKey = "S3RVER";

class StoreServer {
 public:
  explicit StoreServer(ServerKind kind) : kind_(kind) {
    std::string pattern =
        (std::filesystem::temp_directory_path() / "trainrun-store-XXXXXX").string();
    data_ = mkdtemp(pattern.data());
  }
  ~StoreServer() {
    Stop();
    std::error_code ec;
    std::filesystem::remove_all(data_, ec);
  }
  StoreServer(const StoreServer&) = delete;
  StoreServer& operator=(const StoreServer&) = delete;

  static std::string DepsDir() {
    const char* dir = std::getenv("TRAINRUN_DEPS_DIR");
    return dir != nullptr ? dir : std::string(TRAINRUN_SOURCE_DIR) + "/.deps";
  }
  std::string Binary() const {
    return DepsDir() + "/node_modules/.bin/" +
           (kind_ == ServerKind::kAzurite ? "azurite-blob" : "s3rver");
  }
  // Why this server cannot run here ("" when it can).
  std::string Missing() const {
    if (access(Binary().c_str(), X_OK) != 0) {
      return Binary() + " is missing: run scripts/install-deps.sh";
    }
    if (system("node --version >/dev/null 2>&1") != 0) return "node is not installed";
    return "";
  }

  // Starts the server (on the same port and data as before after a Stop) and waits
  // until it accepts connections. Returns "" or what went wrong (with its log).
  std::string Start() {
    if (port_ == 0) {
      Result<int> port = FindFreePort("127.0.0.1");
      if (!port.ok()) return port.status().message();
      port_ = *port;
    }
    std::vector<std::string> argv = {Binary()};
    const std::string port = std::to_string(port_);
    if (kind_ == ServerKind::kAzurite) {
      argv.insert(argv.end(),
                  {"--blobHost", "127.0.0.1", "--blobPort", port, "--location", data_,
                   "--disableTelemetry", "--silent", "--loose", "--skipApiVersionCheck"});
    } else {
      argv.insert(argv.end(), {"-d", data_, "-a", "127.0.0.1", "-p", port, "--silent"});
    }
    pid_ = fork();
    if (pid_ == 0) {
      setpgid(0, 0);
      // s3rver encrypts its listing continuation tokens with DES, which OpenSSL 3
      // keeps in its legacy provider.
      if (kind_ == ServerKind::kS3rver) setenv("NODE_OPTIONS", "--openssl-legacy-provider", 1);
      int log = open((data_ + "/server.log").c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      dup2(log, 1);
      dup2(log, 2);
      std::vector<char*> args;
      for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
      args.push_back(nullptr);
      execv(args[0], args.data());
      _exit(127);
    }
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (std::chrono::steady_clock::now() < deadline) {
      if (Answers()) return "";
      if (waitpid(pid_, nullptr, WNOHANG) == pid_) {
        pid_ = -1;
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    std::ifstream log(data_ + "/server.log");
    return std::string(ServerName(kind_)) + " did not start; its log:\n" +
           std::string(std::istreambuf_iterator<char>(log), {});
  }

  // Stops the server (SIGTERM, then SIGKILL after 10 s) and waits for it.
  void Stop() {
    if (pid_ <= 0) return;
    kill(-pid_, SIGTERM);
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (waitpid(pid_, nullptr, WNOHANG) != pid_) {
      if (std::chrono::steady_clock::now() > deadline) {
        kill(-pid_, SIGKILL);
        waitpid(pid_, nullptr, 0);
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    pid_ = -1;
  }

  bool Answers() const {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port_));
    inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
    bool ok = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
    close(fd);
    return ok;
  }

  int pid() const { return pid_; }
  int port() const { return port_; }
  ServerKind kind() const { return kind_; }
  std::string endpoint() const { return "http://127.0.0.1:" + std::to_string(port_); }

  // The variables that point trainrun at this server, as NAME=VALUE.
  std::map<std::string, std::string> Variables(bool wrong_secret = false) const {
    if (kind_ == ServerKind::kAzurite) {
      std::string key = wrong_secret ? WrongKey() : kAzuriteKeyForTests;
      return {{"AZURE_STORAGE_CONNECTION_STRING",
               "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=" + key +
                   ";BlobEndpoint=" + endpoint() + "/devstoreaccount1;"}};
    }
    // s3rver checks only that the key id exists (it does not verify SigV4
    // signatures), so a wrong pair has a wrong id too.
    return {{"AWS_ACCESS_KEY_ID", wrong_secret ? "AKIAWRONGKEYID" : kS3rverKey},
            {"AWS_SECRET_ACCESS_KEY", wrong_secret ? WrongKey() : kS3rverKey},
            {"AWS_ENDPOINT_URL", endpoint()},
            {"AWS_REGION", "us-east-1"}};
  }
  std::vector<std::string> Env(bool wrong_secret = false) const {
    std::vector<std::string> out;
    for (const auto& [k, v] : Variables(wrong_secret)) out.push_back(k + "=" + v);
    return out;
  }
  EnvLookup Lookup(bool wrong_secret = false) const {
    auto vars = std::make_shared<std::map<std::string, std::string>>(Variables(wrong_secret));
    return [vars](const char* name) -> const char* {
      auto it = vars->find(name);
      return it == vars->end() ? nullptr : it->second.c_str();
    };
  }
  // A secret that is wrong, and recognisable if it ever leaks into a message.
  static std::string WrongKey() { return "V3JvbmdTZWNyZXRXcm9uZ1NlY3JldFdyb25nU2VjcmV0"; }

  // Creates the container or bucket NAME; *uri becomes "az://devstoreaccount1/NAME"
  // or "s3://NAME".
  Status CreateRoot(const std::string& name, std::string* uri) {
    if (kind_ == ServerKind::kAzurite) {
      *uri = "az://devstoreaccount1/" + name;
      TR_ASSIGN_OR_RETURN(auto store, AzureBlobStore::Open(*uri, Lookup()));
      return store->CreateContainer();
    }
    *uri = "s3://" + name;
    TR_ASSIGN_OR_RETURN(auto store, S3Store::Open(*uri, Lookup()));
    return store->CreateBucket();
  }

 private:
  ServerKind kind_;
  std::string data_;
  int port_ = 0;
  int pid_ = -1;
};

}  // namespace trainrun::testing
