// The engine against transformers: tiny llama / qwen2 / qwen3 / gemma3 logits, prefill vs decode, KV cache
// dtypes, NaN reporting and input errors.
#include "engine/model_runner.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <functional>
#include <fstream>
#include <string>

#include "convert/tiny_model.h"
#include "engine/engine_fixture.h"
#include "test_util.h"

namespace hlwq {
namespace {

class TransformersLogits : public ::testing::TestWithParam<std::string> {};

// Prefill of the fixture prompt against transformers' float32 logits (every position). Both sides
// compute in float32 with the same weights; the engine sums matmuls in double, so differences are
// float rounding only (measured ~1e-6). Logits are O(2); bound 1e-5.
TEST_P(TransformersLogits, PrefillMatchesTransformers) {
  ThreadPool pool(2);
  const std::filesystem::path folder = engine_fixture(GetParam());
  const ReferenceLogits reference = read_reference_logits(folder);
  const Model model = Model::load(folder, pool);
  ASSERT_EQ(model.config().vocab_size, reference.vocab);
  const std::vector<float> logits = prefill_logits(model, reference.ids, pool);
  const double difference = max_abs_difference(logits, reference.logits);
  std::printf("%s: max |engine - transformers| logit difference %.3g\n", GetParam().c_str(), difference);
  EXPECT_LT(difference, 1e-5);
}

// Decoding token by token through the KV cache gives the logits of one prefill.
TEST_P(TransformersLogits, DecodeMatchesPrefill) {
  ThreadPool pool(2);
  const std::filesystem::path folder = engine_fixture(GetParam());
  const ReferenceLogits reference = read_reference_logits(folder);
  const Model model = Model::load(folder, pool);
  const std::vector<float> prefill = prefill_logits(model, reference.ids, pool);
  // First half as one prefill, then one token at a time.
  CpuRun cache(model, 64, DType::F32, pool);
  const size_t half = reference.ids.size() / 2;
  std::vector<float> stepwise =
      cache.forward(std::span(reference.ids).first(half), 0, LogitsFor::all_positions);
  for (size_t position = half; position < reference.ids.size(); ++position) {
    const std::vector<float> step = cache.forward(std::span(reference.ids).subspan(position, 1),
                                            static_cast<int64_t>(position), LogitsFor::last_position);
    stepwise.insert(stepwise.end(), step.begin(), step.end());
  }
  EXPECT_LT(max_abs_difference(stepwise, prefill), 1e-5);
  // last_position returns the final row of all_positions.
  CpuRun fresh(model, 64, DType::F32, pool);
  const std::vector<float> last = fresh.forward(reference.ids, 0, LogitsFor::last_position);
  EXPECT_LT(max_abs_difference(last, std::span(prefill).last(reference.vocab)), 1e-6);
  // LogitsFrom{k} returns rows k.. of all_positions.
  const int64_t first = static_cast<int64_t>(reference.ids.size()) / 3;
  CpuRun partial(model, 64, DType::F32, pool);
  const std::vector<float> tail = partial.forward(reference.ids, 0, LogitsFrom{first});
  ASSERT_EQ(tail.size(), (reference.ids.size() - first) * reference.vocab);
  EXPECT_LT(max_abs_difference(tail, std::span(prefill).subspan(first * reference.vocab)), 1e-6);
  CpuRun unused(model, 64, DType::F32, pool);
  EXPECT_THROW(unused.forward(reference.ids, 0, LogitsFrom{static_cast<int64_t>(reference.ids.size())}),
               Error);
}

// Batched decode (one token of each of several sequences in one pass, as a server runs them) gives
// each sequence the logits it gets alone: the same kernels, the same float order per row.
TEST_P(TransformersLogits, BatchedDecodeMatchesSingleSequences) {
  ThreadPool pool(2);
  const std::filesystem::path folder = engine_fixture(GetParam());
  const ReferenceLogits reference = read_reference_logits(folder);
  const Model model = Model::load(folder, pool);
  const std::vector<float> prefill = prefill_logits(model, reference.ids, pool);
  CpuBackend backend(pool);
  ModelRunner runner(model, backend, RunnerOptions{64, 3, 0, 0, DType::F32, true});
  const int64_t count = static_cast<int64_t>(reference.ids.size());
  // Sequence 1 starts two tokens later than sequence 2; sequence 0 stays unused.
  const int64_t half = count / 2;
  runner.forward(2, std::span(reference.ids).first(half), 0, LogitsFor::last_position);
  runner.forward(1, std::span(reference.ids).first(half + 2), 0, LogitsFor::last_position);
  std::vector<float> logits;
  for (int64_t position = half; position + 2 < count; ++position) {
    const int32_t tokens[] = {reference.ids[position + 2], reference.ids[position]};
    const TokenPlace places[] = {{1, static_cast<int32_t>(position + 2)}, {2, static_cast<int32_t>(position)}};
    runner.decode(tokens, places, logits);
    const auto vocab = static_cast<size_t>(reference.vocab);
    EXPECT_LT(max_abs_difference(std::span<const float>(logits).first(vocab),
                                 std::span<const float>(prefill).subspan((position + 2) * vocab, vocab)),
              1e-5);
    EXPECT_LT(max_abs_difference(std::span<const float>(logits).subspan(vocab, vocab),
                                 std::span<const float>(prefill).subspan(position * vocab, vocab)),
              1e-5);
  }
  // Places outside the runner are errors.
  const int32_t one[] = {1};
  const TokenPlace bad_sequence[] = {{3, 0}};
  EXPECT_THROW(runner.decode(one, bad_sequence, logits), Error);
  const TokenPlace bad_position[] = {{0, 64}};
  EXPECT_THROW(runner.decode(one, bad_position, logits), Error);
}

// F16 and BF16 caches round keys and values; logits stay close (bounds from the rounding: 2^-11 and
// 2^-8 relative on O(1) activations through two layers).
TEST_P(TransformersLogits, HalfPrecisionCacheStaysClose) {
  ThreadPool pool(2);
  const std::filesystem::path folder = engine_fixture(GetParam());
  const ReferenceLogits reference = read_reference_logits(folder);
  const Model model = Model::load(folder, pool);
  const double f16 = max_abs_difference(prefill_logits(model, reference.ids, pool, DType::F16), reference.logits);
  const double bf16 = max_abs_difference(prefill_logits(model, reference.ids, pool, DType::BF16), reference.logits);
  std::printf("%s: F16 cache %.3g, BF16 cache %.3g\n", GetParam().c_str(), f16, bf16);
  EXPECT_LT(f16, 5e-3);
  EXPECT_LT(bf16, 3e-2);
  EXPECT_GT(bf16, 0.0);  // the rounding does reach the logits
}

INSTANTIATE_TEST_SUITE_P(Architectures, TransformersLogits,
                         ::testing::Values("llama", "llama_tied", "qwen2", "qwen3", "gemma3"));

// Max |logit - transformers'| of fixture `name` after `edit` changed its config.json.
double difference_after_config_edit(const std::string& name, const std::function<void(nlohmann::json&)>& edit) {
  ThreadPool pool(2);
  TemporaryFolder temporary;
  const std::filesystem::path source = engine_fixture(name);
  std::filesystem::copy(source, temporary.path() / name);
  const std::filesystem::path config_path = temporary.path() / name / "config.json";
  nlohmann::json config = nlohmann::json::parse(std::ifstream(config_path));
  edit(config);
  std::ofstream(config_path) << config.dump();
  const ReferenceLogits reference = read_reference_logits(source);
  const Model changed = Model::load(temporary.path() / name, pool);
  return max_abs_difference(prefill_logits(changed, reference.ids, pool), reference.logits);
}

// The gemma3 fixture tells its two ropes apart: with the local layers rotated like the global ones
// (theta 1e6, linear factor 2) the logits move far from transformers'.
TEST(Forward, Gemma3LocalRopeChangesTheLogits) {
  EXPECT_GT(difference_after_config_edit("gemma3",
                                         [](nlohmann::json& config) {
                                           config["rope_parameters"]["sliding_attention"]["rope_theta"] = 1000000.0;
                                         }),
            1e-3);
}

// The fixture is sensitive to the rope scaling: the same llama weights without llama3 scaling give
// logits far from transformers' (so the 1e-5 match above tests the scaled frequencies).
TEST(Forward, Llama3RopeScalingChangesTheLogits) {
  EXPECT_GT(difference_after_config_edit("llama",
                                         [](nlohmann::json& config) {
                                           config["rope_parameters"] = {{"rope_type", "default"},
                                                                        {"rope_theta", 10000.0}};
                                         }),
            1e-3);
}

// A NaN weight in layer 1's MLP: the error names layer 1, found by the checked second pass.
TEST(Forward, NanLogitsNameTheFirstLayerWithANan) {
  ThreadPool pool(2);
  TemporaryFolder temporary;
  TinyModelOptions options;
  options.dtype = DType::F32;
  options.poison_with_nan = true;
  write_tiny_model(temporary.path(), options);
  nlohmann::json config = nlohmann::json::parse(std::ifstream(temporary.path() / "config.json"));
  config["max_position_embeddings"] = 64;
  std::ofstream(temporary.path() / "config.json") << config.dump();
  const Model model = Model::load(temporary.path(), pool);
  CpuRun cache(model, 16, DType::F32, pool);
  const std::vector<int32_t> ids = {3, 1, 4, 1, 5};
  try {
    cache.forward(ids, 0, LogitsFor::last_position);
    FAIL() << "NaN logits were not reported";
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find("after layer 1 "), std::string::npos) << error.what();
  }
}

TEST(Forward, RejectsBadTokensAndContextOverflow) {
  ThreadPool pool(1);
  const Model model = Model::load(engine_fixture("llama"), pool);
  CpuRun cache(model, 4, DType::F32, pool);
  const std::vector<int32_t> bad = {1, static_cast<int32_t>(model.config().vocab_size)};
  EXPECT_THROW(cache.forward(bad, 0, LogitsFor::last_position), Error);
  const std::vector<int32_t> negative = {-1};
  EXPECT_THROW(cache.forward(negative, 0, LogitsFor::last_position), Error);
  const std::vector<int32_t> five = {1, 2, 3, 4, 5};
  EXPECT_THROW(cache.forward(five, 0, LogitsFor::last_position), Error);
  const std::vector<int32_t> one = {1};
  EXPECT_THROW(cache.forward(one, 4, LogitsFor::last_position), Error);
  EXPECT_THROW(cache.forward(std::span<const int32_t>(), 0, LogitsFor::last_position), Error);
  // A runner needs a positive context and at least one sequence.
  CpuBackend backend(pool);
  EXPECT_THROW(ModelRunner(model, backend, RunnerOptions{0, 1, 0, 0, DType::F32, true}), Error);
  EXPECT_THROW(ModelRunner(model, backend, RunnerOptions{4, 0, 0, 0, DType::F32, true}), Error);
}

}  // namespace
}  // namespace hlwq
