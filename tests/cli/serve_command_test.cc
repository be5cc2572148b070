// `hlwq serve` as a process on a tiny model (tests/fixtures/engine/llama with a character
// tokenizer), through raw sockets: clients at once (whole and streamed answers, one that hangs up
// mid-answer) beside /health and /metrics, greedy answers equal whatever runs beside them; SIGTERM
// then drains and the process exits 0. The command runs its scheduler thread, httplib's workers, the
// model's pool and the thread that turns the signal into a drain; under ThreadSanitizer
// (scripts/test_sanitizers.sh tsan) it is the sanitized build, so a race among them fails the exit
// status here.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/file_writer.h"
#include "engine/engine_fixture.h"
#include "server/loopback_client.h"
#include "test_util.h"

namespace hlwq {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// The llama fixture with a tokenizer: printable ASCII one token per character (ids 0..94), and
// pieces no text encodes to for the rest of its 160 ids, so that every id decodes.
fs::path write_served_model(const fs::path& folder) {
  fs::create_directories(folder);
  for (const char* file : {"config.json", "model.safetensors"}) fs::copy_file(engine_fixture("llama") / file, folder / file);
  nlohmann::json vocab = nlohmann::json::object();
  for (int c = 32; c < 127; ++c) vocab[std::string(1, static_cast<char>(c))] = c - 32;
  for (int id = 95; id < 160; ++id) vocab["<" + std::to_string(id) + ">"] = id;
  const nlohmann::json tokenizer = {{"version", "1.0"},
                                    {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", nlohmann::json::array()}}}};
  write_text_file(folder / "tokenizer.json", tokenizer.dump());
  return folder;
}

// `hlwq serve -m MODEL --port 0 ...` with its stderr on a pipe; `port` once it listens.
class ServeProcess {
 public:
  explicit ServeProcess(const fs::path& model) {
    // Everything the child needs is made before fork(): between fork and exec it may only make
    // async-signal-safe calls.
    const std::string model_text = model.string();
    const char* argv[] = {"hlwq", "serve", "-m", model_text.c_str(), "--port", "0", "--parallel", "2",
                          "--threads", "2", nullptr};
    int pipe_ends[2];
    if (::pipe(pipe_ends) != 0) return;
    pid_ = ::fork();
    if (pid_ == 0) {
      ::dup2(pipe_ends[1], STDERR_FILENO);
      ::close(pipe_ends[0]);
      const int null = ::open("/dev/null", O_WRONLY);
      ::dup2(null, STDOUT_FILENO);
      ::execv(HLWQ_BINARY, const_cast<char* const*>(argv));
      ::_exit(127);
    }
    ::close(pipe_ends[1]);
    stderr_ = pipe_ends[0];
    // Slow under a sanitizer: loading and the first allocations take seconds there.
    const std::regex serving(R"(serving .* on http://127\.0\.0\.1:(\d+))");
    const Clock::time_point deadline = Clock::now() + std::chrono::seconds(120);
    std::smatch found;
    while (Clock::now() < deadline && read_stderr(milliseconds(100))) {
      if (std::regex_search(log_, found, serving)) {
        port = std::stoi(found[1]);
        return;
      }
    }
  }
  ~ServeProcess() {
    if (pid_ > 0 && !exited_) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    if (stderr_ >= 0) ::close(stderr_);
  }
  ServeProcess(const ServeProcess&) = delete;
  ServeProcess& operator=(const ServeProcess&) = delete;

  // SIGTERM, then the exit status (-1: still running after `limit`, 128 + N: killed by signal N).
  int terminate(std::chrono::seconds limit) {
    if (pid_ <= 0) return -1;
    ::kill(pid_, SIGTERM);
    const Clock::time_point deadline = Clock::now() + limit;
    int status = 0;
    while (Clock::now() < deadline) {
      read_stderr(milliseconds(20));
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        exited_ = true;
        while (read_stderr(milliseconds(0))) {
        }
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      }
    }
    return -1;
  }

  const std::string& log() const { return log_; }
  int port = 0;

 private:
  // Appends what stderr has within `wait`; false at its end.
  bool read_stderr(milliseconds wait) {
    pollfd entry{stderr_, POLLIN, 0};
    if (::poll(&entry, 1, static_cast<int>(wait.count())) <= 0) return true;
    char buffer[4096];
    const ssize_t count = ::read(stderr_, buffer, sizeof buffer);
    if (count <= 0) return false;
    log_.append(buffer, static_cast<size_t>(count));
    return true;
  }

  pid_t pid_ = -1;
  int stderr_ = -1;
  bool exited_ = false;
  std::string log_;
};

// The whole answer to one request on its own connection (closed by the server after it), or, with
// `hang_up_after` bytes, the first of them before the client closes the connection.
std::string exchange(int port, const std::string& method, const std::string& path, const std::string& body = "",
                     size_t hang_up_after = 0) {
  const int sock = loopback::connect_to(port);
  if (sock < 0) return "";
  const std::string request = method + " " + path + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" +
                              (body.empty() ? "" : "Content-Type: application/json\r\nContent-Length: " +
                                                       std::to_string(body.size()) + "\r\n") +
                              "\r\n" + body;
  std::string answer;
  if (loopback::send_all(sock, request)) {
    answer = loopback::read_until_closed(sock, std::chrono::seconds(300), hang_up_after);
  }
  ::close(sock);
  return answer;
}

std::string completion_body(int max_tokens, bool stream) {
  return nlohmann::json{{"prompt", "The cat sat on the"}, {"max_tokens", max_tokens}, {"temperature", 0}, {"stream", stream}}
      .dump();
}

// The generated text of a whole /v1/completions answer; the answer itself when it is not a 200.
std::string completion_text(const std::string& answer) {
  const size_t body = answer.find("\r\n\r\n");
  if (answer.rfind("HTTP/1.1 200", 0) != 0 || body == std::string::npos) return "not answered: " + answer;
  const nlohmann::json parsed = nlohmann::json::parse(answer.substr(body + 4), nullptr, false);
  if (parsed.is_discarded() || !parsed.contains("choices")) return "not a completion: " + answer;
  return parsed["choices"][0]["text"].get<std::string>();
}

TEST(ServeCommand, ConcurrentClientsThenSigtermDrainsAndExitsZero) {
  TemporaryFolder folder;
  ServeProcess server(write_served_model(folder.path() / "model"));
  ASSERT_GT(server.port, 0) << "hlwq serve did not start: " << server.log();
  const int port = server.port;
  const std::string alone = completion_text(exchange(port, "POST", "/v1/completions", completion_body(6, false)));
  ASSERT_EQ(alone.rfind("not ", 0), std::string::npos) << alone;

  // Two slots, five generating clients (two wait in the queue), one of them hanging up mid-stream,
  // and the health and metrics endpoints beside them.
  std::vector<std::string> whole(3), streamed(1), side(2);
  std::vector<std::thread> clients;
  for (size_t index = 0; index < whole.size(); ++index) {
    clients.emplace_back([&whole, index, port] {
      whole[index] = exchange(port, "POST", "/v1/completions", completion_body(6, false));
    });
  }
  clients.emplace_back([&streamed, port] {
    streamed[0] = exchange(port, "POST", "/v1/completions", completion_body(6, true));
  });
  clients.emplace_back([port] { exchange(port, "POST", "/v1/completions", completion_body(100, true), 1); });
  clients.emplace_back([&side, port] {
    side[0] = exchange(port, "GET", "/health");
    side[1] = exchange(port, "GET", "/metrics");
  });
  for (std::thread& client : clients) client.join();

  for (const std::string& answer : whole) EXPECT_EQ(completion_text(answer), alone);
  EXPECT_EQ(streamed[0].rfind("HTTP/1.1 200", 0), 0u) << streamed[0];
  EXPECT_NE(streamed[0].find("data: [DONE]"), std::string::npos) << streamed[0];
  EXPECT_NE(side[0].find("\"ok\""), std::string::npos) << side[0];
  EXPECT_NE(side[1].find("hlwq_requests_total"), std::string::npos) << side[1];

  EXPECT_EQ(server.terminate(std::chrono::seconds(120)), 0) << server.log();
  EXPECT_NE(server.log().find("hlwq: stopped"), std::string::npos) << server.log();
}

}  // namespace
}  // namespace hlwq
