#include "server/http_server.h"

#include <httplib.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <mutex>

#include "core/error.h"
#include "server/answer_text.h"
#include "server/api_request.h"
#include "server/chat_page.h"
#include "server/guarded_http_server.h"
#include "server/openai_format.h"
#include "server/server_metrics.h"
#include "tokenizer/chat_template.h"

namespace hlwq::server {

namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

// How long a streamed answer waits for a token before it writes an SSE comment, which finds out
// whether the client is still there while its request waits in the queue.
constexpr std::chrono::milliseconds kKeepAliveInterval{1000};
// How often a whole (not streamed) answer looks whether its client is still connected.
constexpr std::chrono::milliseconds kConnectionCheckInterval{200};
// OpenAI's default for /v1/completions when max_tokens is not given.
constexpr int64_t kDefaultCompletionTokens = 16;
constexpr size_t kMaxBodyBytes = 16 << 20;
// Room for a request's line and headers beside its body.
constexpr size_t kMaxHeaderBytes = 1 << 20;

int64_t unix_seconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

void send_json(httplib::Response& response, int status, const json& body) {
  response.status = status;
  response.set_content(dump_json(body), "application/json");
}

void send_error(httplib::Response& response, const ApiError& error) { send_json(response, error.status, error.body()); }

// The prompt of one request, tokenized, with what its answer needs.
struct PreparedPrompt {
  std::vector<int32_t> tokens;
  SamplingRequest sampling;
  bool chat = false;
};

}  // namespace

struct HttpServer::State {
  State(BatchScheduler& scheduler_in, const Tokenizer& tokenizer_in, HttpServerOptions options_in)
      : scheduler(scheduler_in), tokenizer(tokenizer_in), options(std::move(options_in)),
        id_prefix(std::to_string(std::chrono::duration_cast<std::chrono::microseconds>(
                                     std::chrono::system_clock::now().time_since_epoch())
                                     .count())) {}

  BatchScheduler& scheduler;
  const Tokenizer& tokenizer;
  HttpServerOptions options;
  std::string id_prefix;
  std::atomic<int64_t> next_id{0};
  ServerMetrics metrics;
  GuardedHttpServer http;
  int bound_port = 0;
  std::atomic<bool> draining{false};
  // Generation answers not yet completely sent; the server stops only when none is left.
  std::mutex answers_mutex;
  std::condition_variable answers_done;
  int64_t open_answers = 0;

  void open_answer() {
    std::lock_guard lock(answers_mutex);
    ++open_answers;
  }
  void close_answer() {
    {
      std::lock_guard lock(answers_mutex);
      --open_answers;
    }
    answers_done.notify_all();
  }

  AnswerHeader new_header(bool chat) {
    return AnswerHeader{std::string(chat ? "chatcmpl-" : "cmpl-") + id_prefix + "-" + std::to_string(next_id++),
                        options.model_name, unix_seconds()};
  }

  RequestLimits limits() const { return RequestLimits{scheduler.context_length()}; }

  void install_routes();
  void answer(const std::string& endpoint, PreparedPrompt prompt, httplib::Response& response);
  void answer_whole(const std::string& endpoint, const std::shared_ptr<Generation>& generation, PreparedPrompt prompt,
                    httplib::Response& response);
  void answer_streamed(const std::string& endpoint, const std::shared_ptr<Generation>& generation,
                       PreparedPrompt prompt, httplib::Response& response);
  void record_answer(const Generation& generation) {
    if (const auto first = generation.first_token_time()) {
      metrics.record_time_to_first_token(std::chrono::duration<double>(*first - generation.submitted()).count());
    }
    metrics.sample_tokens(scheduler.counts().tokens_generated_total);
  }
};

