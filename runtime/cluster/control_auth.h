// Who may talk to the head: challenge-response on the job token, HMAC-SHA256.
//
// Every node of a job knows the job token (TRAINRUN_JOB_TOKEN); it never crosses
// the network. A connection starts with:
//
// clang-format off
//   client -> head  Hello      {"role", "nodeRank", "nonce": 32 random bytes, hex}
//   head -> client  Challenge  {"nonce": 32 random bytes, hex}
//   client -> head  Auth       {"proof": HMAC(key, "trainrun-client-v1" | transcript)}
//   head -> client  Welcome    {"proof": HMAC(key, "trainrun-server-v1" | transcript)}
//                or Refused    {"reason"}, then the head closes
// clang-format on
//
// where transcript = role | node rank | client nonce | head nonce (joined by
// newlines), and key is the job token for role "node" and a key derived from it for
// role "rsh" (MPI's launch agent, which only gets the derived key). Both sides
// prove they know the key, so a node never follows a head that does not, and fresh
// nonces on both sides make a recorded exchange useless later.
#pragma once

#include <functional>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "base/status.h"

namespace trainrun {

constexpr const char* kJobTokenVariable = "TRAINRUN_JOB_TOKEN";
constexpr size_t kAuthNonceBytes = 32;
// Shorter tokens work but are warned about.
constexpr size_t kMinJobTokenChars = 16;

// Connection roles.
constexpr const char* kRoleNode = "node";  // another node's trainrun
constexpr const char* kRoleRsh = "rsh";    // `trainrun rsh`, started by mpirun

struct JobToken {
  std::string secret;
  bool derived = false;  // no TRAINRUN_JOB_TOKEN: derived from the job's identity
};

// The token from `env_value` (TRAINRUN_JOB_TOKEN), or, when it is empty, one
// derived from `job_identity` (the same text on every node: the scheduler's job
// id, the job file's digest, the head address and port).
JobToken ResolveJobToken(const std::string& env_value, const std::string& job_identity);

// The key of a role: the token itself for "node", HMAC(token, "trainrun rsh key")
// for "rsh".
std::string RoleKey(const JobToken& token, const std::string& role);

class ClientHandshake {
 public:
  ClientHandshake(std::string key, std::string role, int node_rank);
  nlohmann::json Hello();
  // The Auth body, or kInvalidArgument for a malformed Challenge.
  Result<nlohmann::json> OnChallenge(const nlohmann::json& challenge);
  // Ok when the head proved it knows the key; kPermissionDenied otherwise.
  Status OnWelcome(const nlohmann::json& welcome);

 private:
  std::string key_, role_;
  int node_rank_;
  std::string client_nonce_, server_nonce_;
};

class ServerHandshake {
 public:
  // `key_for_role` gives the key of a role, or none for roles the head refuses.
  explicit ServerHandshake(
      std::function<std::optional<std::string>(const std::string&)> key_for_role);
  // The Challenge body; kInvalidArgument for a malformed Hello or unknown role.
  Result<nlohmann::json> OnHello(const nlohmann::json& hello);
  // The Welcome body; kPermissionDenied when the proof is wrong (a wrong
  // token).
  Result<nlohmann::json> OnAuth(const nlohmann::json& auth);

  const std::string& role() const { return role_; }
  int node_rank() const { return node_rank_; }

 private:
  std::function<std::optional<std::string>(const std::string&)> key_for_role_;
  std::string key_, role_;
  int node_rank_ = -1;
  std::string client_nonce_, server_nonce_;
};

}  // namespace trainrun
