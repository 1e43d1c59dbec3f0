#include "runtime/mpi/mpi_rank_server.h"

#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "runtime/process/process_posix.h"

namespace trainrun {
namespace {

using nlohmann::json;

Result<sockaddr_un> Address(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof(addr.sun_path)) {
    return InvalidArgumentError(
        fmt::format("socket path {} is longer than {} bytes", path, sizeof(addr.sun_path) - 1));
  }
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  return addr;
}

Status SendWithFds(int fd, const std::string& data, const std::vector<int>& fds) {
  iovec iov{const_cast<char*>(data.data()), data.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  std::vector<char> control(CMSG_SPACE(sizeof(int) * std::max<size_t>(fds.size(), 1)));
  if (!fds.empty()) {
    msg.msg_control = control.data();
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
    cmsghdr* cmsg = CMSG_FIRSTHDR(&msg);
    cmsg->cmsg_level = SOL_SOCKET;
    cmsg->cmsg_type = SCM_RIGHTS;
    cmsg->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
    std::memcpy(CMSG_DATA(cmsg), fds.data(), sizeof(int) * fds.size());
  }
  ssize_t sent;
  do {
    sent = sendmsg(fd, &msg, MSG_NOSIGNAL);
  } while (sent < 0 && errno == EINTR);
  if (sent < 0) return ErrnoStatus(errno, "sendmsg");
  size_t offset = static_cast<size_t>(sent);
  while (offset < data.size()) {  // the fds went with the first byte
    ssize_t n = send(fd, data.data() + offset, data.size() - offset, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return ErrnoStatus(errno, "send");
    offset += static_cast<size_t>(n);
  }
  return Status::Ok();
}

json SpecToJson(const SpawnSpec& spec) {
  return {{"argv", spec.argv},
          {"env", spec.env},
          {"cwd", spec.cwd},
          {"cpus", spec.cpus},
          {"memoryNodes", spec.memory_nodes}};
}

}  // namespace

struct MpiRankServer::Client {
  int fd = -1;
  int rank = -1;
  int peer_pid = 0;  // the wrapper, as this process sees it (SO_PEERCRED)
  bool started = false;
  bool exited = false;
  std::string buffer;
};

Result<std::unique_ptr<MpiRankServer>> MpiRankServer::Start(const std::string& socket_path,
                                                            std::map<int, SpawnSpec> launches,
                                                            MpiRankEvents events) {
  std::unique_ptr<MpiRankServer> server(new MpiRankServer());
  server->path_ = socket_path;
  server->launches_ = std::move(launches);
  server->events_ = std::move(events);
  TR_ASSIGN_OR_RETURN(sockaddr_un addr, Address(socket_path));
  unlink(socket_path.c_str());
  server->listen_fd_ = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (server->listen_fd_ < 0) return ErrnoStatus(errno, "socket");
  mode_t old = umask(0077);
  int rc = bind(server->listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  umask(old);
  if (rc != 0 || listen(server->listen_fd_, 1024) != 0) return ErrnoStatus(errno, socket_path);
  server->wake_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  server->thread_ = std::thread([s = server.get()] { s->Loop(); });
  return server;
}

MpiRankServer::~MpiRankServer() {
  stop_ = true;
  if (wake_fd_ >= 0) {
    uint64_t one = 1;
    ssize_t ignored = write(wake_fd_, &one, sizeof(one));
    (void)ignored;
  }
  if (thread_.joinable()) thread_.join();
  if (listen_fd_ >= 0) close(listen_fd_);
  if (wake_fd_ >= 0) close(wake_fd_);
  unlink(path_.c_str());
}

void MpiRankServer::OnLine(Client& client, const std::string& line) {
  json message = json::parse(line, nullptr, false);
  if (message.is_discarded() || !message.is_object()) {
    events_.warning("an MPI rank wrapper sent a malformed message");
    return;
  }
  if (client.rank < 0 && message.contains("rank")) {
    int rank = message.value("rank", -1);
    auto launch = launches_.find(rank);
    std::string error;
    if (launch == launches_.end()) {
      error = fmt::format(
          "rank {} is not planned on this node (mpirun's rank mapping differs "
          "from "
          "trainrun's)",
          rank);
    } else if (handed_out_[rank]) {
      error = fmt::format("rank {} was already started on this node", rank);
    }
    if (!error.empty()) {
      events_.warning(error);
      SendWithFds(client.fd, json{{"error", error}}.dump() + "\n", {}).IgnoreError();
      return;
    }
    client.rank = rank;
    handed_out_[rank] = true;
    Status sent = SendWithFds(client.fd, SpecToJson(launch->second).dump() + "\n",
                              {launch->second.stdout_fd, launch->second.stderr_fd});
    if (!sent.ok()) events_.warning(fmt::format("rank {}: {}", rank, sent.message()));
    return;
  }
  if (client.rank < 0) return;
  if (message.contains("started") && !client.started) {
    client.started = true;
    // The wrapper says its program's pid as it sees it: inside trainrun's PID
    // namespace that number means another process here.
    int pid = message.value("started", 0);
    if (pid > 0 && client.peer_pid > 0) pid = PidOfChild(client.peer_pid, pid);
    events_.started(client.rank, pid);
  } else if (message.contains("exitCode") || message.contains("signal")) {
    if (client.exited) return;
    client.exited = true;
    ExitStatus status;
    status.code = message.value("exitCode", 0);
    status.signal = message.value("signal", 0);
    if (!client.started) {
      client.started = true;
      events_.started(client.rank, 0);
    }
    events_.exited(client.rank, status);
  }
}

void MpiRankServer::Loop() {
  std::vector<std::unique_ptr<Client>> clients;
  while (!stop_) {
    std::vector<pollfd> fds = {{listen_fd_, POLLIN, 0}, {wake_fd_, POLLIN, 0}};
    for (auto& c : clients) fds.push_back({c->fd, POLLIN, 0});
    int n = poll(fds.data(), fds.size(), 500);
    if (n < 0 && errno != EINTR) break;
    if (n <= 0) continue;
    if (fds[0].revents & POLLIN) {
      while (true) {
        int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
        if (fd < 0) break;
        auto client = std::make_unique<Client>();
        client->fd = fd;
        ucred peer{};
        socklen_t peer_size = sizeof(peer);
        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &peer, &peer_size) == 0) {
          client->peer_pid = peer.pid;
        }
        clients.push_back(std::move(client));
      }
    }
    for (size_t i = 2; i < fds.size(); ++i) {
      if (fds[i].revents == 0) continue;
      Client& client = *clients[i - 2];
      char buffer[65536];
      ssize_t got = recv(client.fd, buffer, sizeof(buffer), 0);
      if (got > 0) {
        client.buffer.append(buffer, static_cast<size_t>(got));
        size_t nl;
        while ((nl = client.buffer.find('\n')) != std::string::npos) {
          std::string line = client.buffer.substr(0, nl);
          client.buffer.erase(0, nl + 1);
          OnLine(client, line);
        }
        if (client.buffer.size() > kMaxRankMessage) got = 0;  // not a wrapper: drop it
        if (got > 0) continue;
      }
      if (got < 0 && errno == EINTR) continue;
      // The wrapper is gone. Without its exit message it was killed.
      if (client.rank >= 0 && !client.exited) {
        client.exited = true;
        if (!client.started) events_.started(client.rank, 0);
        ExitStatus killed;
        killed.signal = SIGKILL;
        events_.exited(client.rank, killed);
      }
      close(client.fd);
      client.fd = -1;
    }
    std::erase_if(clients, [](const std::unique_ptr<Client>& c) { return c->fd < 0; });
  }
  for (auto& c : clients) close(c->fd);
}

Result<MpiRankLaunch> FetchMpiRankLaunch(const std::string& socket_path, int rank) {
  TR_ASSIGN_OR_RETURN(sockaddr_un addr, Address(socket_path));
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return ErrnoStatus(errno, "socket");
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    int err = errno;
    close(fd);
    return ErrnoStatus(err, fmt::format("connect to this node's trainrun at {}", socket_path));
  }
  Status sent = SendRankMessage(fd, {{"rank", rank}, {"pid", getpid()}});
  if (!sent.ok()) {
    close(fd);
    return sent;
  }
  std::string line;
  std::vector<int> fds;
  while (line.find('\n') == std::string::npos) {
    char buffer[65536];
    iovec iov{buffer, sizeof(buffer)};
    char control[CMSG_SPACE(sizeof(int) * 4)];
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof(control);
    ssize_t got = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) {
      close(fd);
      return UnavailableError(
          "this node's trainrun closed the connection before sending the "
          "launch");
    }
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
        size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < count; ++i) {
          int received;
          std::memcpy(&received, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
          fds.push_back(received);
        }
      }
    }
    line.append(buffer, static_cast<size_t>(got));
    if (line.size() > kMaxRankMessage) break;
  }
  json spec = json::parse(line.substr(0, line.find('\n')), nullptr, false);
  if (spec.is_discarded() || !spec.is_object()) {
    close(fd);
    return InternalError("malformed launch from this node's trainrun");
  }
  if (spec.contains("error")) {
    close(fd);
    return InvalidArgumentError(spec.value("error", ""));
  }
  if (fds.size() != 2) {
    close(fd);
    return InternalError("the launch from this node's trainrun came without the log pipes");
  }
  MpiRankLaunch launch;
  launch.spec.argv = spec.value("argv", std::vector<std::string>{});
  launch.spec.env = spec.value("env", std::vector<std::string>{});
  launch.spec.cwd = spec.value("cwd", "");
  launch.spec.cpus = spec.value("cpus", std::vector<int>{});
  launch.spec.memory_nodes = spec.value("memoryNodes", std::vector<int>{});
  launch.spec.stdout_fd = fds[0];
  launch.spec.stderr_fd = fds[1];
  launch.socket_fd = fd;
  return launch;
}

Status SendRankMessage(int fd, const json& message) {
  return SendWithFds(fd, message.dump() + "\n", {}).WithContext("send to this node's trainrun");
}

}  // namespace trainrun
