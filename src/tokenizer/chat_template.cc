// The ChatML, Llama-3 and Llama-3.1 prompt formats, written out as the models' Jinja templates
// produce them.
#include "tokenizer/chat_template.h"

#include <algorithm>
#include <ctime>

#include <nlohmann/json.hpp>

#include "core/error.h"

namespace hlwq {
namespace {

bool contains(std::string_view text, std::string_view part) { return text.find(part) != std::string_view::npos; }

// A literal default system prompt, as in SmolLM2's
// {{ '<|im_start|>system\nYou are a helpful AI assistant ...<|im_end|>\n' }}; the newline may be a
// real one or the two characters \n. Empty when the template has none.
std::string find_default_system_prompt(std::string_view text) {
  constexpr std::string_view kOpen = "<|im_start|>system";
  for (size_t at = text.find(kOpen); at != std::string_view::npos; at = text.find(kOpen, at + 1)) {
    size_t start = at + kOpen.size();
    if (text.substr(start, 1) == "\n") start += 1;
    else if (text.substr(start, 2) == "\\n") start += 2;
    else continue;
    const size_t end = text.find("<|im_end|>", start);
    if (end == std::string_view::npos) continue;
    const std::string_view prompt = text.substr(start, end - start);
    if (prompt.empty() || prompt.find_first_of("'\"{}+") != std::string_view::npos) continue;
    std::string unescaped;
    for (size_t i = 0; i < prompt.size(); ++i) {
      if (prompt[i] == '\\' && i + 1 < prompt.size() && prompt[i + 1] == 'n') {
        unescaped += '\n';
        ++i;
      } else {
        unescaped += prompt[i];
      }
    }
    return unescaped;
  }
  return {};
}

std::string_view strip(std::string_view text, std::string_view characters) {
  const size_t begin = text.find_first_not_of(characters);
  if (begin == std::string_view::npos) return {};
  return text.substr(begin, text.find_last_not_of(characters) - begin + 1);
}

std::string_view left_strip(std::string_view text, std::string_view characters) {
  const size_t begin = text.find_first_not_of(characters);
  return begin == std::string_view::npos ? std::string_view() : text.substr(begin);
}

std::string_view right_strip(std::string_view text, std::string_view characters) {
  const size_t end = text.find_last_not_of(characters);
  return end == std::string_view::npos ? std::string_view() : text.substr(0, end + 1);
}

// Jinja's trim (Python's str.strip()) for the ASCII whitespace chat content holds.
constexpr std::string_view kWhitespace = " \t\n\r\v\f";

bool is_tool_response(std::string_view content) {
  return content.starts_with("<tool_response>") && content.ends_with("</tool_response>");
}

void render_qwen3_assistant(const ChatMessage& message, bool after_last_query, bool is_last, std::string& out) {
  std::string_view content = message.content;
  std::string_view reasoning;
  if (const size_t close = content.rfind("</think>"); close != std::string_view::npos) {
    // content.split('</think>')[-1].lstrip('\n'); reasoning from before the first </think>.
    const std::string_view before = content.substr(0, content.find("</think>"));
    const size_t open = before.rfind("<think>");
    reasoning = left_strip(right_strip(open == std::string_view::npos ? before : before.substr(open + 7), "\n"), "\n");
    content = left_strip(content.substr(close + 8), "\n");
  }
  out += "<|im_start|>assistant\n";
  if (after_last_query && (is_last || !reasoning.empty())) {
    out += "<think>\n";
    out += strip(reasoning, "\n");
    out += "\n</think>\n\n";
    out += left_strip(content, "\n");
  } else {
    out += content;
  }
  out += "<|im_end|>\n";
}

std::string render_chat_ml(const ChatTemplate& chat, std::span<const ChatMessage> messages, bool add_generation_prompt) {
  std::string out;
  if (!chat.default_system_prompt.empty() && (messages.empty() || messages[0].role != "system")) {
    if (!messages.empty()) out += "<|im_start|>system\n" + chat.default_system_prompt + "<|im_end|>\n";
  }
  // Qwen3 keeps reasoning only in the turns after the last real user query.
  size_t last_query = messages.empty() ? 0 : messages.size() - 1;
  for (size_t i = messages.size(); i-- > 0;) {
    if (messages[i].role == "user" && !is_tool_response(messages[i].content)) {
      last_query = i;
      break;
    }
  }
  for (size_t i = 0; i < messages.size(); ++i) {
    const ChatMessage& message = messages[i];
    if (chat.format == ChatFormat::kChatMlQwen3 && message.role == "assistant") {
      render_qwen3_assistant(message, i > last_query, i + 1 == messages.size(), out);
      continue;
    }
    out += "<|im_start|>" + message.role + "\n" + message.content + "<|im_end|>\n";
  }
  if (add_generation_prompt) out += "<|im_start|>assistant\n";
  return out;
}

// The text after `key` in the template up to the end of the string literal it is in (a quote or an
// escaped newline), or `fallback` when the template does not have `key`.
std::string literal_text_after(std::string_view text, std::string_view key, std::string_view fallback) {
  const size_t at = text.find(key);
  if (at == std::string_view::npos) return std::string(fallback);
  const std::string_view rest = text.substr(at + key.size());
  return std::string(rest.substr(0, rest.find_first_of("\"'\\\n")));
}

// The string literal ("..." or '...') right after `key` in the template, or `fallback`.
std::string quoted_literal_after(std::string_view text, std::string_view key, std::string_view fallback) {
  const size_t at = text.find(key);
  if (at == std::string_view::npos) return std::string(fallback);
  const std::string_view rest = text.substr(at + key.size());
  if (rest.empty() || (rest[0] != '"' && rest[0] != '\'')) return std::string(fallback);
  const size_t end = rest.find(rest[0], 1);
  return end == std::string_view::npos ? std::string(fallback) : std::string(rest.substr(1, end - 1));
}

// Today as transformers' strftime_now("%d %b %Y") writes it: Python's datetime.now(), local time,
// English month abbreviations (the "C" locale this program runs in).
std::string today_date_string() {
  const std::time_t now = std::time(nullptr);
  std::tm local{};
  ::localtime_r(&now, &local);
  char text[32];
  return std::string(text, std::strftime(text, sizeof text, "%d %b %Y", &local));
}

// Jinja's tojson as transformers defines it (json.dumps, non-ASCII kept) for a string.
std::string json_string(const std::string& text) {
  return nlohmann::json(text).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string render_llama31(const Tokenizer& tokenizer, const ChatTemplate& chat, std::span<const ChatMessage> messages,
                           bool add_generation_prompt) {
  std::string out;
  if (tokenizer.bos_id()) out += tokenizer.token_piece(*tokenizer.bos_id());
  // A leading system message goes into the system header, which comes with or without one.
  const bool has_system = !messages.empty() && messages[0].role == "system";
  out += "<|start_header_id|>system<|end_header_id|>\n\n";
  out += "Cutting Knowledge Date: " + chat.knowledge_date + "\n";
  out += "Today Date: " + (chat.today_date.empty() ? today_date_string() : chat.today_date) + "\n\n";
  if (has_system) out += strip(messages[0].content, kWhitespace);
  out += "<|eot_id|>";
  for (const ChatMessage& message : messages.subspan(has_system ? 1 : 0)) {
    if (message.role == "tool" || message.role == "ipython") {
      out += "<|start_header_id|>ipython<|end_header_id|>\n\n" + json_string(message.content) + "<|eot_id|>";
      continue;
    }
    out += "<|start_header_id|>" + message.role + "<|end_header_id|>\n\n";
    out += strip(message.content, kWhitespace);
    out += "<|eot_id|>";
  }
  if (add_generation_prompt) out += "<|start_header_id|>assistant<|end_header_id|>\n\n";
  return out;
}

std::string render_llama3(const Tokenizer& tokenizer, const ChatTemplate& chat, std::span<const ChatMessage> messages,
                          bool add_generation_prompt) {
  std::string out;
  for (size_t i = 0; i < messages.size(); ++i) {
    if (i == 0 && tokenizer.bos_id()) out += tokenizer.token_piece(*tokenizer.bos_id());
    out += "<|start_header_id|>" + messages[i].role + "<|end_header_id|>\n\n";
    out += strip(messages[i].content, kWhitespace);
    out += "<|eot_id|>";
  }
  if (add_generation_prompt || chat.always_adds_generation_prompt) out += "<|start_header_id|>assistant<|end_header_id|>\n\n";
  return out;
}

}  // namespace

ChatTemplate recognize_chat_template(std::string_view text, std::string_view source_name) {
  check(!text.empty(), "the tokenizer has no chat template, ", source_name);
  if (contains(text, "<|im_start|>")) {
    ChatTemplate chat{contains(text, "</think>") ? ChatFormat::kChatMlQwen3 : ChatFormat::kChatMl, {}, false, {}, {}};
    chat.default_system_prompt = find_default_system_prompt(text);
    return chat;
  }
  if (contains(text, "<|start_header_id|>") && contains(text, "<|eot_id|>")) {
    ChatTemplate chat{ChatFormat::kLlama3, {}, !contains(text, "add_generation_prompt"), {}, {}};
    if (contains(text, "Cutting Knowledge Date")) {
      chat.format = ChatFormat::kLlama31;
      chat.always_adds_generation_prompt = false;
      chat.knowledge_date = literal_text_after(text, "Cutting Knowledge Date: ", "December 2023");
      // Llama-3.1 fixes the date ({%- set date_string = "26 Jul 2024" %}); Llama-3.2 prefers today's.
      if (!contains(text, "strftime_now")) {
        chat.today_date = quoted_literal_after(text, "set date_string = ", "26 Jul 2024");
      }
    }
    return chat;
  }
  fail("unsupported chat template (supported: ChatML as in SmolLM2/Qwen2/Qwen3, Llama-3, Llama-3.1/3.2), ",
       source_name);
}

std::string apply_chat_template(const Tokenizer& tokenizer, std::span<const ChatMessage> messages,
                                bool add_generation_prompt) {
  const ChatTemplate chat = recognize_chat_template(tokenizer.chat_template(), "tokenizer_config.json");
  if (chat.format == ChatFormat::kLlama3) return render_llama3(tokenizer, chat, messages, add_generation_prompt);
  if (chat.format == ChatFormat::kLlama31) return render_llama31(tokenizer, chat, messages, add_generation_prompt);
  return render_chat_ml(chat, messages, add_generation_prompt);
}

}  // namespace hlwq
