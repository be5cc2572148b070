// The demo model (SmolLM2-135M, GGUF Q4_1/Q8_0 imported as F32) against transformers' logits on the
// same imported weights: tests/fixtures/engine/smollm2_demo_top_logits.json holds, per position of
// a 16-token prompt, transformers' 48 largest logits and their ids (scripts/make_engine_fixtures.py).
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <fstream>

#include "convert/gguf_import.h"
#include "engine/engine_fixture.h"
#include "engine/sampler.h"
#include "test_util.h"

namespace hlwq {
namespace {

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

TEST(DemoModel, MatchesTransformersTopLogits) {
  const std::filesystem::path gguf = demo_gguf_path();
  if (gguf.empty()) GTEST_SKIP() << "demo model absent (scripts/fetch_demo_model.sh)";
  ThreadPool pool(2);
  TemporaryFolder temporary;
  const Model model = import_f32_and_load(gguf, temporary.path() / "demo", pool);

  std::ifstream file(engine_fixture("smollm2_demo_top_logits.json"));
  const nlohmann::json fixture = nlohmann::json::parse(file);
  const auto ids = fixture.at("ids").get<std::vector<int32_t>>();
  const auto top_indices = fixture.at("top_indices").get<std::vector<std::vector<int64_t>>>();
  const auto top_values = fixture.at("top_values").get<std::vector<std::vector<double>>>();
  const int64_t vocab = fixture.at("vocab").get<int64_t>();
  ASSERT_EQ(model.config().vocab_size, vocab);

  CpuRun cache(model, 64, DType::F32, pool);
  auto start = std::chrono::steady_clock::now();
  const std::vector<float> logits = cache.forward(ids, 0, LogitsFor::all_positions);
  const double prefill_seconds = seconds_since(start);
  double largest = 0;
  for (size_t position = 0; position < ids.size(); ++position) {
    const float* row = logits.data() + position * vocab;
    int64_t engine_top = 0;
    for (int64_t token = 1; token < vocab; ++token) {
      if (row[token] > row[engine_top]) engine_top = token;
    }
    EXPECT_EQ(engine_top, top_indices[position][0]) << "position " << position;
    for (size_t k = 0; k < top_indices[position].size(); ++k) {
      largest = std::max(largest, std::fabs(row[top_indices[position][k]] - top_values[position][k]));
    }
  }
  std::printf("demo: max |engine - transformers| over the top-48 logits of 16 positions: %.3g\n", largest);
  // Logits of size ~20 through 30 layers in float32: transformers' float sums vs the engine's double
  // sums differ by float rounding (the fixture rounds values to 1e-6).
  EXPECT_LT(largest, 1e-3);  // measured 1.2e-4

  // Informative: the speed of this (reference) path.
  Sampler sampler(SamplerOptions{});
  std::vector<int32_t> generated = {sampler.sample(std::span(logits).last(vocab), ids)};
  start = std::chrono::steady_clock::now();
  const int steps = 4;
  for (int step = 0; step < steps; ++step) {
    const std::vector<float> next = cache.forward(std::span(generated).last(1),
                                            static_cast<int64_t>(ids.size() + generated.size() - 1),
                                            LogitsFor::last_position);
    generated.push_back(sampler.sample(next, generated));
  }
  const double decode_seconds = seconds_since(start);
  std::printf("demo (reference linear path, 2 threads): prefill %.1f tokens/s, decode %.2f tokens/s\n",
              ids.size() / prefill_seconds, steps / decode_seconds);
}

}  // namespace
}  // namespace hlwq
