// generate(): greedy generation against a hand-written argmax loop; stop ids and context limits.
#include "engine/generate.h"

#include <gtest/gtest.h>

#include "engine/engine_fixture.h"
#include "engine/model_runner.h"

namespace hlwq {
namespace {

// Greedy generation equals a hand-written loop: full forward over the whole sequence each step
// (no cache reuse), argmax of the last logits.
TEST(Generate, GreedyEqualsArgmaxOfFullRecomputation) {
  ThreadPool pool(2);
  const Model model = Model::load(engine_fixture("qwen2"), pool);
  const std::vector<int32_t> prompt = {5, 17, 42, 99};
  GenerateOptions options;
  options.max_new_tokens = 6;
  options.kv_cache_dtype = DType::F32;
  std::vector<int32_t> streamed;
  const GenerateResult result = generate(model, prompt, options, pool, [&](int32_t id) { streamed.push_back(id); });
  ASSERT_EQ(result.tokens.size(), 6u);
  EXPECT_EQ(streamed, result.tokens);
  std::vector<int32_t> sequence = prompt;
  for (int32_t token : result.tokens) {
    CpuRun run(model, 32, DType::F32, pool);
    const std::vector<float> logits = run.forward(sequence, 0, LogitsFor::last_position);
    EXPECT_EQ(token, std::max_element(logits.begin(), logits.end()) - logits.begin());
    sequence.push_back(token);
  }
}

TEST(Generate, StopsAtEndOfSequenceAndContext) {
  ThreadPool pool(1);
  const Model model = Model::load(engine_fixture("llama"), pool);
  const std::vector<int32_t> prompt = {1, 2, 3};
  GenerateOptions options;
  options.max_new_tokens = 8;
  const std::vector<int32_t> free_run = generate(model, prompt, options, pool).tokens;
  ASSERT_EQ(free_run.size(), 8u);
  options.stop_ids = {free_run[2]};
  const std::vector<int32_t> stopped = generate(model, prompt, options, pool).tokens;
  const size_t first_stop = std::find(free_run.begin(), free_run.end(), free_run[2]) - free_run.begin();
  EXPECT_EQ(stopped, std::vector<int32_t>(free_run.begin(), free_run.begin() + first_stop));
  options.stop_ids.clear();
  options.context_length = 5;  // room for 3 + 2 positions: the token at position 5 is the last
  EXPECT_EQ(generate(model, prompt, options, pool).tokens.size(), 3u);
  options.context_length = 2;
  EXPECT_THROW(generate(model, prompt, options, pool), Error);
  options.context_length = 0;
  options.max_new_tokens = 0;
  EXPECT_TRUE(generate(model, prompt, options, pool).tokens.empty());
}

TEST(Generate, EndOfSequenceIdsFromConfig) {
  EXPECT_EQ(end_of_sequence_ids(nlohmann::json{{"eos_token_id", 2}}), std::vector<int32_t>{2});
  EXPECT_EQ(end_of_sequence_ids(nlohmann::json{{"eos_token_id", {7, 9}}}), (std::vector<int32_t>{7, 9}));
  EXPECT_TRUE(end_of_sequence_ids(nlohmann::json{{"eos_token_id", nullptr}}).empty());
  EXPECT_TRUE(end_of_sequence_ids(nlohmann::json::object()).empty());
}

}  // namespace
}  // namespace hlwq
