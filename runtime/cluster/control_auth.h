// Who may talk to the head: challenge-response on the job token, HMAC-SHA256,
// then a tag on every frame under per-direction session keys.
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
//
// Every frame after the handshake carries a tag (control_protocol.h): both sides
// derive one session key per direction from the key and the transcript,
//
//   client -> head key = HMAC(key, "trainrun-session-v2 client-to-head\n" | transcript)
//   head -> client key = HMAC(key, "trainrun-session-v2 head-to-client\n" | transcript)
//
// and tag = HMAC-SHA256(direction key, sequence | frame), where sequence counts
// the frames of that direction since the handshake (0, 1, ...; 8 bytes,
// big-endian, never sent) and frame is its header and payload. A frame that was
// injected, altered, replayed, reordered, reflected back to its sender or
// follows a dropped one fails the check; FrameAuthenticator does it.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "base/status.h"

struct evp_mac_ctx_st;  // OpenSSL's EVP_MAC_CTX

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

// The two session keys of one connection (see above); empty until the handshake
// has succeeded.
struct SessionKeys {
  std::string client_to_head;
  std::string head_to_client;
};

// Seals or checks the frames of one direction of one connection, counting them.
// One per direction and side; not thread-safe (callers hold their send lock, or
// read on one thread). Reuses one keyed HMAC context, so a frame costs one HMAC.
class FrameAuthenticator {
 public:
  // `key`: one of SessionKeys.
  explicit FrameAuthenticator(std::string_view key);
  ~FrameAuthenticator();
  FrameAuthenticator(const FrameAuthenticator&) = delete;
  FrameAuthenticator& operator=(const FrameAuthenticator&) = delete;

  // Appends the tag of `*frame` (header and payload) at the next sequence number.
  void Seal(std::string* frame);
  // True when `tag` is the tag of `frame` at the next sequence number, compared
  // in constant time; only then does the sequence advance.
  bool Verify(std::string_view frame, std::string_view tag);
  // Frames sealed or verified so far: the sequence number of the next one.
  uint64_t sequence() const { return sequence_; }

 private:
  void Tag(std::string_view frame, unsigned char out[32]);

  ::evp_mac_ctx_st* ctx_ = nullptr;  // keyed once, reinitialized per frame
  uint64_t sequence_ = 0;
};

class ClientHandshake {
 public:
  ClientHandshake(std::string key, std::string role, int node_rank);
  nlohmann::json Hello();
  // The Auth body, or kInvalidArgument for a malformed Challenge.
  Result<nlohmann::json> OnChallenge(const nlohmann::json& challenge);
  // Ok when the head proved it knows the key; kPermissionDenied otherwise.
  Status OnWelcome(const nlohmann::json& welcome);
  // The connection's keys once OnWelcome succeeded; empty keys before.
  const SessionKeys& session_keys() const { return keys_; }

 private:
  std::string key_, role_;
  int node_rank_;
  std::string client_nonce_, server_nonce_;
  SessionKeys keys_;
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
  // The connection's keys once OnAuth succeeded; empty keys before.
  const SessionKeys& session_keys() const { return keys_; }

 private:
  std::function<std::optional<std::string>(const std::string&)> key_for_role_;
  std::string key_, role_;
  int node_rank_ = -1;
  std::string client_nonce_, server_nonce_;
  SessionKeys keys_;
};

}  // namespace trainrun
