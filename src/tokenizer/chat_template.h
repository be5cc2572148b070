// Chat prompts in the formats of the supported model families, rendered by C++ code rather than a
// Jinja interpreter: the family is recognized from the model's chat_template text.
#pragma once

#include <span>
#include <string>
#include <string_view>

#include "tokenizer/tokenizer.h"

namespace hlwq {

struct ChatMessage {
  std::string role, content;
};

enum class ChatFormat {
  kChatMl,        // <|im_start|>role\ncontent<|im_end|>\n (SmolLM2, Qwen2), maybe a default system
  kChatMlQwen3,   // ChatML, with Qwen3's handling of <think> in assistant turns
  kLlama3,        // <|start_header_id|>role<|end_header_id|>\n\ncontent<|eot_id|>
};

struct ChatTemplate {
  ChatFormat format;
  std::string default_system_prompt;  // ChatML: used when the first message is not a system one
  bool always_adds_generation_prompt = false;  // Llama-3 templates that ignore the flag
};

// Recognizes the family of a Jinja chat template. Throws hlwq::Error for an empty or unknown
// template (naming `source_name`).
ChatTemplate recognize_chat_template(std::string_view template_text, std::string_view source_name);

// The prompt text transformers' apply_chat_template(messages, tokenize=False,
// add_generation_prompt=...) gives for the tokenizer's chat template. Throws hlwq::Error when the
// template is missing or of an unsupported family.
std::string apply_chat_template(const Tokenizer& tokenizer, std::span<const ChatMessage> messages,
                                bool add_generation_prompt);

}  // namespace hlwq
