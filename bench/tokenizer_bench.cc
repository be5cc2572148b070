// Tokenizer speed on the WikiText-2 test split (1.3 MB) on one thread, in bytes of text per second,
// for each shared tokenizer, the demo GGUF's and Qwen3.5's from llama.cpp's suite (its regex runs on
// the general PCRE2 path); and the splitting alone, hand-written matcher against PCRE2 on the same
// regex. Target: the whole file well under a second. Run from the build folder of a checkout
// beside ../shared/data (skips tokenizers it cannot find).
#include <benchmark/benchmark.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "tokenizer/pre_tokenizer.h"
#include "tokenizer/regex_split.h"
#include "tokenizer/tokenizer.h"

namespace hlwq {
namespace {

namespace fs = std::filesystem;

fs::path data_folder() {
  for (const fs::path candidate : {fs::path("../shared/data"), fs::path("../../shared/data"), fs::path("/work/shared/data")}) {
    if (fs::exists(candidate / "wikitext-2-raw" / "wiki.test.raw")) return candidate;
  }
  return {};
}

const std::string& wikitext() {
  static const std::string text = [] {
    std::ifstream stream(data_folder() / "wikitext-2-raw" / "wiki.test.raw", std::ios::binary);
    std::ostringstream contents;
    contents << stream.rdbuf();
    return contents.str();
  }();
  return text;
}

void encode_wikitext(benchmark::State& state, const fs::path& source) {
  if (data_folder().empty() || !fs::exists(source)) {
    state.SkipWithError("tokenizer or WikiText-2 not found");
    return;
  }
  const Tokenizer tokenizer = fs::is_directory(source) ? Tokenizer::from_folder(source) : Tokenizer::from_file(source);
  const std::string& text = wikitext();
  size_t tokens = 0;
  for (auto _ : state) {
    const std::vector<int32_t> ids = tokenizer.encode(text);
    tokens = ids.size();
    benchmark::DoNotOptimize(ids.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * text.size()));
  state.counters["tokens"] = static_cast<double>(tokens);
}

void load_tokenizer(benchmark::State& state, const fs::path& source) {
  if (!fs::exists(source)) {
    state.SkipWithError("tokenizer not found");
    return;
  }
  for (auto _ : state) {
    const Tokenizer tokenizer = fs::is_directory(source) ? Tokenizer::from_folder(source) : Tokenizer::from_file(source);
    benchmark::DoNotOptimize(tokenizer.vocab_size());
  }
}

// Splitting WikiText-2 with one regex: the hand-written matcher, or PCRE2 when `general`.
void split_wikitext(benchmark::State& state, std::string regex, bool general) {
  if (data_folder().empty()) {
    state.SkipWithError("WikiText-2 not found");
    return;
  }
  SplitStep step;
  if (general) {
    step.regex = std::make_shared<const RegexSplitter>(regex, SplitBehavior::kIsolated, false, "bench");
  } else {
    step.pattern = *fast_split_pattern(regex);
  }
  const std::string& text = wikitext();
  std::vector<TextRange> pieces;
  for (auto _ : state) {
    pieces.clear();
    split_text(step, text, {0, text.size()}, pieces);
    benchmark::DoNotOptimize(pieces.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * text.size()));
  state.counters["pieces"] = static_cast<double>(pieces.size());
}

void register_all() {
  const fs::path data = data_folder();
  for (const char* name : {"qwen3", "llama3", "llama2", "gpt2"}) {
    const fs::path folder = data / "tokenizers" / name;
    benchmark::RegisterBenchmark((std::string("Encode/") + name).c_str(), encode_wikitext, folder)->Unit(benchmark::kMillisecond);
    benchmark::RegisterBenchmark((std::string("Load/") + name).c_str(), load_tokenizer, folder)->Unit(benchmark::kMillisecond);
  }
  const fs::path demo = fs::path("models") / "SmolLM2-135M-Instruct.Q4_1.gguf";
  benchmark::RegisterBenchmark("Encode/smollm2-gguf", encode_wikitext, demo)->Unit(benchmark::kMillisecond);
  const fs::path qwen35 = fs::path("..") / "models" / "llama-cpp-vocab" / "ggml-vocab-qwen35.gguf";
  benchmark::RegisterBenchmark("Encode/qwen35-gguf", encode_wikitext, qwen35)->Unit(benchmark::kMillisecond);
  const std::string qwen2 =
      R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
  benchmark::RegisterBenchmark("Split/qwen2-hand-written", split_wikitext, qwen2, false)->Unit(benchmark::kMillisecond);
  benchmark::RegisterBenchmark("Split/qwen2-pcre2", split_wikitext, qwen2, true)->Unit(benchmark::kMillisecond);
}

}  // namespace
}  // namespace hlwq

int main(int argc, char** argv) {
  hlwq::register_all();
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
