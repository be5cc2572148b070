// Chat prompts against what transformers' apply_chat_template renders from the models' own Jinja
// templates (tests/fixtures/tokenizer/chat_templates.json, scripts/make_tokenizer_fixtures.py).
#include "tokenizer/chat_template.h"

#include <gtest/gtest.h>

#include <fstream>
#include <map>

#include "core/error.h"
#include "test_util.h"

namespace hlwq {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

fs::path shared_tokenizers() { return fs::path(HLWQ_SOURCE_DIR) / ".." / "shared" / "data" / "tokenizers"; }

TEST(ChatTemplate, MatchesTransformers) {
  std::ifstream stream(fs::path(HLWQ_SOURCE_DIR) / "tests" / "fixtures" / "tokenizer" / "chat_templates.json");
  const json fixture = json::parse(stream);
  std::map<std::string, Tokenizer> tokenizers;
  if (fs::exists(shared_tokenizers())) {
    tokenizers.emplace("qwen3", Tokenizer::from_folder(shared_tokenizers() / "qwen3"));
    tokenizers.emplace("llama3", Tokenizer::from_folder(shared_tokenizers() / "llama3"));
  }
  if (const fs::path demo = demo_gguf_path(); !demo.empty()) tokenizers.emplace("smollm2", Tokenizer::from_file(demo));
  if (tokenizers.empty()) GTEST_SKIP() << "neither shared data nor the demo model is present";
  size_t checked = 0;
  for (const json& entry : fixture) {
    const auto found = tokenizers.find(entry["tokenizer"].get<std::string>());
    if (found == tokenizers.end()) continue;
    std::vector<ChatMessage> messages;
    for (const json& message : entry["messages"]) messages.push_back({message["role"], message["content"]});
    EXPECT_EQ(apply_chat_template(found->second, messages, entry["add_generation_prompt"]),
              entry["expected"].get<std::string>())
        << entry["tokenizer"] << " " << entry["messages"].dump();
    ++checked;
  }
  EXPECT_EQ(checked, tokenizers.size() * 10);
}

TEST(ChatTemplate, RecognizesFamiliesAndRejectsOthers) {
  EXPECT_EQ(recognize_chat_template("{{'<|im_start|>' + message['role']}}", "t").format, ChatFormat::kChatMl);
  const ChatTemplate smol = recognize_chat_template(
      "{{ '<|im_start|>system\\nYou are a bot.<|im_end|>\\n' }}{{'<|im_start|>' + message['role']}}", "t");
  EXPECT_EQ(smol.default_system_prompt, "You are a bot.");
  EXPECT_EQ(recognize_chat_template("<|start_header_id|>{% if add_generation_prompt %}<|eot_id|>", "t").format,
            ChatFormat::kLlama3);
  EXPECT_THROW(recognize_chat_template("", "t"), Error);
  EXPECT_THROW(recognize_chat_template("[INST] {{ message }} [/INST]", "t"), Error);
  EXPECT_THROW(recognize_chat_template("<|start_header_id|><|eot_id|>Cutting Knowledge Date", "t"), Error);
}

}  // namespace
}  // namespace hlwq
