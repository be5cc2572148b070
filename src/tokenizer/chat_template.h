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
  kLlama31,       // Llama-3 turns after a system header that always comes, with the knowledge
                  // cut-off and today's date (Llama-3.1, Llama-3.2)
};

struct ChatTemplate {
  ChatFormat format;
  std::string default_system_prompt;  // ChatML: used when the first message is not a system one
  bool always_adds_generation_prompt = false;  // Llama-3 templates that ignore the flag
  // Llama-3.1: the system header's "Cutting Knowledge Date: ..." and "Today Date: ..." values. An
  // empty today_date stands for the day the prompt is rendered (Llama-3.2 asks strftime_now).
  std::string knowledge_date, today_date;
};

// Recognizes the family of a Jinja chat template. Throws hlwq::Error for an empty or unknown
// template (naming `source_name`).
ChatTemplate recognize_chat_template(std::string_view template_text, std::string_view source_name);

// The prompt text transformers' apply_chat_template(messages, tokenize=False,
// add_generation_prompt=...) gives for the tokenizer's chat template. Throws hlwq::Error when the
// template is missing or of an unsupported family. Llama-3.1 tool results (role "tool" or
// "ipython") come out as JSON strings, as the template writes them; tool definitions and tool
// calls are not supported.
std::string apply_chat_template(const Tokenizer& tokenizer, std::span<const ChatMessage> messages,
                                bool add_generation_prompt);

}  // namespace hlwq
