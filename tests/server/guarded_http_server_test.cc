// GuardedHttpServer on a loopback port with plain routes, through raw sockets: keep-alive and
// pipelined requests still work on its own connection loop; a request that trickles in a byte at a
// time is cut at the request timeout (408, connection closed) while another client is served; a
// chunked body past the byte cap and a Content-Length past httplib's payload limit get 413, which the
// client reads whole (no reset) although it was still sending; a handler sees client_connected()
// turn false soon after its client hangs up.
#include "server/guarded_http_server.h"

#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>

#include "server/loopback_client.h"

namespace hlwq::server {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

double seconds_since(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

// A server on a free loopback port, serving on its own thread until destroyed.
struct Running {
  Running(milliseconds request_timeout, size_t max_bytes) {
    server.set_request_timeout(request_timeout);
    server.set_request_max_bytes(max_bytes);
    server.set_payload_max_length(32 << 10);
    server.set_keep_alive_timeout(1);
    server.set_error_handler([](const httplib::Request&, httplib::Response& response) {
      if (GuardedHttpServer::request_too_large()) response.status = 413;
      if (GuardedHttpServer::request_timed_out()) response.status = 408;
    });
    server.Get("/hello", [](const httplib::Request&, httplib::Response& response) {
      response.set_content("hello", "text/plain");
    });
    server.Post("/size", [](const httplib::Request& request, httplib::Response& response) {
      response.set_content(std::to_string(request.body.size()), "text/plain");
    });
    server.Get("/wait", [this](const httplib::Request&, httplib::Response& response) {
      const Clock::time_point start = Clock::now();
      while (GuardedHttpServer::client_connected() && seconds_since(start) < 10) {
        std::this_thread::sleep_for(milliseconds(20));
      }
      gone_at = Clock::now();
      saw_hang_up = !GuardedHttpServer::client_connected();
      response.set_content("late", "text/plain");
    });
    port = server.bind_to_any_port("127.0.0.1");
    thread = std::thread([this] { server.listen_after_bind(); });
    while (!server.is_running()) std::this_thread::sleep_for(milliseconds(5));
  }
  ~Running() {
    server.stop();
    thread.join();
  }

  GuardedHttpServer server;
  int port = 0;
  std::thread thread;
  std::atomic<bool> saw_hang_up{false};
  Clock::time_point gone_at;
};

int connect_to(int port) {
  const int sock = loopback::connect_to(port);
  EXPECT_GE(sock, 0);
  return sock;
}

using loopback::send_all;

// Everything the server sends until it closes the connection (or `limit` passes).
std::string read_until_closed(int sock, milliseconds limit = milliseconds(10000)) {
  return loopback::read_until_closed(sock, limit);
}

std::string round_trip(int port, const std::string& request) {
  const int sock = connect_to(port);
  EXPECT_TRUE(send_all(sock, request));
  std::string answer = read_until_closed(sock);
  ::close(sock);
  return answer;
}

size_t count_of(const std::string& text, const std::string& part) {
  size_t count = 0;
  for (size_t at = text.find(part); at != std::string::npos; at = text.find(part, at + 1)) ++count;
  return count;
}

TEST(ServeGuardedHttp, KeepAliveAndPipelinedRequestsAreAnswered) {
  Running running(milliseconds(2000), 1 << 20);
  // Two requests in one write; the second closes the connection after its answer.
  const std::string answer = round_trip(running.port,
                                      "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"
                                      "POST /size HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nConnection: close\r\n\r\n12345");
  ASSERT_FALSE(answer.empty());
  EXPECT_EQ(count_of(answer, "HTTP/1.1 200 OK"), 2u) << answer;
  EXPECT_NE(answer.find("hello"), std::string::npos) << answer;
  EXPECT_EQ(answer.substr(answer.size() - 1), "5") << answer;
}

TEST(ServeGuardedHttp, TrickledRequestIsCutAtTheTimeoutWhileOthersAreServed) {
  Running running(milliseconds(600), 1 << 20);
  const int slow = connect_to(running.port);
  ASSERT_TRUE(send_all(slow, "GET /hello HTTP/1.1\r\nHost: x\r\nX-Slow: "));
  const Clock::time_point start = Clock::now();
  std::string answer;
  bool served_other = false;
  double closed_after = -1;
  char buffer[1024];
  while (seconds_since(start) < 5 && closed_after < 0) {
    (void)::send(slow, "a", 1, MSG_NOSIGNAL);  // a byte every 50 ms: each wait for bytes is short
    pollfd entry{slow, POLLIN, 0};
    if (::poll(&entry, 1, 50) > 0) {
      const ssize_t count = ::recv(slow, buffer, sizeof(buffer), 0);
      if (count <= 0) {
        closed_after = seconds_since(start);
      } else {
        answer.append(buffer, static_cast<size_t>(count));
      }
    }
    if (!served_other && seconds_since(start) > 0.2) {
      const Clock::time_point asked = Clock::now();
      const std::string other = round_trip(running.port, "GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
      EXPECT_NE(other.find("HTTP/1.1 200 OK"), std::string::npos) << other;
      EXPECT_LT(seconds_since(asked), 1.0);
      served_other = true;
    }
  }
  ::close(slow);
  EXPECT_TRUE(served_other);
  EXPECT_EQ(answer.rfind("HTTP/1.1 408", 0), 0u) << answer;
  EXPECT_GT(closed_after, 0.5);
  EXPECT_LT(closed_after, 2.0);
}

TEST(ServeGuardedHttp, SilentRequestIsCutAtTheTimeout) {
  Running running(milliseconds(400), 1 << 20);
  const int sock = connect_to(running.port);
  const Clock::time_point start = Clock::now();
  ASSERT_TRUE(send_all(sock, "POST /size HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n1234"));
  const std::string answer = read_until_closed(sock);
  ::close(sock);
  EXPECT_EQ(answer.rfind("HTTP/1.1 408", 0), 0u) << answer;
  EXPECT_GT(seconds_since(start), 0.35);
  EXPECT_LT(seconds_since(start), 2.0);
}

TEST(ServeGuardedHttp, TooLargeBodiesAre413AndTheClientReadsIt) {
  Running running(milliseconds(5000), 64 << 10);
  // Chunked: httplib has no limit of its own for it.
  const int sock = connect_to(running.port);
  ASSERT_TRUE(send_all(sock, "POST /size HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"));
  const std::string chunk = "4000\r\n" + std::string(0x4000, 'a') + "\r\n";
  for (int index = 0; index < 64; ++index) {
    if (!send_all(sock, chunk)) break;  // the server may have answered and closed its reading side
  }
  (void)send_all(sock, "0\r\n\r\n");
  std::string answer = read_until_closed(sock);
  ::close(sock);
  EXPECT_EQ(answer.rfind("HTTP/1.1 413", 0), 0u) << answer.substr(0, 200);
  // A Content-Length past the payload limit (httplib's own 413), sent whole: the client still reads
  // the answer rather than a reset connection.
  const std::string body(4 << 20, 'b');
  answer = round_trip(running.port,
                    "POST /size HTTP/1.1\r\nHost: x\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body);
  EXPECT_EQ(answer.rfind("HTTP/1.1 413", 0), 0u) << answer.substr(0, 200);
  // Under both limits the server answers as before.
  answer = round_trip(running.port, "POST /size HTTP/1.1\r\nHost: x\r\nContent-Length: 3000\r\nConnection: close\r\n\r\n" +
                                      std::string(3000, 'c'));
  ASSERT_EQ(answer.rfind("HTTP/1.1 200 OK", 0), 0u) << answer.substr(0, 200);
  EXPECT_EQ(answer.substr(answer.size() - 4), "3000");
}

TEST(ServeGuardedHttp, HandlerSeesItsClientHangUp) {
  EXPECT_TRUE(GuardedHttpServer::client_connected());  // not a connection's thread
  Running running(milliseconds(2000), 1 << 20);
  const int sock = connect_to(running.port);
  ASSERT_TRUE(send_all(sock, "GET /wait HTTP/1.1\r\nHost: x\r\n\r\n"));
  std::this_thread::sleep_for(milliseconds(300));
  EXPECT_FALSE(running.saw_hang_up);  // still connected: the handler waits
  const Clock::time_point hung_up = Clock::now();
  ::close(sock);
  while (!running.saw_hang_up && seconds_since(hung_up) < 5) std::this_thread::sleep_for(milliseconds(10));
  ASSERT_TRUE(running.saw_hang_up);
  EXPECT_LT(std::chrono::duration<double>(running.gone_at - hung_up).count(), 1.0);
}

}  // namespace
}  // namespace hlwq::server
