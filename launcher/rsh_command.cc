#include "launcher/rsh_command.h"

#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>

#include <fmt/format.h>

#include "base/digest.h"
#include "base/fs_util.h"
#include "runtime/cluster/control_auth.h"
#include "runtime/cluster/control_client.h"
#include "runtime/cluster/control_messages.h"
#include "runtime/mpi/mpi_launch.h"

namespace trainrun {
namespace {

constexpr int kRshFailed = 255;

}  // namespace

int RshCommand(const std::string& host, const std::vector<std::string>& command, Console* err) {
  // Gone with the mpirun that started us (Open MPI puts its agents in process
  // groups of their own, out of reach of mpirun's): the head then hangs up on the
  // session, and the node stops the command.
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  auto fail = [&](const std::string& message) {
    err->Write(fmt::format("trainrun rsh: {}\n", message), false);
    err->Flush(std::chrono::seconds(2));
    return kRshFailed;
  };
  const char* head = getenv(kRshHeadVariable);
  const char* key_hex = getenv(kRshKeyVariable);
  std::string key;
  if (head == nullptr || key_hex == nullptr || !HexDecode(key_hex, &key)) {
    return fail(
        fmt::format("{} and {} are not set: trainrun rsh is the launch agent that trainrun "
                    "gives mpirun in an MPI job, not a command to run by hand",
                    kRshHeadVariable, kRshKeyVariable));
  }
  std::string head_address = head;
  size_t colon = head_address.rfind(':');
  if (colon == std::string::npos)
    return fail(fmt::format("{}={} is not host:port", kRshHeadVariable, head));

  ControlClientOptions options;
  options.host = head_address.substr(0, colon);
  options.port = std::atoi(head_address.c_str() + colon + 1);
  options.role = kRoleRsh;
  options.node_rank = -1;
  options.key = key;
  options.deadline = SystemClock()->Now() + std::chrono::seconds(30);
  Result<std::unique_ptr<ControlClient>> connected = ControlClient::Connect(options);
  if (!connected.ok()) return fail(connected.status().message());
  std::unique_ptr<ControlClient> client = std::move(connected).value();
  nlohmann::json open = {{"host", host}, {"argv", command}};
  if (const char* attempt = getenv(kRshAttemptVariable)) open["attempt"] = std::atoi(attempt);
  Status opened = client->SendJson(MessageType::kRshOpen, open);
  if (!opened.ok()) return fail(opened.message());

  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  int exit_code = kRshFailed;
  std::string error;
  client->StartReader(
      [&](const Frame& frame) {
        if (frame.type == MessageType::kRshData) {
          Result<RshChunk> chunk = DecodeRshData(frame);
          if (chunk.ok())
            WriteAll(chunk->stream == 2 ? STDERR_FILENO : STDOUT_FILENO, chunk->data.data(),
                     chunk->data.size(), "the agent's output")
                .IgnoreError();  // like ssh: a closed stdout does not stop the command
          return;
        }
        if (frame.type != MessageType::kRshExit) return;
        Result<RshExitMessage> exit = DecodeRshExit(frame);
        std::lock_guard lock(mu);
        if (exit.ok()) {
          exit_code = exit->exit_code;
          error = exit->error;
        } else {
          error = "the job's trainrun sent a malformed message: " + exit.status().message();
        }
        done = true;
        cv.notify_all();
      },
      {},
      [&](const std::string& reason) {
        std::lock_guard lock(mu);
        if (!done) error = "lost the connection to the job's trainrun: " + reason;
        done = true;
        cv.notify_all();
      });
  // stdin goes to the remote command; its end is sent as an empty chunk. The
  // thread is left behind when the command ends first (exit does not wait for
  // it).
  std::thread([&client] {
    char buffer[65536];
    while (true) {
      ssize_t n = read(STDIN_FILENO, buffer, sizeof(buffer));
      if (n < 0 && errno == EINTR) continue;
      std::string data = n > 0 ? std::string(buffer, static_cast<size_t>(n)) : std::string();
      if (!client->Send(EncodeRshData({0, 0, data})).ok() || n <= 0) return;
    }
  }).detach();
  std::unique_lock lock(mu);
  cv.wait(lock, [&] { return done; });
  if (!error.empty()) err->Write(fmt::format("trainrun rsh {}: {}\n", host, error), false);
  err->Flush(std::chrono::seconds(2));
  // The stdin thread may still use the client: leave without destroying it.
  _exit(exit_code);
}

}  // namespace trainrun
