#include "tokenizer/chat_window.h"

#include "core/error.h"

namespace hlwq {
namespace {

std::vector<int32_t> render_prompt(const Tokenizer& tokenizer, std::span<const ChatMessage> messages) {
  return tokenizer.encode(apply_chat_template(tokenizer, messages, true), false);
}

int64_t excess(const ChatWindow& window, int64_t max_prompt_tokens) {
  return static_cast<int64_t>(window.prompt.size()) - max_prompt_tokens;
}

// The text of the last `count` ids, starting at a character boundary: the first kept token may
// begin inside a UTF-8 character whose lead byte was in a dropped one.
std::string text_of_last_tokens(const Tokenizer& tokenizer, std::span<const int32_t> ids, size_t count) {
  const std::string text = tokenizer.decode(ids.last(count));
  size_t begin = 0;
  while (begin < text.size() && (static_cast<unsigned char>(text[begin]) & 0xC0) == 0x80) ++begin;
  return text.substr(begin);
}

void drop_oldest_turns(const Tokenizer& tokenizer, int64_t max_prompt_tokens, ChatWindow& window) {
  const size_t first_droppable = window.messages.front().role == "system" ? 1 : 0;
  while (excess(window, max_prompt_tokens) > 0 && window.messages.size() > first_droppable + 1) {
    size_t end = first_droppable + 1;
    while (end + 1 < window.messages.size() && window.messages[end].role != "user") ++end;
    window.messages.erase(window.messages.begin() + static_cast<std::ptrdiff_t>(first_droppable),
                          window.messages.begin() + static_cast<std::ptrdiff_t>(end));
    window.dropped_messages += end - first_droppable;
    window.prompt = render_prompt(tokenizer, window.messages);
  }
}

void shorten_last_message(const Tokenizer& tokenizer, int64_t max_prompt_tokens, ChatWindow& window) {
  ChatMessage& last = window.messages.back();
  const std::vector<int32_t> content = tokenizer.encode(last.content, false);
  int64_t keep = static_cast<int64_t>(content.size());
  // Each round drops at least one more token, so this ends.
  while (excess(window, max_prompt_tokens) > 0) {
    keep -= excess(window, max_prompt_tokens);
    check(keep > 0, "the chat template and the system prompt leave no room for the newest message in ",
          max_prompt_tokens, " prompt positions");
    last.content = text_of_last_tokens(tokenizer, content, static_cast<size_t>(keep));
    // The kept tokens may hold only the end of one character (byte-level vocabularies split
    // multi-byte characters): an empty newest message is no answer, so it is the same error.
    check(!last.content.empty(), "the chat template and the system prompt leave no room for a whole character of ",
          "the newest message in ", max_prompt_tokens, " prompt positions");
    window.prompt = render_prompt(tokenizer, window.messages);
  }
}

}  // namespace

ChatWindow fit_chat_to_context(const Tokenizer& tokenizer, std::span<const ChatMessage> messages,
                               int64_t max_prompt_tokens) {
  check(!messages.empty(), "the conversation has no messages");
  ChatWindow window{{messages.begin(), messages.end()}, render_prompt(tokenizer, messages), 0, 0};
  const int64_t whole = static_cast<int64_t>(window.prompt.size());
  drop_oldest_turns(tokenizer, max_prompt_tokens, window);
  shorten_last_message(tokenizer, max_prompt_tokens, window);
  window.dropped_tokens = whole - static_cast<int64_t>(window.prompt.size());
  return window;
}

}  // namespace hlwq
