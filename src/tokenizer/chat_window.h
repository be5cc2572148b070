// Fitting a conversation into the context window (`hlwq chat --truncate`): the oldest turns go
// first, whole; the system prompt and the newest message stay, the newest losing its oldest
// tokens only when nothing else is left to drop.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

namespace hlwq {

struct ChatWindow {
  std::vector<ChatMessage> messages;  // what is kept (the newest message maybe shortened)
  std::vector<int32_t> prompt;        // the kept messages through the chat template, tokenized
  size_t dropped_messages = 0;        // whole messages dropped from the front
  int64_t dropped_tokens = 0;         // prompt tokens fewer than the whole conversation's
};

// The conversation rendered with add_generation_prompt and tokenized, fitted into
// `max_prompt_tokens`: while it does not fit, drops the oldest turn (a user message and the
// replies up to the next user message), never a leading system message nor the last message;
// then keeps only the last tokens of the last message's text (re-rendered, since tokens can merge
// differently at the template's edges). Throws hlwq::Error when even an empty last message does
// not fit beside the system prompt and the template.
ChatWindow fit_chat_to_context(const Tokenizer& tokenizer, std::span<const ChatMessage> messages,
                               int64_t max_prompt_tokens);

}  // namespace hlwq
