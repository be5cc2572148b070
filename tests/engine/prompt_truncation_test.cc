// Prompt truncation: the room beside the new tokens, and the kept ids being exactly the newest
// ones (with a leading BOS kept in front).
#include "engine/prompt_truncation.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>

#include "core/error.h"

namespace hlwq {
namespace {

std::vector<int32_t> random_ids(size_t count, uint32_t seed) {
  std::mt19937 generator(seed);
  std::uniform_int_distribution<int32_t> id(3, 50000);
  std::vector<int32_t> ids(count);
  for (int32_t& value : ids) value = id(generator);
  return ids;
}

TEST(PromptTruncation, RoomIsContextLessNewTokens) {
  ModelConfig config;
  config.max_position_embeddings = 2048;
  GenerateOptions options;
  options.max_new_tokens = 100;
  EXPECT_EQ(prompt_room(config, options), 1948);  // no --ctx: the model's maximum
  options.context_length = 256;
  EXPECT_EQ(prompt_room(config, options), 156);
  options.max_new_tokens = 255;
  EXPECT_EQ(prompt_room(config, options), 1);
  options.max_new_tokens = 256;
  EXPECT_THROW(prompt_room(config, options), Error);
}

TEST(PromptTruncation, KeepsTheLastTokens) {
  std::mt19937 generator(20240726);
  for (int round = 0; round < 50; ++round) {
    const size_t length = std::uniform_int_distribution<size_t>(1, 300)(generator);
    const int64_t room = std::uniform_int_distribution<int64_t>(1, 320)(generator);
    const std::vector<int32_t> prompt = random_ids(length, generator());
    const std::vector<int32_t> kept = keep_last_tokens(prompt, room, std::nullopt);
    const size_t expected = std::min<size_t>(length, static_cast<size_t>(room));
    ASSERT_EQ(kept.size(), expected) << length << " " << room;
    EXPECT_TRUE(std::equal(kept.begin(), kept.end(), prompt.end() - static_cast<std::ptrdiff_t>(expected)));
  }
}

TEST(PromptTruncation, KeepsALeadingBos) {
  constexpr int32_t kBos = 1;
  std::vector<int32_t> prompt = random_ids(40, 7);
  prompt.insert(prompt.begin(), kBos);
  const std::vector<int32_t> kept = keep_last_tokens(prompt, 10, kBos);
  ASSERT_EQ(kept.size(), 10u);
  EXPECT_EQ(kept[0], kBos);
  EXPECT_EQ(std::vector<int32_t>(kept.begin() + 1, kept.end()), std::vector<int32_t>(prompt.end() - 9, prompt.end()));
  // A prompt that does not start with the BOS is cut like any other.
  const std::vector<int32_t> no_bos(prompt.begin() + 1, prompt.end());
  EXPECT_EQ(keep_last_tokens(no_bos, 10, kBos), std::vector<int32_t>(no_bos.end() - 10, no_bos.end()));
  // A prompt that fits comes back unchanged; a BOS needs one more position beside it.
  EXPECT_EQ(keep_last_tokens(prompt, 41, kBos), prompt);
  EXPECT_EQ(keep_last_tokens(prompt, 2, kBos), (std::vector<int32_t>{kBos, prompt.back()}));
  EXPECT_THROW(keep_last_tokens(prompt, 1, kBos), Error);
  EXPECT_THROW(keep_last_tokens(no_bos, 0, std::nullopt), Error);
}

}  // namespace
}  // namespace hlwq
