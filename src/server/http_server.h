// The OpenAI-compatible HTTP front of a BatchScheduler (cpp-httplib): POST /v1/chat/completions,
// POST /v1/completions, GET /v1/models, GET /health, GET /metrics and the chat page at GET /.
// Each request is answered on one of httplib's worker threads, which tokenizes the prompt, queues
// it on the scheduler and writes the tokens back as they come (server-sent events when streaming).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "server/batch_scheduler.h"
#include "tokenizer/tokenizer.h"

namespace hlwq::server {

struct HttpServerOptions {
  std::string host = "127.0.0.1";
  int port = 8080;              // 0: any free port (port() says which)
  std::string api_key;          // empty: no authentication; else /v1/ wants "Authorization: Bearer KEY"
  std::string model_name;       // what /v1/models lists and answers carry
  std::vector<int32_t> stop_ids;  // end-of-sequence ids of the model
  size_t http_threads = 8;      // httplib workers: at least the slots plus the queue, so all can wait
  // A request's line, headers and body must arrive within this time of its first byte (a slow
  // client holds a worker thread at most this long); past it the answer is 408.
  std::chrono::milliseconds request_timeout{20000};
};

class HttpServer {
 public:
  // `scheduler` and `tokenizer` must outlive the server.
  HttpServer(BatchScheduler& scheduler, const Tokenizer& tokenizer, HttpServerOptions options);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds the address; throws hlwq::Error when it cannot.
  void bind();
  int port() const;
  // Serves until stop_after_draining() finishes; call after bind().
  void serve();
  // New generation requests get 503 from now on; those running and queued finish and their answers
  // are sent, then serve() returns. Safe to call from any thread.
  void stop_after_draining();

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace hlwq::server
