// `model_perplexity` on a tiny model (tests/fixtures/engine/llama with a character tokenizer): the
// perplexity, the saved logits file and the KL-divergence statistics do not depend on the thread
// count (the per-token work runs on the pool, the sums and writes in token order).
#include "eval/model_perplexity.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>

#include <nlohmann/json.hpp>

#include "core/file_writer.h"
#include "engine/engine_fixture.h"
#include "test_util.h"

namespace hlwq {
namespace {

namespace fs = std::filesystem;

// Printable ASCII, one token per character (ids 0..94, inside the fixture's 160-entry vocabulary).
void write_character_tokenizer(const fs::path& folder) {
  nlohmann::json vocab = nlohmann::json::object();
  for (int c = 32; c < 127; ++c) vocab[std::string(1, static_cast<char>(c))] = c - 32;
  const nlohmann::json tokenizer = {{"version", "1.0"},
                                    {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", nlohmann::json::array()}}}};
  write_text_file(folder / "tokenizer.json", tokenizer.dump());
}

std::string random_text(size_t length, uint32_t seed) {
  std::mt19937 generator(seed);
  std::string text;
  for (size_t i = 0; i < length; ++i) text += static_cast<char>(' ' + generator() % 95);
  return text;
}

std::string file_bytes(const fs::path& path) {
  std::ifstream stream(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(stream), {}};
}

// The report without its timings.
nlohmann::json results(const ModelPerplexityReport& report) {
  nlohmann::json value = report.to_json();
  value.erase("seconds");
  value.erase("forward_seconds");
  value.erase("tokens_per_second");
  return value;
}

class ModelPerplexityThreads : public ::testing::TestWithParam<int64_t> {};  // the stride

TEST_P(ModelPerplexityThreads, ResultsDoNotDependOnTheThreadCount) {
  TemporaryFolder folder;
  const fs::path model = folder.path() / "model";
  fs::copy(engine_fixture("llama"), model);
  write_character_tokenizer(model);
  const fs::path text = folder.path() / "text.txt";
  write_text_file(text, random_text(700, 11));

  ModelPerplexityOptions options;
  options.context = 64;  // 128 positions at most in the fixture
  options.stride = GetParam();
  // The reference distributions with an F32 KV cache, the compared runs with F16: a small,
  // nonzero divergence.
  options.kv_cache_dtype = DType::F32;
  std::vector<std::string> saved;
  std::vector<nlohmann::json> reports;
  for (int threads : {1, 4}) {
    options.threads = threads;
    options.save_logits = folder.path() / ("base" + std::to_string(threads) + ".logits");
    reports.push_back(results(model_perplexity(model, text, options)));
    saved.push_back(file_bytes(*options.save_logits));
  }
  ASSERT_GT(saved[0].size(), 20u);
  EXPECT_TRUE(saved[0] == saved[1]) << "saved logits differ between 1 and 4 threads";
  EXPECT_EQ(reports[0], reports[1]);
  EXPECT_GT(reports[0]["tokens_scored"].get<int64_t>(), 300);

  options.save_logits.reset();
  options.kld_base = folder.path() / "base1.logits";
  options.kv_cache_dtype = DType::F16;
  std::vector<nlohmann::json> divergences;
  for (int threads : {1, 4}) {
    options.threads = threads;
    divergences.push_back(results(model_perplexity(model, text, options)));
  }
  EXPECT_EQ(divergences[0], divergences[1]);
  const nlohmann::json& statistics = divergences[0]["kl_divergence"];
  EXPECT_GT(statistics["mean"].get<double>(), 0.0);
  EXPECT_LT(statistics["mean"].get<double>(), 1e-3);
  EXPECT_EQ(statistics["tokens"], reports[0]["tokens_scored"]);
}

INSTANTIATE_TEST_SUITE_P(Protocols, ModelPerplexityThreads, ::testing::Values(int64_t{0}, int64_t{24}));

}  // namespace
}  // namespace hlwq
