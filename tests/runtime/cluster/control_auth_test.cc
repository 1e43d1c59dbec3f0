// The HMAC challenge-response on the job token.
#include "runtime/cluster/control_auth.h"

#include <gtest/gtest.h>

#include "base/digest.h"

namespace trainrun {
namespace {

using nlohmann::json;

std::function<std::optional<std::string>(const std::string&)> Keys(const JobToken& token) {
  return [token](const std::string& role) -> std::optional<std::string> {
    if (role == kRoleNode || role == kRoleRsh) return RoleKey(token, role);
    return std::nullopt;
  };
}

// Runs the four messages; returns the server's and client's verdicts.
std::pair<Status, Status> Handshake(const JobToken& server_token, const JobToken& client_token,
                                    const std::string& role = kRoleNode) {
  ServerHandshake server(Keys(server_token));
  ClientHandshake client(RoleKey(client_token, role), role, 3);
  Result<json> challenge = server.OnHello(client.Hello());
  if (!challenge.ok()) return {challenge.status(), Status::Ok()};
  Result<json> auth = client.OnChallenge(*challenge);
  if (!auth.ok()) return {Status::Ok(), auth.status()};
  Result<json> welcome = server.OnAuth(*auth);
  if (!welcome.ok()) return {welcome.status(), Status::Ok()};
  return {Status::Ok(), client.OnWelcome(*welcome)};
}

TEST(ControlAuthTest, TheSameTokenAuthenticatesBothWays) {
  JobToken token{"correct horse battery staple", false};
  auto [server, client] = Handshake(token, token);
  EXPECT_TRUE(server.ok()) << server.message();
  EXPECT_TRUE(client.ok()) << client.message();
  auto [rsh_server, rsh_client] = Handshake(token, token, kRoleRsh);
  EXPECT_TRUE(rsh_server.ok() && rsh_client.ok());
}

TEST(ControlAuthTest, AWrongTokenIsRefusedAndNeverSent) {
  JobToken good{"correct horse battery staple", false};
  JobToken bad{"wrong", false};
  ServerHandshake server(Keys(good));
  ClientHandshake client(RoleKey(bad, kRoleNode), kRoleNode, 1);
  json hello = client.Hello();
  Result<json> challenge = server.OnHello(hello);
  ASSERT_TRUE(challenge.ok());
  Result<json> auth = client.OnChallenge(*challenge);
  ASSERT_TRUE(auth.ok());
  for (const json& message : {hello, *challenge, *auth}) {
    EXPECT_EQ(message.dump().find("wrong"), std::string::npos);
    EXPECT_EQ(message.dump().find(HexEncode("wrong")), std::string::npos);
  }
  Result<json> welcome = server.OnAuth(*auth);
  ASSERT_FALSE(welcome.ok());
  EXPECT_EQ(welcome.status().code(), StatusCode::kPermissionDenied);
  EXPECT_NE(welcome.status().message().find("wrong job token"), std::string::npos);
}

TEST(ControlAuthTest, ANodeDoesNotFollowAHeadThatCannotProveTheToken) {
  JobToken good{"correct horse battery staple", false};
  JobToken other{"another job's token", false};
  auto [server, client] = Handshake(other, good);
  // The head refuses first, as it checks the client's proof before proving
  // itself.
  EXPECT_FALSE(server.ok());
  // A head that answers with a made-up proof is caught by the client.
  ClientHandshake alone(RoleKey(good, kRoleNode), kRoleNode, 1);
  alone.Hello();
  ASSERT_TRUE(alone.OnChallenge({{"nonce", HexEncode(std::string(32, 'n'))}}).ok());
  Status followed = alone.OnWelcome({{"proof", HexEncode(std::string(32, 'p'))}});
  EXPECT_EQ(followed.code(), StatusCode::kPermissionDenied);
}

TEST(ControlAuthTest, AProofIsBoundToItsNoncesRoleAndNodeRank) {
  JobToken token{"correct horse battery staple", false};
  // Record one good exchange, then replay its proof against a fresh challenge.
  ServerHandshake first(Keys(token));
  ClientHandshake client(RoleKey(token, kRoleNode), kRoleNode, 1);
  json hello = client.Hello();
  json auth = *client.OnChallenge(*first.OnHello(hello));
  ServerHandshake second(Keys(token));
  ASSERT_TRUE(second.OnHello(hello).ok());
  EXPECT_FALSE(second.OnAuth(auth).ok());
  // The rsh key does not open the node role.
  ServerHandshake server(Keys(token));
  ClientHandshake rsh_as_node(RoleKey(token, kRoleRsh), kRoleNode, 0);
  json rsh_auth = *rsh_as_node.OnChallenge(*server.OnHello(rsh_as_node.Hello()));
  EXPECT_FALSE(server.OnAuth(rsh_auth).ok());
}

TEST(ControlAuthTest, MalformedMessagesAreErrorsNotCrashes) {
  JobToken token{"t", false};
  ServerHandshake server(Keys(token));
  EXPECT_FALSE(server.OnHello(json::object()).ok());
  EXPECT_FALSE(server.OnHello({{"role", "node"}, {"nodeRank", 1}, {"nonce", "zz"}}).ok());
  EXPECT_FALSE(
      server
          .OnHello({{"role", "admin"}, {"nodeRank", 1}, {"nonce", HexEncode(std::string(32, 'a'))}})
          .ok());
  EXPECT_FALSE(server.OnAuth({{"proof", "00"}}).ok());
  ClientHandshake client("k", kRoleNode, 1);
  client.Hello();
  EXPECT_FALSE(client.OnChallenge({{"nonce", 5}}).ok());
}

TEST(ControlAuthTest, ADerivedTokenDependsOnTheJobIdentity) {
  JobToken a = ResolveJobToken("", "slurm:1\njobdigest");
  JobToken b = ResolveJobToken("", "slurm:2\njobdigest");
  EXPECT_TRUE(a.derived);
  EXPECT_NE(a.secret, b.secret);
  EXPECT_EQ(a.secret, ResolveJobToken("", "slurm:1\njobdigest").secret);
  JobToken given = ResolveJobToken("s3cret", "ignored");
  EXPECT_FALSE(given.derived);
  EXPECT_EQ(given.secret, "s3cret");
}

}  // namespace
}  // namespace trainrun
