// Gemma 3 270M (the real GGUF, Q4_K_M) imported as F32 and run by the engine against llama.cpp on
// the same weights: tests/fixtures/engine/gemma3_270m_llama_cpp_greedy.json holds llama.cpp's
// prompt ids and first greedy tokens on the F32 reference GGUF, and transformers' 16 largest logits
// per prompt position on the imported folder (scripts/make_gemma3_greedy_fixture.py --hf-folder).
// Skips when the model is absent (scripts/fetch_gemma3_model.sh).
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>

#include "convert/gguf_import.h"
#include "engine/engine_fixture.h"
#include "engine/sampler.h"
#include "test_util.h"
#include "tokenizer/tokenizer.h"

namespace hlwq {
namespace {

TEST(Gemma3Model, ImportsAndMatchesLlamaCppGreedyTokens) {
  const std::filesystem::path gguf = gemma3_gguf_path();
  if (gguf.empty()) GTEST_SKIP() << "Gemma 3 270M absent (scripts/fetch_gemma3_model.sh)";
  ThreadPool pool(2);
  TemporaryFolder temporary;
  const auto start = std::chrono::steady_clock::now();
  const Model model = import_f32_and_load(gguf, temporary.path() / "gemma3", pool);
  const double load_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_EQ(model.config().architecture, Architecture::gemma3);
  EXPECT_EQ(model.config().layers, 18);
  EXPECT_EQ(model.config().sliding_window, 512);

  std::ifstream file(engine_fixture("gemma3_270m_llama_cpp_greedy.json"));
  const nlohmann::json fixture = nlohmann::json::parse(file);
  const auto prompt_ids = fixture.at("prompt_ids").get<std::vector<int32_t>>();
  const auto greedy_ids = fixture.at("greedy_ids").get<std::vector<int32_t>>();
  const auto margins = fixture.at("greedy_margins").get<std::vector<double>>();

  // The imported tokenizer gives llama.cpp's ids (BOS included).
  const Tokenizer tokenizer = Tokenizer::from_folder(temporary.path() / "gemma3");
  EXPECT_EQ(tokenizer.encode(fixture.at("prompt").get<std::string>(), true), prompt_ids);

  // The prompt's logits at every position against transformers' on the same folder.
  {
    CpuRun cache(model, 64, DType::F32, pool);
    const std::vector<float> all = cache.forward(prompt_ids, 0, LogitsFor::all_positions);
    const auto top_indices = fixture.at("transformers_top_indices").get<std::vector<std::vector<int64_t>>>();
    const auto top_values = fixture.at("transformers_top_values").get<std::vector<std::vector<double>>>();
    const int64_t vocab = model.config().vocab_size;
    ASSERT_EQ(top_indices.size(), prompt_ids.size());
    double largest = 0;
    for (size_t position = 0; position < prompt_ids.size(); ++position) {
      const float* row = all.data() + position * vocab;
      EXPECT_EQ(std::max_element(row, row + vocab) - row, top_indices[position][0]) << "position " << position;
      for (size_t k = 0; k < top_indices[position].size(); ++k) {
        largest = std::max(largest, std::fabs(row[top_indices[position][k]] - top_values[position][k]));
      }
    }
    std::printf("gemma3: max |engine - transformers| over the top-16 logits of %zu positions: %.3g\n",
                prompt_ids.size(), largest);
    EXPECT_LT(largest, 5e-4);  // measured 3.0e-5 (logits ~20, float32 on both sides)
  }

  // Greedy decoding: prompt as one prefill, then one token at a time, the argmax fed back.
  CpuRun cache(model, 64, DType::F32, pool);
  std::vector<float> logits = cache.forward(prompt_ids, 0, LogitsFor::last_position);
  int64_t position = static_cast<int64_t>(prompt_ids.size());
  for (size_t step = 0; step < greedy_ids.size(); ++step) {
    std::vector<size_t> order(logits.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::partial_sort(order.begin(), order.begin() + 2, order.end(),
                      [&](size_t a, size_t b) { return logits[a] > logits[b]; });
    const double margin = logits[order[0]] - logits[order[1]];
    std::printf("step %zu: hlwq %zu (margin %.4f), llama.cpp %d (margin %.4f)\n", step, order[0], margin,
                greedy_ids[step], margins[step]);
    // Same F32 weights in both engines; the smallest llama.cpp margin is 0.26, far above the float
    // rounding between them (the margins agree to 3e-3, measured).
    ASSERT_EQ(static_cast<int32_t>(order[0]), greedy_ids[step]) << "step " << step;
    EXPECT_NEAR(margin, margins[step], 0.01) << "step " << step;
    const int32_t next = greedy_ids[step];
    logits = cache.forward(std::span<const int32_t>(&next, 1), position++, LogitsFor::last_position);
  }
  std::printf("gemma3: import + load %.1f s; greedy text '%s'\n", load_seconds,
              tokenizer.decode(greedy_ids).c_str());
}

}  // namespace
}  // namespace hlwq
