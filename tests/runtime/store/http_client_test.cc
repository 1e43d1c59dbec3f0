// HttpClient against a scripted HTTP server on a loopback socket: retries of 503,
// 429 and dropped connections, no retry of 4xx, bodies from files and into files.
#include "runtime/store/http_client.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <mutex>
#include <thread>

#include <gtest/gtest.h>

#include "tests/fakes/loopback_server.h"
#include "tests/test_util.h"

namespace trainrun {
namespace {

using testing::HttpReply;
using testing::LoopbackServer;
using testing::ReadHttpHead;

// Answers each connection's requests with the next scripted reply; "DROP" closes
// the connection without answering. Records each request's head and body.
class ScriptedServer {
 public:
  explicit ScriptedServer(std::vector<std::string> replies) : replies_(std::move(replies)) {}
  std::string url(const std::string& path) const { return server_.url(path); }
  std::vector<std::string> requests() {
    std::lock_guard lock(mu_);
    return requests_;
  }

 private:
  void Serve(int c) {
    while (next_ < replies_.size()) {
      std::string head = ReadHttpHead(c);
      if (head.empty()) return;
      size_t cl = head.find("Content-Length: ");
      if (cl != std::string::npos) {
        size_t n = std::stoul(head.substr(cl + 16));
        std::string body(n, '\0');
        size_t got = 0;
        while (got < n) {
          ssize_t r = read(c, body.data() + got, n - got);
          if (r <= 0) break;
          got += static_cast<size_t>(r);
        }
        head += body;
      }
      {
        std::lock_guard lock(mu_);
        requests_.push_back(head);
      }
      const std::string& reply = replies_[next_++];
      if (reply == "DROP") return;
      (void)!write(c, reply.data(), reply.size());
    }
  }

  std::vector<std::string> replies_;
  size_t next_ = 0;  // the server's thread only
  std::mutex mu_;
  std::vector<std::string> requests_;
  LoopbackServer server_{[this](int c) { Serve(c); }};  // last: stops before the rest goes
};

std::string Reply(int status, const std::string& body = "") { return HttpReply(status, body); }

class NoSleep : public Sleeper {
 public:
  void Sleep(Duration d) override { slept.push_back(d); }
  std::vector<Duration> slept;
};

RetryOptions Fast(NoSleep* sleeper) {
  RetryOptions r;
  r.backoff.jitter = false;
  r.sleeper = sleeper;
  return r;
}

TEST(HttpClientTest, RetriesServiceErrorsAndDroppedConnectionsWithAFreshRequestEachTime) {
  ScriptedServer server({Reply(503), "DROP", Reply(429), Reply(200, "done")});
  HttpClient client;
  NoSleep sleeper;
  int built = 0;
  Result<HttpResponse> r = client.SendWithRetry(
      [&]() -> Result<HttpRequest> {
        HttpRequest req;
        req.method = "PUT";
        req.url = server.url("/obj");
        req.body = "payload";
        req.headers = {{"x-attempt", std::to_string(++built)}};
        return req;
      },
      Fast(&sleeper));
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "done");
  EXPECT_EQ(built, 4);
  EXPECT_EQ(sleeper.slept.size(), 3u);
  std::vector<std::string> seen = server.requests();
  ASSERT_EQ(seen.size(), 4u);
  EXPECT_NE(seen[3].find("x-attempt: 4"), std::string::npos);
  EXPECT_NE(seen[3].find("payload"), std::string::npos);
}

TEST(HttpClientTest, ClientErrorsAreNotRetried) {
  ScriptedServer server({Reply(404), Reply(200)});
  HttpClient client;
  NoSleep sleeper;
  Result<HttpResponse> r = client.SendWithRetry(
      [&]() -> Result<HttpRequest> {
        HttpRequest req;
        req.url = server.url("/missing");
        return req;
      },
      Fast(&sleeper));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 404);
  EXPECT_TRUE(sleeper.slept.empty());
}

TEST(HttpClientTest, GivesUpAfterMaxAttemptsWithTheUrlRedacted) {
  ScriptedServer server({"DROP", "DROP", "DROP"});
  HttpClient client;
  NoSleep sleeper;
  RetryOptions retry = Fast(&sleeper);
  retry.max_attempts = 3;
  Result<HttpResponse> r = client.SendWithRetry(
      [&]() -> Result<HttpRequest> {
        HttpRequest req;
        req.url = server.url("/x?sv=2020&sig=SECRETSIG");
        return req;
      },
      retry);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(r.status().message().find("SECRETSIG"), std::string::npos) << r.status().message();
  EXPECT_NE(r.status().message().find("/x?"), std::string::npos) << r.status().message();
}

