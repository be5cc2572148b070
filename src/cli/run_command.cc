// `hlwq run -m DIR (-p TEXT | --ids 1,2,3) [-n 128] [--temp 0] [--seed S] [--top-k K] [--top-p P]
// [--min-p P] [--repeat-penalty R] [--ctx C] [--truncate] [--raw] [--threads N] [--backend cpu|cuda]`:
// generates from any model folder hlwq reads (dense, HLWQ, MLX affine, CT INT4). With -p the prompt
// is sent as a user message through the model's chat template when the tokenizer has one (as
// instruct models expect), or as raw text with --raw or without a template; the reply streams out as
// it is generated (a raw prompt is echoed first, since the output continues it). With --ids the
// generated ids are printed. A stop at an end-of-sequence token is reported on stderr. A prompt that
// does not fit beside -n in the
// context is an error, or with --truncate loses its oldest tokens (a leading BOS stays).
#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>

#include "cli/commands.h"
#include "cli/options.h"
#include "convert/quantize_model.h"
#include "engine/generate.h"
#include "ops/cpu/cpu_backend.h"
#include "engine/prompt_truncation.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

namespace hlwq::cli {

namespace {

std::vector<int32_t> parse_ids(const std::string& text) {
  std::vector<int32_t> ids;
  std::stringstream stream(text);
  std::string piece;
  while (std::getline(stream, piece, ',')) {
    size_t used = 0;
    long long value = -1;
    try {
      value = std::stoll(piece, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    check(used == piece.size() && !piece.empty() && value >= 0 && value <= INT32_MAX, "bad token id '", piece,
          "' in --ids (want comma-separated non-negative integers)");
    ids.push_back(static_cast<int32_t>(value));
  }
  check(!ids.empty(), "--ids has no token ids");
  return ids;
}

// The BOS id a truncated prompt keeps in front: the tokenizer's when it added one, else for --ids
// config.json's bos_token_id (the id the model saw first in training).
std::optional<int32_t> prompt_bos_id(const std::optional<Tokenizer>& tokenizer, const nlohmann::json& config) {
  if (tokenizer) return tokenizer->adds_bos_by_default() ? tokenizer->bos_id() : std::nullopt;
  const auto found = config.find("bos_token_id");
  if (found == config.end() || !found->is_number_integer()) return std::nullopt;
  return found->get<int32_t>();
}

}  // namespace

void add_run_command(CLI::App& app) {
  struct Flags {
    std::string model, ids, prompt, kv_dtype = "f16", backend = "cpu";
    int64_t max_new_tokens = 128, context = 0, repeat_last_n = 64;
    int threads = 0;
    bool ignore_eos = false, truncate = false, raw = false;
    SamplerOptions sampler;
  };
  auto flags = std::make_shared<Flags>();
  CLI::App* command = app.add_subcommand("run", "generate token ids with the CPU engine (llama, qwen2, qwen3, gemma3)");
  command->add_option("-m,--model", flags->model, "model folder (dense, HLWQ, MLX affine or CT INT4)")->required();
  auto* prompt_option = command->add_option("-p,--prompt", flags->prompt, "prompt text (tokenized with the model's tokenizer)");
  command->add_option("--ids", flags->ids, "prompt token ids, comma-separated (instead of -p)")
      ->excludes(prompt_option);
  command->add_option("-n,--max-new-tokens", flags->max_new_tokens, "tokens to generate")->capture_default_str();
  command->add_option("--temp", flags->sampler.temperature, "temperature (0: greedy)")->capture_default_str();
  command->add_option("--seed", flags->sampler.seed, "sampling seed")->capture_default_str();
  command->add_option("--top-k", flags->sampler.top_k, "keep the k most likely tokens (0: off)")->capture_default_str();
  command->add_option("--top-p", flags->sampler.top_p, "nucleus sampling mass (1: off)")->capture_default_str();
  command->add_option("--min-p", flags->sampler.min_p, "drop tokens below min-p x the top probability (0: off)")
      ->capture_default_str();
  command->add_option("--repeat-penalty", flags->sampler.repeat_penalty, "repetition penalty (1: off)")
      ->capture_default_str();
  command->add_option("--repeat-last-n", flags->repeat_last_n, "recent tokens the penalty looks at")
      ->capture_default_str();
  command->add_option("--ctx", flags->context, "context length (default: prompt + n, at most the model's)");
  command->add_flag("--truncate", flags->truncate,
                    "drop the oldest prompt tokens when the prompt and -n do not fit in the context");
  command->add_option("--kv-dtype", flags->kv_dtype, "KV cache dtype: f16 (default), bf16 or f32")
      ->check(CLI::IsMember({"f16", "bf16", "f32"}));
  command->add_flag("--raw", flags->raw,
                    "tokenize the prompt as raw text (default: a user message in the model's chat template)");
  command->add_flag("--ignore-eos", flags->ignore_eos, "do not stop at the end-of-sequence id");
  command->add_option("--threads", flags->threads, "worker threads (default: all cores)");
  command->add_option("--backend", flags->backend, "where the model runs: cpu or cuda")->capture_default_str();
  command->callback([flags] {
    check(!flags->prompt.empty() || !flags->ids.empty(), "give a prompt with -p TEXT or --ids 1,2,3");
    check_model_folder(flags->model);
    std::optional<Tokenizer> tokenizer;
    std::vector<int32_t> prompt;
    bool raw = flags->raw;
    if (!flags->prompt.empty()) {
      tokenizer = Tokenizer::from_folder(flags->model);
      if (!raw && tokenizer->chat_template().empty()) raw = true;
      if (!raw) {
        try {
          (void)recognize_chat_template(tokenizer->chat_template(), "tokenizer_config.json");
        } catch (const Error& error) {
          std::fprintf(stderr, "hlwq: %s; the prompt goes in as raw text\n", error.what());
          raw = true;
        }
      }
      if (raw) {
        prompt = tokenizer->encode(flags->prompt, tokenizer->adds_bos_by_default());
      } else {
        const ChatMessage message{"user", flags->prompt};
        // The rendered template holds the BOS text itself where the model wants one.
        prompt = tokenizer->encode(apply_chat_template(*tokenizer, std::span(&message, 1), true), false);
      }
      check(!prompt.empty(), "the prompt tokenizes to nothing");
    } else {
      prompt = parse_ids(flags->ids);
    }
    ThreadPool pool(flags->threads);
    const std::unique_ptr<Backend> backend = parse_backend_kind(flags->backend) == BackendKind::cpu
                                                 ? std::make_unique<CpuBackend>(pool)
                                                 : make_backend(BackendKind::cuda, flags->threads);
    const auto load_start = std::chrono::steady_clock::now();
    const Model model = Model::load(flags->model, pool);
    const double load_seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - load_start).count();
    std::ifstream config_file(std::filesystem::path(flags->model) / "config.json");
    const nlohmann::json config = nlohmann::json::parse(config_file, nullptr, false);
    GenerateOptions options;
    options.max_new_tokens = flags->max_new_tokens;
    options.context_length = flags->context;
    options.kv_cache_dtype = parse_float_dtype(flags->kv_dtype);
    options.sampler = flags->sampler;
    options.repeat_last_n = flags->repeat_last_n;
    if (const int64_t room = prompt_room(model.config(), options); static_cast<int64_t>(prompt.size()) > room) {
      check(flags->truncate, "the prompt has ", prompt.size(), " tokens, with -n ", options.max_new_tokens,
            " past the context of ", room + options.max_new_tokens, " positions (--truncate keeps the last ", room,
            " prompt tokens)");
      const size_t whole = prompt.size();
      prompt = keep_last_tokens(prompt, room, prompt_bos_id(tokenizer, config));
      std::fprintf(stderr, "hlwq: --truncate dropped %zu of the %zu prompt tokens to fit the context\n",
                   whole - prompt.size(), whole);
    }
    if (!flags->ignore_eos) {
      options.stop_ids = end_of_sequence_ids(config);
      if (tokenizer) {
        for (int32_t id = 0; id < tokenizer->vocab_size(); ++id) {
          if (tokenizer->is_end_of_generation(id)) options.stop_ids.push_back(id);
        }
      }
    }
    bool first = true;
    std::optional<StreamingDecoder> decoder;
    if (tokenizer) {
      decoder.emplace(*tokenizer);
      if (raw) std::fputs(flags->prompt.c_str(), stdout);
      std::fflush(stdout);
    }
    const GenerateResult result = generate(model, *backend, prompt, options, [&](int32_t token) {
      if (decoder) {
        std::fputs(decoder->push(token).c_str(), stdout);
      } else {
        std::printf(first ? "%d" : ",%d", token);
      }
      first = false;
      std::fflush(stdout);
    });
    if (decoder) std::fputs(decoder->flush().c_str(), stdout);
    std::printf("\n");
    std::fflush(stdout);  // the ids line before the timing line on a shared terminal
    if (result.stop_id) {
      std::fprintf(stderr, "hlwq: stopped at the end-of-sequence token %d after %zu generated tokens\n",
                   *result.stop_id, result.tokens.size());
    }
    std::fprintf(stderr,
                 "hlwq: load %.2f s, prompt %zu tokens at %.1f tokens/s, generated %zu at %.2f tokens/s, "
                 "peak memory %.0f MB\n",
                 load_seconds, prompt.size(), prompt.size() / std::max(result.prefill_seconds, 1e-9),
                 result.tokens.size(), result.tokens.size() / std::max(result.decode_seconds, 1e-9),
                 peak_resident_bytes() / 1e6);
  });
}

}  // namespace hlwq::cli
