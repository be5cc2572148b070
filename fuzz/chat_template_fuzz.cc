// libFuzzer target for chat templates. The input is split at its first NUL byte: the part before
// is a tokenizer_config.json chat_template, the rest the text of the messages (split again at
// NULs: system, user, assistant, user). Recognizing and rendering must give a prompt or throw
// hlwq::Error; a rendered prompt must hold every message's text.
// Run with scripts/fuzz.sh chat_template_fuzz SECONDS (seeds: fuzz/corpus/chat_template).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

namespace {

// A byte-level tokenizer whose vocabulary is the special tokens of the supported families.
nlohmann::json tiny_tokenizer_json() {
  nlohmann::json vocab = nlohmann::json::object();
  int id = 0;
  for (int byte = 33; byte < 127; ++byte) vocab[std::string(1, static_cast<char>(byte))] = id++;
  nlohmann::json added = nlohmann::json::array();
  for (const char* special : {"<|im_start|>", "<|im_end|>", "<|begin_of_text|>", "<|start_header_id|>",
                              "<|end_header_id|>", "<|eot_id|>", "<|endoftext|>"}) {
    added.push_back({{"id", id}, {"content", special}, {"special", true}, {"lstrip", false}, {"rstrip", false},
                     {"single_word", false}, {"normalized", false}});
    vocab[special] = id++;
  }
  return {{"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", nlohmann::json::array()}}},
          {"added_tokens", added}};
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const size_t split = input.find('\0');
  const std::string_view template_text = input.substr(0, split);
  std::vector<std::string> texts;
  if (split != std::string_view::npos) {
    std::string_view rest = input.substr(split + 1);
    while (texts.size() < 4) {
      const size_t end = rest.find('\0');
      texts.emplace_back(rest.substr(0, end));
      if (end == std::string_view::npos) break;
      rest = rest.substr(end + 1);
    }
  }
  static const nlohmann::json tokenizer_json = tiny_tokenizer_json();
  nlohmann::json config = {{"chat_template", std::string(template_text)},
                           {"bos_token", "<|begin_of_text|>"},
                           {"eos_token", "<|endoftext|>"}};
  try {
    (void)hlwq::recognize_chat_template(template_text, "fuzz/tokenizer_config.json");
    const hlwq::Tokenizer tokenizer = hlwq::Tokenizer::from_json(tokenizer_json, config, "fuzz/tokenizer.json");
    static const char* const kRoles[] = {"system", "user", "assistant", "user"};
    std::vector<hlwq::ChatMessage> messages;
    for (size_t index = 0; index < texts.size(); ++index) messages.push_back({kRoles[index], texts[index]});
    for (const bool generation_prompt : {false, true}) {
      const std::string prompt = hlwq::apply_chat_template(tokenizer, messages, generation_prompt);
      for (const hlwq::ChatMessage& message : messages) {
        // Qwen3 drops the reasoning of assistant turns, so only the other roles must appear whole.
        // Llama-3 trims each message, so only a text without blanks or non-ASCII bytes at its ends is
        // checked.
        const std::string& text = message.content;
        const auto plain = [](char c) { return static_cast<unsigned char>(c) > ' ' && static_cast<unsigned char>(c) < 0x7f; };
        if (message.role == "assistant" || text.empty() || !plain(text.front()) || !plain(text.back())) continue;
        if (prompt.find(text) == std::string::npos) __builtin_trap();
      }
      (void)tokenizer.encode(prompt, false);
    }
  } catch (const hlwq::Error&) {
  }
  return 0;
}
