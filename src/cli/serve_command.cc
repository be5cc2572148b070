// `hlwq serve -m DIR [--host 127.0.0.1] [--port 8080] [--backend cpu|cuda] [--parallel N] [--ctx C]
// [--queue Q] [--api-key KEY] [--threads T] [--read-timeout S]`: an OpenAI-compatible HTTP server (docs/SERVE.md).
// --parallel requests are generated at once in one batched decode (continuous batching); up to
// --queue more wait for a slot, and beyond that a request gets 429. SIGINT or SIGTERM: new
// requests get 503, the running and queued ones finish, then the process exits 0.
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <memory>
#include <thread>

#include "cli/commands.h"
#include "cli/options.h"
#include "core/interrupt.h"
#include "engine/generate.h"
#include "ops/cpu/cpu_backend.h"
#include "server/batch_scheduler.h"
#include "server/http_server.h"
#include "tokenizer/tokenizer.h"

namespace hlwq::cli {

void add_serve_command(CLI::App& app) {
  struct Flags {
    std::string model, host = "127.0.0.1", backend = "cpu", api_key;
    int port = 8080, threads = 0;
    int64_t parallel = 4, context = 0, queue = 64, prefill_chunk = 256;
    double read_timeout = 20;
  };
  auto flags = std::make_shared<Flags>();
  CLI::App* command = app.add_subcommand("serve", "OpenAI-compatible HTTP server with continuous batching");
  command->add_option("-m,--model", flags->model, "model folder (any format hlwq runs)")->required();
  command->add_option("--host", flags->host, "address to listen on")->capture_default_str();
  command->add_option("--port", flags->port, "port to listen on (0: any free port)")->capture_default_str();
  command->add_option("--backend", flags->backend, "where the model runs: cpu or cuda")->capture_default_str();
  command->add_option("--parallel", flags->parallel, "requests generated at once (KV-cache slots)")->capture_default_str();
  command->add_option("--ctx", flags->context, "context length of each slot (default: the model's, at most 4096)");
  command->add_option("--queue", flags->queue, "requests that may wait for a slot before 429")->capture_default_str();
  command->add_option("--prefill-chunk", flags->prefill_chunk,
                      "most prompt tokens read in one step per request, so that a long prompt does not stall the "
                      "others (0: whole prompts)")
      ->capture_default_str();
  command->add_option("--api-key", flags->api_key, "require Authorization: Bearer KEY on /v1/");
  command->add_option("--threads", flags->threads, "worker threads of the model (default: all cores)");
  command->add_option("--read-timeout", flags->read_timeout,
                      "seconds a request (line, headers and body) may take to arrive from its first byte")
      ->capture_default_str();
  command->callback([flags] {
    check_model_folder(flags->model);
    check(flags->parallel >= 1 && flags->parallel <= 256, "--parallel must be between 1 and 256, got ", flags->parallel);
    check(flags->prefill_chunk >= 0, "--prefill-chunk must be >= 0, got ", flags->prefill_chunk);
    check(flags->queue >= 0 && flags->queue <= 65536, "--queue must be between 0 and 65536, got ", flags->queue);
    check(flags->port >= 0 && flags->port <= 65535, "--port must be between 0 and 65535, got ", flags->port);
    check(flags->context >= 0, "--ctx must be positive, got ", flags->context);
    check(flags->read_timeout >= 0.1 && flags->read_timeout <= 3600, "--read-timeout must be between 0.1 and 3600 s, got ",
          flags->read_timeout);
    const Tokenizer tokenizer = Tokenizer::from_folder(flags->model);
    ThreadPool pool(flags->threads);
    const std::unique_ptr<Backend> backend = parse_backend_kind(flags->backend) == BackendKind::cpu
                                                 ? std::make_unique<CpuBackend>(pool)
                                                 : make_backend(BackendKind::cuda, flags->threads);
    const Model model = Model::load(flags->model, pool);
    const int64_t model_context = model.config().max_position_embeddings;
    const int64_t context = flags->context > 0 ? flags->context : std::min<int64_t>(model_context, 4096);
    check(context >= 2, "--ctx must be at least 2, got ", context);
    check(context <= model_context, "--ctx ", context, " is beyond the model's ", model_context, " positions");
    RunnerOptions runner_options;
    runner_options.context_length = context;
    runner_options.sequences = flags->parallel;
    ModelRunner runner(model, *backend, runner_options);

    std::ifstream config_file(std::filesystem::path(flags->model) / "config.json");
    const nlohmann::json config = nlohmann::json::parse(config_file, nullptr, false);
    server::HttpServerOptions options;
    options.host = flags->host;
    options.port = flags->port;
    options.api_key = flags->api_key;
    options.request_timeout = std::chrono::milliseconds(static_cast<int64_t>(flags->read_timeout * 1000));
    std::filesystem::path folder = std::filesystem::path(flags->model).lexically_normal();
    if (!folder.has_filename()) folder = folder.parent_path();  // "models/demo/"
    options.model_name = folder.filename().string();
    options.stop_ids = end_of_sequence_ids(config);
    for (int32_t id = 0; id < tokenizer.vocab_size(); ++id) {
      if (tokenizer.is_end_of_generation(id)) options.stop_ids.push_back(id);
    }
    // Every request that may run or wait holds a worker while it is answered, plus a few for
    // /health, /metrics and refusals.
    options.http_threads = static_cast<size_t>(flags->parallel + flags->queue + 8);

    server::BatchScheduler scheduler(runner, static_cast<size_t>(flags->queue), flags->prefill_chunk);
    server::HttpServer http(scheduler, tokenizer, options);
    // A client that goes away mid-answer must not kill the server with SIGPIPE.
    std::signal(SIGPIPE, SIG_IGN);
    http.bind();
    std::fprintf(stderr, "hlwq: serving %s on http://%s:%d (%lld slots of %lld tokens, queue %lld, backend %s)\n",
                 options.model_name.c_str(), flags->host.c_str(), http.port(), static_cast<long long>(flags->parallel),
                 static_cast<long long>(context), static_cast<long long>(flags->queue), flags->backend.c_str());
    std::fflush(stderr);
    // The signal handler only sets a flag; this thread turns it into a drain and stop.
    std::atomic<bool> served{false};
    std::thread watcher([&] {
      while (!served && !interrupt_requested()) std::this_thread::sleep_for(std::chrono::milliseconds(100));
      if (served) return;
      std::fprintf(stderr, "hlwq: stopping: finishing the running requests\n");
      http.stop_after_draining();
    });
    http.serve();
    served = true;
    watcher.join();
    std::fprintf(stderr, "hlwq: stopped\n");
  });
}

}  // namespace hlwq::cli
