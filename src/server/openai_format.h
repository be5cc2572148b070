// The JSON shapes of OpenAI's chat.completion, chat.completion.chunk, text_completion answers and
// the server-sent-events framing of a streamed answer ("data: {...}\n\n" ... "data: [DONE]\n\n").
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

namespace hlwq::server {

enum class FinishReason { stop, length };
const char* finish_reason_name(FinishReason reason);

// What one answer is: the names a client sees and when it was made (unix seconds).
struct AnswerHeader {
  std::string id;       // "chatcmpl-..." or "cmpl-..."
  std::string model;
  int64_t created = 0;
};

nlohmann::json usage_json(int64_t prompt_tokens, int64_t completion_tokens);

// Whole answers (stream: false).
nlohmann::json chat_completion_json(const AnswerHeader& header, const std::string& text, FinishReason finish,
                                    int64_t prompt_tokens, int64_t completion_tokens);
nlohmann::json text_completion_json(const AnswerHeader& header, const std::string& text, FinishReason finish,
                                    int64_t prompt_tokens, int64_t completion_tokens);

// Streamed pieces. A chat stream opens with a delta holding the role, then content deltas, then an
// empty delta with the finish reason; a completion stream sends text pieces, then the finish reason.
nlohmann::json chat_chunk_json(const AnswerHeader& header, const nlohmann::json& delta,
                               std::optional<FinishReason> finish);
nlohmann::json text_chunk_json(const AnswerHeader& header, const std::string& text,
                               std::optional<FinishReason> finish);
// The last chunk of a stream that asked for stream_options.include_usage: no choices, the usage.
nlohmann::json usage_chunk_json(const AnswerHeader& header, bool chat, int64_t prompt_tokens,
                                int64_t completion_tokens);

// JSON text where bytes that are not UTF-8 become U+FFFD rather than an exception.
std::string dump_json(const nlohmann::json& value);
// One server-sent event carrying `value`; and the stream's end marker.
std::string sse_event(const nlohmann::json& value);
std::string sse_done();

}  // namespace hlwq::server
