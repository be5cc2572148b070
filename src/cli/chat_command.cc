// `hlwq chat -m DIR [-n 256] [--temp 0.7] [--seed S] [--ctx C] [--truncate] [--threads N]
// [--backend cpu|cuda]`: an
// interactive conversation on stdin/stdout with the model's chat template (ChatML, Qwen3,
// Llama-3 or Llama-3.1) and the history kept. The model is placed on the backend once (weights,
// a KV cache of --ctx positions, 4096 or the model's maximum if smaller by default, as llama.cpp's
// chat does); each turn re-runs the whole conversation as one prefill (simple; the cached prefix is
// not reused yet). A conversation that outgrows the context is an error, or with --truncate loses
// its oldest turns (for good: the history keeps what was sent).
#include <algorithm>
#include <cstdio>
#include <iostream>
#include <memory>
#include <string>
#include <unistd.h>

#include "cli/commands.h"
#include "cli/options.h"
#include "engine/generate.h"
#include "engine/model_runner.h"
#include "ops/cpu/cpu_backend.h"
#include "engine/prompt_truncation.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/chat_window.h"
#include "tokenizer/tokenizer.h"

namespace hlwq::cli {

void add_chat_command(CLI::App& app) {
  struct Flags {
    std::string model, system, backend = "cpu";
    int64_t max_new_tokens = 256, context = 0;
    int threads = 0;
    bool truncate = false;
    SamplerOptions sampler;
  };
  auto flags = std::make_shared<Flags>();
  flags->sampler.temperature = 0.7f;
  flags->sampler.top_p = 0.9f;
  CLI::App* command = app.add_subcommand("chat", "interactive chat with the model's chat template (reads stdin)");
  command->add_option("-m,--model", flags->model, "model folder (any format hlwq runs)")->required();
  command->add_option("--system", flags->system, "system message");
  command->add_option("-n,--max-new-tokens", flags->max_new_tokens, "tokens per reply")->capture_default_str();
  command->add_option("--temp", flags->sampler.temperature, "temperature (0: greedy)")->capture_default_str();
  command->add_option("--top-p", flags->sampler.top_p, "nucleus sampling mass")->capture_default_str();
  command->add_option("--seed", flags->sampler.seed, "sampling seed")->capture_default_str();
  command->add_option("--ctx", flags->context, "context length (default: 4096, or the model's maximum if smaller)");
  command->add_flag("--truncate", flags->truncate,
                    "drop the oldest turns (then the start of the newest message) when the conversation "
                    "and -n do not fit in the context");
  command->add_option("--threads", flags->threads, "worker threads (default: all cores)");
  command->add_option("--backend", flags->backend, "where the model runs: cpu or cuda")->capture_default_str();
  command->callback([flags] {
    check_model_folder(flags->model);
    const Tokenizer tokenizer = Tokenizer::from_folder(flags->model);
    ThreadPool pool(flags->threads);
    const std::unique_ptr<Backend> backend = parse_backend_kind(flags->backend) == BackendKind::cpu
                                                 ? std::make_unique<CpuBackend>(pool)
                                                 : make_backend(BackendKind::cuda, flags->threads);
    const Model model = Model::load(flags->model, pool);
    GenerateOptions options;
    options.max_new_tokens = flags->max_new_tokens;
    options.context_length =
        flags->context > 0 ? flags->context : std::min<int64_t>(4096, model.config().max_position_embeddings);
    options.sampler = flags->sampler;
    const int64_t room = prompt_room(model.config(), options);
    RunnerOptions runner_options;
    runner_options.context_length = options.context_length;
    runner_options.kv_cache_dtype = options.kv_cache_dtype;
    ModelRunner runner(model, *backend, runner_options);
    for (int32_t id = 0; id < tokenizer.vocab_size(); ++id) {
      if (tokenizer.is_end_of_generation(id)) options.stop_ids.push_back(id);
    }
    std::vector<ChatMessage> history;
    if (!flags->system.empty()) history.push_back({"system", flags->system});
    const bool interactive = ::isatty(STDIN_FILENO) == 1;
    std::string line;
    while (true) {
      if (interactive) std::fputs("> ", stdout);
      std::fflush(stdout);
      if (!std::getline(std::cin, line)) break;
      if (line.empty()) continue;
      history.push_back({"user", line});
      std::vector<int32_t> prompt = tokenizer.encode(apply_chat_template(tokenizer, history, true), false);
      if (static_cast<int64_t>(prompt.size()) > room) {
        check(flags->truncate, "the conversation has ", prompt.size(), " tokens, with -n ", options.max_new_tokens,
              " past the context of ", room + options.max_new_tokens,
              " positions (--truncate drops the oldest turns to fit)");
        ChatWindow window = fit_chat_to_context(tokenizer, history, room);
        std::fprintf(stderr,
                     "hlwq: --truncate dropped %zu oldest messages, %lld prompt tokens in all, to fit the context\n",
                     window.dropped_messages, static_cast<long long>(window.dropped_tokens));
        history = std::move(window.messages);
        prompt = std::move(window.prompt);
      }
      StreamingDecoder decoder(tokenizer);
      std::string reply;
      generate(runner, prompt, options, [&](int32_t token) {
        const std::string piece = decoder.push(token);
        reply += piece;
        std::fputs(piece.c_str(), stdout);
        std::fflush(stdout);
      });
      const std::string rest = decoder.flush();
      reply += rest;
      std::fputs(rest.c_str(), stdout);
      std::fputs("\n", stdout);
      history.push_back({"assistant", reply});
    }
  });
}

}  // namespace hlwq::cli
