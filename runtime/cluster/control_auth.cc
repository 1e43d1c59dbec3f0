#include "runtime/cluster/control_auth.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include <fmt/format.h>

#include "base/digest.h"
#include "base/text.h"

namespace trainrun {
namespace {

using nlohmann::json;

std::string Transcript(const std::string& role, int node_rank, const std::string& client_nonce,
                       const std::string& server_nonce) {
  return fmt::format("{}\n{}\n{}\n{}", role, node_rank, HexEncode(client_nonce),
                     HexEncode(server_nonce));
}

std::string ClientProof(const std::string& key, const std::string& transcript) {
  return HmacSha256(key, "trainrun-client-v1\n" + transcript);
}
std::string ServerProof(const std::string& key, const std::string& transcript) {
  return HmacSha256(key, "trainrun-server-v1\n" + transcript);
}

SessionKeys DeriveSessionKeys(const std::string& key, const std::string& transcript) {
  return {HmacSha256(key, "trainrun-session-v2 client-to-head\n" + transcript),
          HmacSha256(key, "trainrun-session-v2 head-to-client\n" + transcript)};
}

// A hex field of exactly `bytes` bytes.
bool HexField(const json& body, const char* name, size_t bytes, std::string* out) {
  auto it = body.find(name);
  if (it == body.end() || !it->is_string()) return false;
  return HexDecode(it->get<std::string>(), out) && out->size() == bytes;
}

}  // namespace

JobToken ResolveJobToken(const std::string& env_value, const std::string& job_identity) {
  if (!env_value.empty()) return {env_value, false};
  return {HexEncode(Sha256("trainrun derived job token v1\n" + job_identity)), true};
}

std::string RoleKey(const JobToken& token, const std::string& role) {
  if (role == kRoleRsh) return HmacSha256(token.secret, "trainrun rsh key");
  return token.secret;
}

ClientHandshake::ClientHandshake(std::string key, std::string role, int node_rank)
    : key_(std::move(key)), role_(std::move(role)), node_rank_(node_rank) {}

json ClientHandshake::Hello() {
  client_nonce_ = RandomBytes(kAuthNonceBytes);
  return {{"role", role_}, {"nodeRank", node_rank_}, {"nonce", HexEncode(client_nonce_)}};
}

Result<json> ClientHandshake::OnChallenge(const json& challenge) {
  if (!HexField(challenge, "nonce", kAuthNonceBytes, &server_nonce_)) {
    return InvalidArgumentError("the head's Challenge has no valid nonce");
  }
  std::string proof =
      ClientProof(key_, Transcript(role_, node_rank_, client_nonce_, server_nonce_));
  return json{{"proof", HexEncode(proof)}};
}

Status ClientHandshake::OnWelcome(const json& welcome) {
  std::string proof;
  if (!HexField(welcome, "proof", 32, &proof) ||
      !ConstantTimeEquals(
          proof, ServerProof(key_, Transcript(role_, node_rank_, client_nonce_, server_nonce_)))) {
    return Status(StatusCode::kPermissionDenied,
                  "the head did not prove it knows the job token: it belongs "
                  "to another job, or "
                  "TRAINRUN_JOB_TOKEN differs between the nodes");
  }
  keys_ = DeriveSessionKeys(key_, Transcript(role_, node_rank_, client_nonce_, server_nonce_));
  return Status::Ok();
}

ServerHandshake::ServerHandshake(
    std::function<std::optional<std::string>(const std::string&)> key_for_role)
    : key_for_role_(std::move(key_for_role)) {}

Result<json> ServerHandshake::OnHello(const json& hello) {
  auto role = hello.find("role");
  auto rank = hello.find("nodeRank");
  if (role == hello.end() || !role->is_string() || rank == hello.end() ||
      !rank->is_number_integer() || !HexField(hello, "nonce", kAuthNonceBytes, &client_nonce_)) {
    return InvalidArgumentError("malformed Hello (role, nodeRank and a 32-byte nonce expected)");
  }
  role_ = role->get<std::string>();
  node_rank_ = rank->get<int>();
  std::optional<std::string> key = key_for_role_(role_);
  if (!key) {
    // The role is a stranger's text: escaped before it reaches a report.
    return InvalidArgumentError(
        fmt::format("unknown role \"{}\"", EscapeControl(role_.substr(0, 64))));
  }
  key_ = *key;
  server_nonce_ = RandomBytes(kAuthNonceBytes);
  return json{{"nonce", HexEncode(server_nonce_)}};
}

Result<json> ServerHandshake::OnAuth(const json& auth) {
  if (key_.empty()) return InvalidArgumentError("Auth before Hello");
  const std::string transcript = Transcript(role_, node_rank_, client_nonce_, server_nonce_);
  std::string proof;
  if (!HexField(auth, "proof", 32, &proof) ||
      !ConstantTimeEquals(proof, ClientProof(key_, transcript))) {
    return Status(StatusCode::kPermissionDenied, "wrong job token");
  }
  keys_ = DeriveSessionKeys(key_, transcript);
  return json{{"proof", HexEncode(ServerProof(key_, transcript))}};
}

FrameAuthenticator::FrameAuthenticator(std::string_view key) {
  EVP_MAC* mac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
  ctx_ = EVP_MAC_CTX_new(mac);
  EVP_MAC_free(mac);  // the context keeps its own reference
  char digest[] = "SHA256";
  OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
                         OSSL_PARAM_construct_end()};
  EVP_MAC_init(ctx_, reinterpret_cast<const unsigned char*>(key.data()), key.size(), params);
}

FrameAuthenticator::~FrameAuthenticator() { EVP_MAC_CTX_free(ctx_); }

void FrameAuthenticator::Tag(std::string_view frame, unsigned char out[32]) {
  unsigned char sequence[8];
  for (int i = 0; i < 8; ++i) sequence[i] = static_cast<unsigned char>(sequence_ >> (56 - 8 * i));
  size_t size = 0;
  // A null key restarts the HMAC with the key given in the constructor.
  EVP_MAC_init(ctx_, nullptr, 0, nullptr);
  EVP_MAC_update(ctx_, sequence, sizeof(sequence));
  EVP_MAC_update(ctx_, reinterpret_cast<const unsigned char*>(frame.data()), frame.size());
  EVP_MAC_final(ctx_, out, &size, 32);
}

void FrameAuthenticator::Seal(std::string* frame) {
  unsigned char tag[32];
  Tag(*frame, tag);
  frame->append(reinterpret_cast<const char*>(tag), sizeof(tag));
  ++sequence_;
}

bool FrameAuthenticator::Verify(std::string_view frame, std::string_view tag) {
  unsigned char expected[32];
  Tag(frame, expected);
  if (tag.size() != sizeof(expected) ||
      CRYPTO_memcmp(tag.data(), expected, sizeof(expected)) != 0) {
    return false;
  }
  ++sequence_;
  return true;
}

}  // namespace trainrun
