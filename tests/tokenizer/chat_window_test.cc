// fit_chat_to_context: whole oldest turns go first, the system prompt and the newest message
// stay, and the newest message keeps its last tokens; checked on the real chat templates.
#include "tokenizer/chat_window.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <span>
#include <random>

#include "core/error.h"
#include "test_util.h"

namespace hlwq {
namespace {

namespace fs = std::filesystem;

fs::path shared_tokenizers() { return fs::path(HLWQ_SOURCE_DIR) / ".." / "shared" / "data" / "tokenizers"; }

// The tokenizers with chat templates that are here: Qwen3 and Llama-3 (shared data), SmolLM2 (demo);
// loaded once for both tests (a second or two each).
const std::map<std::string, Tokenizer>& chat_tokenizers() {
  static const std::map<std::string, Tokenizer> tokenizers = [] {
    std::map<std::string, Tokenizer> loaded;
    if (fs::exists(shared_tokenizers())) {
      loaded.emplace("qwen3", Tokenizer::from_folder(shared_tokenizers() / "qwen3"));
      loaded.emplace("llama3", Tokenizer::from_folder(shared_tokenizers() / "llama3"));
    }
    if (const fs::path demo = demo_gguf_path(); !demo.empty()) loaded.emplace("smollm2", Tokenizer::from_file(demo));
    return loaded;
  }();
  return tokenizers;
}

// Random text of `words` words, with multi-byte characters so that cuts can fall inside one.
std::string random_text(std::mt19937& generator, int words) {
  static const std::vector<std::string> kWords = {"alpha", "context", "río", "Straße", "日本語", "🦙",
                                                  "window", "42", "naïve", "tokens", "là", "переход"};
  std::string text;
  for (int i = 0; i < words; ++i) {
    if (i > 0) text += ' ';
    text += kWords[std::uniform_int_distribution<size_t>(0, kWords.size() - 1)(generator)];
  }
  return text;
}

std::vector<int32_t> prompt_of(const Tokenizer& tokenizer, const std::vector<ChatMessage>& messages) {
  return tokenizer.encode(apply_chat_template(tokenizer, messages, true), false);
}

std::vector<ChatMessage> conversation(std::mt19937& generator) {
  return {{"system", random_text(generator, 16)}, {"user", random_text(generator, 30)},
          {"assistant", random_text(generator, 20)}, {"user", random_text(generator, 25)},
          {"assistant", random_text(generator, 20)}, {"user", random_text(generator, 40)}};
}

TEST(ChatWindow, DropsWholeOldestTurnsFirst) {
  const auto& tokenizers = chat_tokenizers();
  if (tokenizers.empty()) GTEST_SKIP() << "neither shared data nor the demo model is present";
  std::mt19937 generator(31);
  for (const auto& [name, tokenizer] : tokenizers) {
    const std::vector<ChatMessage> messages = conversation(generator);
    const int64_t whole = static_cast<int64_t>(prompt_of(tokenizer, messages).size());
    const ChatWindow unchanged = fit_chat_to_context(tokenizer, messages, whole);
    EXPECT_EQ(unchanged.messages.size(), messages.size()) << name;
    EXPECT_EQ(unchanged.dropped_tokens, 0) << name;
    // Exactly room for the system prompt and the second and third turns: the first turn goes.
    const std::vector<ChatMessage> last_two = {messages[0], messages[3], messages[4], messages[5]};
    const std::vector<int32_t> last_two_prompt = prompt_of(tokenizer, last_two);
    const int64_t room = static_cast<int64_t>(last_two_prompt.size());
    const ChatWindow window = fit_chat_to_context(tokenizer, messages, room);
    ASSERT_EQ(window.messages.size(), 4u) << name;
    for (size_t i = 0; i < 4; ++i) EXPECT_EQ(window.messages[i].content, last_two[i].content) << name << i;
    EXPECT_EQ(window.prompt, last_two_prompt) << name;
    EXPECT_EQ(window.dropped_messages, 2u) << name;
    EXPECT_EQ(window.dropped_tokens, whole - room) << name;
    // One position fewer: the second turn goes too, the newest message stays whole.
    const ChatWindow smaller = fit_chat_to_context(tokenizer, messages, room - 1);
    ASSERT_EQ(smaller.messages.size(), 2u) << name;
    EXPECT_EQ(smaller.messages[0].content, messages[0].content) << name;
    EXPECT_EQ(smaller.messages[1].content, messages[5].content) << name;
    EXPECT_EQ(smaller.dropped_messages, 4u) << name;
    // Without a system message the first user turn is as droppable as any.
    const std::vector<ChatMessage> no_system(messages.begin() + 1, messages.end());
    const ChatWindow from_user = fit_chat_to_context(tokenizer, no_system, room - 1);
    ASSERT_EQ(from_user.messages.size(), 3u) << name;
    EXPECT_EQ(from_user.messages[0].content, messages[3].content) << name;
  }
}

TEST(ChatWindow, ShortensTheNewestMessageLast) {
  const auto& tokenizers = chat_tokenizers();
  if (tokenizers.empty()) GTEST_SKIP() << "neither shared data nor the demo model is present";
  std::mt19937 generator(32);
  for (const auto& [name, tokenizer] : tokenizers) {
    const std::vector<ChatMessage> messages = conversation(generator);
    const std::vector<ChatMessage> empty_newest = {messages[0], {"user", ""}};
    const int64_t overhead = static_cast<int64_t>(prompt_of(tokenizer, empty_newest).size());
    const std::vector<int32_t> newest = tokenizer.encode(messages[5].content, false);
    for (const int64_t text_room : {1, 7, 30}) {
      // A room whose last tokens hold no whole character (only the end of a multi-byte one, as a
      // byte-level vocabulary may split it) has nothing to keep: the call says so.
      const std::string tail = tokenizer.decode(std::span<const int32_t>(newest).last(static_cast<size_t>(text_room)));
      const bool whole_character = std::any_of(tail.begin(), tail.end(), [](char byte) {
        return (static_cast<unsigned char>(byte) & 0xC0) != 0x80;
      });
      if (!whole_character) {
        EXPECT_THROW(fit_chat_to_context(tokenizer, messages, overhead + text_room), Error) << name << " " << text_room;
        continue;
      }
      const ChatWindow window = fit_chat_to_context(tokenizer, messages, overhead + text_room);
      ASSERT_EQ(window.messages.size(), 2u) << name;
      EXPECT_EQ(window.messages[0].content, messages[0].content) << name;
      const std::string& kept = window.messages[1].content;
      // The newest message's end survives: its text is a tail of the original, cut at a character.
      EXPECT_FALSE(kept.empty()) << name << " " << text_room;
      EXPECT_TRUE(messages[5].content.ends_with(kept)) << name << " kept '" << kept << "'";
      EXPECT_NE((static_cast<unsigned char>(kept[0]) & 0xC0), 0x80) << name;
      EXPECT_EQ(window.prompt, prompt_of(tokenizer, window.messages)) << name;
      // It fits, and at most a few tokens short of the room (tokens merge differently at the
      // template's edges, and Llama-3 trims a leading space).
      EXPECT_LE(static_cast<int64_t>(window.prompt.size()), overhead + text_room) << name;
      EXPECT_GE(static_cast<int64_t>(window.prompt.size()), overhead + text_room - 3) << name;
      EXPECT_EQ(window.dropped_tokens,
                static_cast<int64_t>(prompt_of(tokenizer, messages).size() - window.prompt.size()))
          << name;
    }
    // No room for any text of the newest message: an error, not an empty message.
    EXPECT_THROW(fit_chat_to_context(tokenizer, messages, overhead), Error) << name;
    EXPECT_THROW(fit_chat_to_context(tokenizer, {}, 100), Error) << name;
  }
}

}  // namespace
}  // namespace hlwq
