#include "server/openai_format.h"

namespace hlwq::server {

using nlohmann::json;

const char* finish_reason_name(FinishReason reason) { return reason == FinishReason::stop ? "stop" : "length"; }

namespace {

json finish_json(std::optional<FinishReason> finish) {
  return finish ? json(finish_reason_name(*finish)) : json();
}

json header_json(const AnswerHeader& header, const char* object) {
  return {{"id", header.id}, {"object", object}, {"created", header.created}, {"model", header.model}};
}

}  // namespace

json usage_json(int64_t prompt_tokens, int64_t completion_tokens) {
  return {{"prompt_tokens", prompt_tokens},
          {"completion_tokens", completion_tokens},
          {"total_tokens", prompt_tokens + completion_tokens}};
}

json chat_completion_json(const AnswerHeader& header, const std::string& text, FinishReason finish,
                          int64_t prompt_tokens, int64_t completion_tokens) {
  json answer = header_json(header, "chat.completion");
  answer["choices"] = json::array({{{"index", 0},
                                    {"message", {{"role", "assistant"}, {"content", text}}},
                                    {"logprobs", nullptr},
                                    {"finish_reason", finish_reason_name(finish)}}});
  answer["usage"] = usage_json(prompt_tokens, completion_tokens);
  return answer;
}

json text_completion_json(const AnswerHeader& header, const std::string& text, FinishReason finish,
                          int64_t prompt_tokens, int64_t completion_tokens) {
  json answer = header_json(header, "text_completion");
  answer["choices"] = json::array(
      {{{"index", 0}, {"text", text}, {"logprobs", nullptr}, {"finish_reason", finish_reason_name(finish)}}});
  answer["usage"] = usage_json(prompt_tokens, completion_tokens);
  return answer;
}

json chat_chunk_json(const AnswerHeader& header, const json& delta, std::optional<FinishReason> finish) {
  json chunk = header_json(header, "chat.completion.chunk");
  chunk["choices"] =
      json::array({{{"index", 0}, {"delta", delta}, {"logprobs", nullptr}, {"finish_reason", finish_json(finish)}}});
  return chunk;
}

json text_chunk_json(const AnswerHeader& header, const std::string& text, std::optional<FinishReason> finish) {
  json chunk = header_json(header, "text_completion");
  chunk["choices"] =
      json::array({{{"index", 0}, {"text", text}, {"logprobs", nullptr}, {"finish_reason", finish_json(finish)}}});
  return chunk;
}

json usage_chunk_json(const AnswerHeader& header, bool chat, int64_t prompt_tokens, int64_t completion_tokens) {
  json chunk = header_json(header, chat ? "chat.completion.chunk" : "text_completion");
  chunk["choices"] = json::array();
  chunk["usage"] = usage_json(prompt_tokens, completion_tokens);
  return chunk;
}

std::string dump_json(const json& value) { return value.dump(-1, ' ', false, json::error_handler_t::replace); }

std::string sse_event(const json& value) { return "data: " + dump_json(value) + "\n\n"; }

std::string sse_done() { return "data: [DONE]\n\n"; }

}  // namespace hlwq::server
