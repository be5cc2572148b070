// `hlwq ppl` on the hybrid Qwen3.5 fixture (tests/fixtures/qwen35/text) against transformers'
// perplexity of the same slice of WikiText-2 under the same protocol, recorded by
// scripts/make_qwen35_perplexity_reference.py (which says how the slice is cut and tokenized).
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include <nlohmann/json.hpp>

#include "core/file_writer.h"
#include "eval/model_perplexity.h"
#include "ops/backend.h"
#include "test_util.h"

namespace hlwq {
namespace {

namespace fs = std::filesystem;

fs::path wikitext() {
  return fs::path(HLWQ_SOURCE_DIR) / ".." / "shared" / "data" / "wikitext-2-raw" / "wiki.test.raw";
}

// Printable ASCII, one token per character: byte b is id b - 32.
void write_character_tokenizer(const fs::path& folder) {
  nlohmann::json vocab = nlohmann::json::object();
  for (int c = 32; c < 127; ++c) vocab[std::string(1, static_cast<char>(c))] = c - 32;
  const nlohmann::json tokenizer = {{"version", "1.0"},
                                    {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", nlohmann::json::array()}}}};
  write_text_file(folder / "tokenizer.json", tokenizer.dump());
}

TEST(Qwen35Perplexity, WikiTextSliceMatchesTransformers) {
  if (!fs::exists(wikitext())) GTEST_SKIP() << "no WikiText-2 at " << wikitext();
  const fs::path fixture = fs::path(HLWQ_SOURCE_DIR) / "tests" / "fixtures" / "qwen35" / "text";
  const nlohmann::json expected = nlohmann::json::parse(std::ifstream(fixture / "wikitext_ppl.json"));
  TemporaryFolder temporary;
  const fs::path model = temporary.path() / "model";
  fs::copy(fixture, model);
  write_character_tokenizer(model);
  // The slice as the script cuts it: its first bytes, anything outside printable ASCII a space.
  std::ifstream stream(wikitext(), std::ios::binary);
  std::string text(expected.at("bytes").get<size_t>(), ' ');
  stream.read(text.data(), static_cast<std::streamsize>(text.size()));
  ASSERT_EQ(stream.gcount(), static_cast<std::streamsize>(text.size()));
  for (char& c : text) {
    if (static_cast<unsigned char>(c) < 32 || static_cast<unsigned char>(c) >= 127) c = ' ';
  }
  write_text_file(temporary.path() / "slice.txt", text);

  std::vector<BackendKind> backends = {BackendKind::cpu};
  if (cuda_backend_available()) backends.push_back(BackendKind::cuda);
  for (const BackendKind backend : backends) {
    ModelPerplexityOptions options;
    options.context = expected.at("context").get<int64_t>();
    options.kv_cache_dtype = DType::F32;
    options.threads = 2;
    options.backend = backend;
    const ModelPerplexityReport report = model_perplexity(model, temporary.path() / "slice.txt", options);
    const double reference = expected.at("perplexity").get<double>();
    const double relative = std::fabs(report.perplexity.perplexity / reference - 1);
    std::printf("%s: hlwq ppl %.4f +/- %.4f, transformers %.4f over %lld tokens: relative difference %.2e\n",
                backend_kind_name(backend), report.perplexity.perplexity, report.perplexity.perplexity_stderr,
                reference, static_cast<long long>(report.perplexity.tokens_scored), relative);
    EXPECT_EQ(report.perplexity.tokens_scored, expected.at("tokens_scored").get<int64_t>());
    EXPECT_LT(relative, 1e-3);
  }
}

}  // namespace
}  // namespace hlwq
