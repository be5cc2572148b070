// The bodies of POST /v1/chat/completions and POST /v1/completions as validated structs. Parsing is
// a pure function of the body text and the server's limits, so that it can be unit-tested and
// fuzzed: any input gives either a request or an ApiError (status 400), never an exception.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "engine/sampler.h"
#include "server/api_error.h"
#include "tokenizer/chat_template.h"

namespace hlwq::server {

struct RequestLimits {
  int64_t context_length = 0;     // positions per sequence; max_tokens may not exceed it
  size_t max_stop_strings = 4;    // OpenAI's limit
  size_t max_messages = 4096;
};

// The fields both endpoints share.
struct SamplingRequest {
  std::optional<int64_t> max_tokens;  // absent: up to the context (chat) or 16 (completions)
  SamplerOptions sampler;             // temperature 1 and top_p 1 unless given (OpenAI's defaults)
  std::vector<std::string> stop;      // stop strings (not included in the output)
  bool stream = false;
  bool include_usage = false;         // stream_options.include_usage: a last chunk with usage
  std::string model;                  // echoed back; the server serves one model whatever it says
};

struct ChatRequest {
  std::vector<ChatMessage> messages;
  SamplingRequest sampling;
};

struct CompletionRequest {
  std::string prompt;
  SamplingRequest sampling;
};

template <class Request>
using Parsed = std::variant<Request, ApiError>;

Parsed<ChatRequest> parse_chat_request(std::string_view body, const RequestLimits& limits);
Parsed<CompletionRequest> parse_completion_request(std::string_view body, const RequestLimits& limits);

// The check that needs the tokenized prompt: a prompt that leaves no room in the context, or
// max_tokens past what is left, is a 400 (code "context_length_exceeded"). nullopt when it fits.
std::optional<ApiError> check_fits_context(int64_t prompt_tokens, std::optional<int64_t> max_tokens,
                                           int64_t context_length);

}  // namespace hlwq::server
