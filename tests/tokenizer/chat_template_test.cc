// Chat prompts against what transformers' apply_chat_template renders from the models' own Jinja
// templates (tests/fixtures/tokenizer/chat_templates.json and llama31_chat_templates.json, written
// by scripts/make_tokenizer_fixtures.py).
#include "tokenizer/chat_template.h"

#include <gtest/gtest.h>

#include <ctime>
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

// Today as "27 Nov 2026", written here without strftime.
std::string today_for_test() {
  static constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                            "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  const std::time_t now = std::time(nullptr);
  std::tm local{};
  ::localtime_r(&now, &local);
  return (local.tm_mday < 10 ? "0" : "") + std::to_string(local.tm_mday) + " " + kMonths[local.tm_mon] + " " +
         std::to_string(local.tm_year + 1900);
}

// A tokenizer that has only what the Llama-3 templates read from it: the BOS token, and the template.
Tokenizer bos_only_tokenizer(const std::string& bos, const std::string& chat_template) {
  const json tokenizer = {{"model", {{"type", "BPE"}, {"vocab", json::object()}, {"merges", json::array()}}},
                          {"added_tokens", {{{"id", 0}, {"content", bos}, {"special", true}}}}};
  return Tokenizer::from_json(tokenizer, {{"bos_token", bos}, {"chat_template", chat_template}}, "test");
}

// Llama-3.1's template (fixed date) and Llama-3.2's (today's date; the fixture's day is replaced by
// today's), written into the fixture script, rendered by transformers with the Llama-3 BOS.
TEST(ChatTemplate, MatchesTransformersForLlama31) {
  std::ifstream stream(fs::path(HLWQ_SOURCE_DIR) / "tests" / "fixtures" / "tokenizer" / "llama31_chat_templates.json");
  const json fixture = json::parse(stream);
  std::map<std::string, Tokenizer> tokenizers;
  for (const auto& [name, text] : fixture["templates"].items()) {
    tokenizers.emplace(name, bos_only_tokenizer(fixture["bos_token"], text));
    EXPECT_EQ(recognize_chat_template(text.get<std::string>(), name).format, ChatFormat::kLlama31) << name;
  }
  const std::string fixture_day = "Today Date: " + fixture["today"].get<std::string>() + "\n";
  size_t checked = 0, with_today = 0;
  for (const json& entry : fixture["cases"]) {
    std::vector<ChatMessage> messages;
    for (const json& message : entry["messages"]) messages.push_back({message["role"], message["content"]});
    std::string expected = entry["expected"];
    if (const size_t at = expected.find(fixture_day); at != std::string::npos && entry["template"] == "llama32") {
      expected.replace(at, fixture_day.size(), "Today Date: " + today_for_test() + "\n");
      ++with_today;
    }
    EXPECT_EQ(apply_chat_template(tokenizers.at(entry["template"]), messages, entry["add_generation_prompt"]), expected)
        << entry["template"] << " " << entry["messages"].dump();
    ++checked;
  }
  EXPECT_EQ(checked, 40u);
  EXPECT_EQ(with_today, 20u);
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
  const ChatTemplate llama31 = recognize_chat_template(
      "{%- set date_string = '01 Jan 2025' %}<|start_header_id|>{{- \"Cutting Knowledge Date: March 2024\\n\" }}"
      "{{- \"Today Date: \" + date_string }}<|eot_id|>",
      "t");
  EXPECT_EQ(llama31.format, ChatFormat::kLlama31);
  EXPECT_EQ(llama31.knowledge_date, "March 2024");
  EXPECT_EQ(llama31.today_date, "01 Jan 2025");
  EXPECT_EQ(recognize_chat_template("<|start_header_id|><|eot_id|>Cutting Knowledge Date", "t").today_date,
            "26 Jul 2024");
  EXPECT_EQ(recognize_chat_template("<|start_header_id|><|eot_id|>Cutting Knowledge Date strftime_now", "t").today_date,
            "");
  // An unknown family names the ones that are supported.
  try {
    recognize_chat_template("{{ '[INST]' + message + '[/INST]' }}", "tokenizer_config.json");
    ADD_FAILURE() << "no error";
  } catch (const Error& error) {
    EXPECT_STREQ(error.what(),
                 "unsupported chat template (supported: ChatML as in SmolLM2/Qwen2/Qwen3, Llama-3, Llama-3.1/3.2), "
                 "tokenizer_config.json");
  }
}

}  // namespace
}  // namespace hlwq