TEST(HttpClientTest, BodyFromAFileRangeAndResponseIntoAFile) {
  testing::TempDir dir;
  testing::WriteFile(dir / "in", "0123456789");
  ScriptedServer server({Reply(201), Reply(206, "abcdef")});
  HttpClient client;
  int in = open((dir / "in").c_str(), O_RDONLY);
  HttpRequest put;
  put.method = "PUT";
  put.url = server.url("/up");
  put.body_fd = in;
  put.body_offset = 3;
  put.body_length = 4;
  uint64_t counted = 0;
  put.on_bytes = [&](uint64_t n) { counted += n; };
  ASSERT_EQ(client.Send(put)->status, 201);
  EXPECT_EQ(counted, 4u);
  close(in);
  EXPECT_NE(server.requests()[0].find("\r\n\r\n3456"), std::string::npos) << server.requests()[0];

  int out = open((dir / "out").c_str(), O_RDWR | O_CREAT, 0644);
  HttpRequest get;
  get.url = server.url("/down");
  get.sink_fd = out;
  get.sink_offset = 2;
  Result<HttpResponse> r = client.Send(get);
  close(out);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->sunk_bytes, 6u);
  EXPECT_EQ(testing::ReadFile(dir / "out"), std::string("\0\0abcdef", 8));
}

// The server sends the headers and 3 of 1,000,000 bytes, then nothing: only the
// stall timeout (60 s) would end the transfer, unless the cancel does. (The second
// reply keeps the server reading the connection instead of closing it.)
TEST(HttpClientTest, ACancelAbortsATransferWaitingForBytesAndStopsRetries) {
  ScriptedServer server({"HTTP/1.1 200 X\r\nContent-Length: 1000000\r\n\r\nabc", Reply(200)});
  CancelToken cancel;
  HttpClient client;
  client.SetCancel(&cancel);
  std::thread canceler([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    cancel.Cancel("SIGTERM");
  });
  const auto start = std::chrono::steady_clock::now();
  HttpRequest request;
  request.url = server.url("/big?sig=secret");
  Result<HttpResponse> response = client.Send(request);
  const auto took = std::chrono::steady_clock::now() - start;
  canceler.join();
  ASSERT_FALSE(response.ok());
  EXPECT_EQ(response.status().code(), StatusCode::kCanceled);
  EXPECT_NE(response.status().message().find("GET http://127.0.0.1"), std::string::npos);
  EXPECT_NE(response.status().message().find("canceled (SIGTERM)"), std::string::npos)
      << response.status().message();
  EXPECT_EQ(response.status().message().find("secret"), std::string::npos);
  EXPECT_LT(took, kDefaultStallTimeout / 4);

  // Once canceled, nothing is sent, retried or waited for.
  NoSleep sleeper;
  int built = 0;
  Result<HttpResponse> again = client.SendWithRetry(
      [&]() -> Result<HttpRequest> {
        ++built;
        return request;
      },
      Fast(&sleeper));
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.status().code(), StatusCode::kCanceled);
  EXPECT_EQ(built, 1);
  EXPECT_TRUE(sleeper.slept.empty());
  EXPECT_EQ(server.requests().size(), 1u);
}

TEST(HttpClientTest, UrlsAndDates) {
  EXPECT_EQ(UriEncode("a b/c+d~", true), "a%20b/c%2Bd~");
  EXPECT_EQ(UriEncode("a/b", false), "a%2Fb");
  EXPECT_EQ(UriDecode("a%20b%2f"), "a b/");
  ParsedUrl u;
  ASSERT_TRUE(ParseUrl("https://host:8443/p/q?x=1#frag", &u));
  EXPECT_EQ(u.host, "host:8443");
  EXPECT_EQ(u.path, "/p/q");
  EXPECT_EQ(u.query, "x=1");
  EXPECT_FALSE(ParseUrl("ftp://x/y", &u));
  WallTime t = WallTime(std::chrono::seconds(1800000000));
  EXPECT_EQ(HttpDate(t), "Fri, 15 Jan 2027 08:00:00 GMT");
  WallTime back;
  ASSERT_TRUE(ParseHttpDate(HttpDate(t), &back));
  EXPECT_EQ(back, t);
}

}  // namespace
}  // namespace trainrun