void HttpServer::State::install_routes() {
  http.set_payload_max_length(kMaxBodyBytes);
  // httplib's own limit is for a Content-Length; this one also bounds chunked bodies and headers.
  http.set_request_max_bytes(kMaxBodyBytes + kMaxHeaderBytes);
  http.set_request_timeout(options.request_timeout);
  // httplib's default is SO_REUSEPORT, with which a second server on the same port starts without a
  // word and the kernel splits the connections between the two; SO_REUSEADDR alone makes that a
  // clear "cannot listen" while still allowing a restart over connections in TIME_WAIT.
  http.set_socket_options([](socket_t socket) {
    int yes = 1;
    ::setsockopt(socket, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  });
  const size_t threads = options.http_threads;
  http.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  http.set_pre_routing_handler([this](const httplib::Request& request, httplib::Response& response) {
    if (options.api_key.empty() || request.path.rfind("/v1/", 0) != 0) return httplib::Server::HandlerResponse::Unhandled;
    if (request.get_header_value("Authorization") == "Bearer " + options.api_key) {
      return httplib::Server::HandlerResponse::Unhandled;
    }
    const bool given = request.has_header("Authorization");
    send_error(response, ApiError{401, given ? "the API key is not the right one" : "an API key is required (Authorization: Bearer KEY)",
                                  "authentication_error", "invalid_api_key"});
    // The label is one of the endpoints, never the raw path (which could break the metrics text).
    const bool known = request.path == "/v1/chat/completions" || request.path == "/v1/completions" ||
                       request.path == "/v1/models";
    metrics.count_request(known ? request.path : "other", 401);
    return httplib::Server::HandlerResponse::Handled;
  });
  http.set_error_handler([this](const httplib::Request& request, httplib::Response& response) {
    // Only answers that have no body yet (httplib's own 404, 413, ...) get an OpenAI-style one.
    if (!response.body.empty() || response.is_chunked_content_provider_) return;
    // A request cut short (too large, or too slow to arrive) gets the status that says why, and its
    // connection closes after the answer.
    if (GuardedHttpServer::request_too_large()) {
      response.status = 413;
    } else if (GuardedHttpServer::request_timed_out()) {
      response.status = 408;
    }
    if (GuardedHttpServer::request_too_large() || GuardedHttpServer::request_timed_out()) {
      response.set_header("Connection", "close");
    }
    const std::string message =
        response.status == 404   ? "no such endpoint: " + request.method + " " + request.path
        : response.status == 413 ? "the request body is too large (at most " + std::to_string(kMaxBodyBytes >> 20) + " MiB)"
        : response.status == 408
            ? concat("the request did not arrive whole within ", options.request_timeout.count() / 1000.0, " s")
            : "the request failed";
    const std::string code = response.status == 413   ? "request_too_large"
                             : response.status == 408 ? "request_timeout"
                                                      : "";
    send_json(response, response.status, ApiError{response.status, message, "invalid_request_error", code}.body());
  });
  http.set_exception_handler([](const httplib::Request&, httplib::Response& response, std::exception_ptr error) {
    std::string message = "internal error";
    try {
      std::rethrow_exception(error);
    } catch (const std::exception& caught) {
      message = caught.what();
    } catch (...) {
    }
    send_error(response, ApiError{500, message, "server_error", "internal_error"});
  });

  http.Get("/", [](const httplib::Request&, httplib::Response& response) {
    response.set_content(std::string(chat_page_html()), "text/html; charset=utf-8");
  });
  http.Get("/health", [this](const httplib::Request&, httplib::Response& response) {
    if (draining) {
      send_json(response, 503, {{"status", "shutting down"}});
    } else {
      send_json(response, 200, {{"status", "ok"}});
    }
  });
  http.Get("/metrics", [this](const httplib::Request&, httplib::Response& response) {
    response.set_content(metrics.render(scheduler.counts()), "text/plain; version=0.0.4");
  });
  http.Get("/v1/models", [this](const httplib::Request&, httplib::Response& response) {
    send_json(response, 200,
              {{"object", "list"},
               {"data", json::array({{{"id", options.model_name}, {"object", "model"}, {"created", unix_seconds()},
                                      {"owned_by", "hlwq"}, {"context_length", scheduler.context_length()}}})}});
    metrics.count_request("/v1/models", 200);
  });
  http.Post("/v1/chat/completions", [this](const httplib::Request& request, httplib::Response& response) {
    const std::string endpoint = "/v1/chat/completions";
    auto parsed = parse_chat_request(request.body, limits());
    if (auto* error = std::get_if<ApiError>(&parsed)) {
      metrics.count_request(endpoint, error->status);
      return send_error(response, *error);
    }
    ChatRequest& chat = std::get<ChatRequest>(parsed);
    PreparedPrompt prompt{{}, std::move(chat.sampling), true};
    try {
      if (tokenizer.chat_template().empty()) fail("the model has no chat template; use /v1/completions");
      // The rendered template holds the BOS text itself where the model wants one.
      prompt.tokens = tokenizer.encode(apply_chat_template(tokenizer, chat.messages, true), false);
    } catch (const Error& error) {
      metrics.count_request(endpoint, 400);
      return send_error(response, ApiError{400, error.what(), "invalid_request_error", "invalid_value"});
    }
    answer(endpoint, std::move(prompt), response);
  });
  http.Post("/v1/completions", [this](const httplib::Request& request, httplib::Response& response) {
    const std::string endpoint = "/v1/completions";
    auto parsed = parse_completion_request(request.body, limits());
    if (auto* error = std::get_if<ApiError>(&parsed)) {
      metrics.count_request(endpoint, error->status);
      return send_error(response, *error);
    }
    CompletionRequest& completion = std::get<CompletionRequest>(parsed);
    PreparedPrompt prompt{{}, std::move(completion.sampling), false};
    // As `hlwq run --raw`: the text as it is, with BOS where the tokenizer adds one.
    prompt.tokens = tokenizer.encode(completion.prompt, tokenizer.adds_bos_by_default());
    if (prompt.tokens.empty()) {
      metrics.count_request(endpoint, 400);
      return send_error(response, ApiError{400, "the prompt tokenizes to nothing", "invalid_request_error", "invalid_value"});
    }
    answer(endpoint, std::move(prompt), response);
  });
}

void HttpServer::State::answer(const std::string& endpoint, PreparedPrompt prompt, httplib::Response& response) {
  const int64_t context = scheduler.context_length();
  const int64_t prompt_tokens = static_cast<int64_t>(prompt.tokens.size());
  if (auto error = check_fits_context(prompt_tokens, prompt.sampling.max_tokens, context)) {
    metrics.count_request(endpoint, error->status);
    return send_error(response, *error);
  }
  if (draining) {
    metrics.count_request(endpoint, 503);
    return send_error(response, ApiError{503, "the server is shutting down", "server_error", "shutting_down"});
  }
  GenerationRequest request;
  request.prompt = prompt.tokens;
  request.max_new_tokens = prompt.sampling.max_tokens.value_or(
      prompt.chat ? context - prompt_tokens : std::min(kDefaultCompletionTokens, context - prompt_tokens));
  request.sampler = prompt.sampling.sampler;
  request.stop_ids = options.stop_ids;
  std::shared_ptr<Generation> generation = scheduler.submit(std::move(request));
  if (!generation) {
    const bool shutting_down = draining.load();
    metrics.count_request(endpoint, shutting_down ? 503 : 429);
    return send_error(response, shutting_down
                                    ? ApiError{503, "the server is shutting down", "server_error", "shutting_down"}
                                    : ApiError{429, "the server is busy: every slot is generating and the queue is full",
                                               "server_busy", "queue_full"});
  }
  if (prompt.sampling.stream) {
    answer_streamed(endpoint, generation, std::move(prompt), response);
  } else {
    answer_whole(endpoint, generation, std::move(prompt), response);
  }
}

void HttpServer::State::answer_whole(const std::string& endpoint, const std::shared_ptr<Generation>& generation,
                                     PreparedPrompt prompt, httplib::Response& response) {
  open_answer();
  AnswerText text(tokenizer, prompt.sampling.stop);
  std::string content;
  size_t seen = 0;
  std::optional<GenerationEnd> end;
  bool client_gone = false;
  Clock::time_point next_check = Clock::now() + kConnectionCheckInterval;
  while (!end) {
    Generation::Progress progress = generation->wait(seen, kConnectionCheckInterval);
    seen += progress.tokens.size();
    for (const int32_t token : progress.tokens) {
      content += text.push(token);
      if (text.stopped()) generation->cancel();
    }
    end = progress.end;
    // A client that went away cancels its generation: its slot is free at the next step.
    if (!end && !client_gone && Clock::now() >= next_check) {
      next_check = Clock::now() + kConnectionCheckInterval;
      if (!GuardedHttpServer::client_connected()) {
        client_gone = true;
        generation->cancel();
      }
    }
  }
  content += text.finish();
  record_answer(*generation);
  if (client_gone) {
    // Nobody reads this answer; 499 (nginx's "client closed request") counts it in the metrics.
    metrics.count_request(endpoint, 499);
    send_error(response, ApiError{499, "the client closed the connection", "invalid_request_error", "client_closed"});
  } else if (*end == GenerationEnd::failed) {
    metrics.count_request(endpoint, 500);
    send_error(response, ApiError{500, "generation failed: " + generation->error(), "server_error", "generation_failed"});
  } else {
    const FinishReason finish = *end == GenerationEnd::length && !text.stopped() ? FinishReason::length : FinishReason::stop;
    const AnswerHeader header = new_header(prompt.chat);
    const int64_t prompt_tokens = static_cast<int64_t>(prompt.tokens.size());
    send_json(response, 200,
              prompt.chat ? chat_completion_json(header, content, finish, prompt_tokens, text.tokens())
                          : text_completion_json(header, content, finish, prompt_tokens, text.tokens()));
    metrics.count_request(endpoint, 200);
  }
  close_answer();
}

void HttpServer::State::answer_streamed(const std::string& endpoint, const std::shared_ptr<Generation>& generation,
                                        PreparedPrompt prompt, httplib::Response& response) {
  // What the content provider, called again and again on this worker thread, carries along.
  struct Stream {
    std::shared_ptr<Generation> generation;
    AnswerText text;
    AnswerHeader header;
    PreparedPrompt prompt;
    size_t seen = 0;
    bool opened = false;
    bool delivered = false;  // every event up to [DONE] was written
  };
  auto stream = std::make_shared<Stream>(Stream{generation, AnswerText(tokenizer, prompt.sampling.stop),
                                                new_header(prompt.chat), std::move(prompt)});
  open_answer();
  response.set_header("Cache-Control", "no-cache");
  response.set_header("X-Accel-Buffering", "no");
  response.set_chunked_content_provider(
      "text/event-stream",
      [stream](size_t, httplib::DataSink& sink) {
        const bool chat = stream->prompt.chat;
        const auto write = [&sink](const std::string& text) { return sink.write(text.data(), text.size()); };
        const auto piece = [&](const std::string& text, std::optional<FinishReason> finish) {
          return sse_event(chat ? chat_chunk_json(stream->header, finish ? json::object() : json{{"content", text}}, finish)
                                : text_chunk_json(stream->header, text, finish));
        };
        if (!stream->opened) {
          stream->opened = true;
          if (chat && !write(sse_event(chat_chunk_json(stream->header, {{"role", "assistant"}, {"content", ""}},
                                                       std::nullopt)))) {
            return false;
          }
        }
        Generation::Progress progress = stream->generation->wait(stream->seen, kKeepAliveInterval);
        stream->seen += progress.tokens.size();
        std::string shown;
        for (const int32_t token : progress.tokens) {
          shown += stream->text.push(token);
          if (stream->text.stopped()) {
            stream->generation->cancel();
            progress.end = GenerationEnd::stop_id;
            break;
          }
        }
        if (!progress.end) {
          // Nothing new: a comment line, which clients ignore, tells whether the client is still there.
          // (An empty write would end httplib's chunked stream, so a token whose text is held back
          // writes nothing.)
          if (progress.tokens.empty()) return write(": keep-alive\n\n");
          return shown.empty() || write(piece(shown, std::nullopt));
        }
        if (*progress.end == GenerationEnd::failed) {
          write(sse_event(ApiError{500, "generation failed: " + stream->generation->error(), "server_error",
                                   "generation_failed"}.body()));
        } else {
          shown += stream->text.finish();
          if (!shown.empty() && !write(piece(shown, std::nullopt))) return false;
          const FinishReason finish = *progress.end == GenerationEnd::length && !stream->text.stopped()
                                          ? FinishReason::length
                                          : FinishReason::stop;
          if (!write(piece("", finish))) return false;
          if (stream->prompt.sampling.include_usage &&
              !write(sse_event(usage_chunk_json(stream->header, chat, static_cast<int64_t>(stream->prompt.tokens.size()),
                                                stream->text.tokens())))) {
            return false;
          }
        }
        if (!write(sse_done())) return false;
        stream->delivered = true;
        sink.done();
        return true;
      },
      [this, stream, endpoint](bool success) {
        // A client that went away cancels its generation: its slot is free at the next step.
        stream->generation->cancel();
        record_answer(*stream->generation);
        // A client that closes the connection as soon as it reads [DONE] (before httplib's last,
        // empty chunk) has its whole answer: 200, not a hang-up.
        metrics.count_request(endpoint, success || stream->delivered ? 200 : 499);
        close_answer();
      });
}

HttpServer::HttpServer(BatchScheduler& scheduler, const Tokenizer& tokenizer, HttpServerOptions options)
    : state_(std::make_unique<State>(scheduler, tokenizer, std::move(options))) {
  state_->install_routes();
}

HttpServer::~HttpServer() = default;

void HttpServer::bind() {
  State& state = *state_;
  if (state.options.port == 0) {
    state.bound_port = state.http.bind_to_any_port(state.options.host);
    check(state.bound_port > 0, "cannot listen on ", state.options.host, " (any port)");
  } else {
    check(state.http.bind_to_port(state.options.host, state.options.port), "cannot listen on ", state.options.host,
          ":", state.options.port, " (in use, or not an address of this machine)");
    state.bound_port = state.options.port;
  }
}

int HttpServer::port() const { return state_->bound_port; }

void HttpServer::serve() { state_->http.listen_after_bind(); }

void HttpServer::stop_after_draining() {
  State& state = *state_;
  state.draining = true;
  state.scheduler.shut_down();
  state.scheduler.wait_until_idle();
  {
    std::unique_lock lock(state.answers_mutex);
    state.answers_done.wait(lock, [&] { return state.open_answers == 0; });
  }
  state.http.stop();
}

}  // namespace hlwq::server
