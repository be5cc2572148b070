// The request parser: good bodies give the fields, every bad one a 400 with a message that names
// the field; nothing throws.
#include "server/api_request.h"

#include <gtest/gtest.h>

namespace hlwq::server {
namespace {

const RequestLimits kLimits{2048};

template <class Request>
const ApiError& error_of(const Parsed<Request>& parsed) {
  static const ApiError none{0, "(parsed without an error)", "", ""};
  const ApiError* error = std::get_if<ApiError>(&parsed);
  return error ? *error : none;
}

TEST(ServeApiRequest, ParsesAChatRequestWithEveryField) {
  const auto parsed = parse_chat_request(R"({
    "model": "demo", "messages": [{"role": "system", "content": "be brief"},
                                  {"role": "user", "content": [{"type": "text", "text": "hi "}, {"type": "text", "text": "there"}]}],
    "max_tokens": 12, "temperature": 0.5, "top_p": 0.9, "top_k": 40, "min_p": 0.05, "seed": -3,
    "stop": ["\n\n", "END"], "stream": true, "stream_options": {"include_usage": true}, "n": 1,
    "frequency_penalty": 0, "user": "someone"})",
                                         kLimits);
  ASSERT_TRUE(std::holds_alternative<ChatRequest>(parsed)) << error_of(parsed).message;
  const ChatRequest& request = std::get<ChatRequest>(parsed);
  ASSERT_EQ(request.messages.size(), 2u);
  EXPECT_EQ(request.messages[0].role, "system");
  EXPECT_EQ(request.messages[1].content, "hi there");
  EXPECT_EQ(request.sampling.model, "demo");
  EXPECT_EQ(request.sampling.max_tokens, 12);
  EXPECT_FLOAT_EQ(request.sampling.sampler.temperature, 0.5f);
  EXPECT_FLOAT_EQ(request.sampling.sampler.top_p, 0.9f);
  EXPECT_EQ(request.sampling.sampler.top_k, 40);
  EXPECT_FLOAT_EQ(request.sampling.sampler.min_p, 0.05f);
  EXPECT_EQ(request.sampling.sampler.seed, static_cast<uint64_t>(-3));
  EXPECT_EQ(request.sampling.stop, (std::vector<std::string>{"\n\n", "END"}));
  EXPECT_TRUE(request.sampling.stream);
  EXPECT_TRUE(request.sampling.include_usage);
}

TEST(ServeApiRequest, DefaultsAreOpenAIs) {
  const auto parsed = parse_chat_request(R"({"messages": [{"role": "user", "content": "x"}], "stop": "END",
                                             "max_tokens": null, "temperature": null})",
                                         kLimits);
  ASSERT_TRUE(std::holds_alternative<ChatRequest>(parsed)) << error_of(parsed).message;
  const SamplingRequest& sampling = std::get<ChatRequest>(parsed).sampling;
  EXPECT_FALSE(sampling.max_tokens.has_value());
  EXPECT_FLOAT_EQ(sampling.sampler.temperature, 1.0f);
  EXPECT_FLOAT_EQ(sampling.sampler.top_p, 1.0f);
  EXPECT_EQ(sampling.sampler.top_k, 0);
  EXPECT_EQ(sampling.stop, std::vector<std::string>{"END"});
  EXPECT_FALSE(sampling.stream);
}

TEST(ServeApiRequest, ParsesACompletionRequest) {
  auto parsed = parse_completion_request(R"({"prompt": "The capital of France is", "max_tokens": 8, "temperature": 0})",
                                         kLimits);
  ASSERT_TRUE(std::holds_alternative<CompletionRequest>(parsed)) << error_of(parsed).message;
  EXPECT_EQ(std::get<CompletionRequest>(parsed).prompt, "The capital of France is");
  EXPECT_FLOAT_EQ(std::get<CompletionRequest>(parsed).sampling.sampler.temperature, 0.0f);
  parsed = parse_completion_request(R"({"prompt": ["one string"]})", kLimits);
  ASSERT_TRUE(std::holds_alternative<CompletionRequest>(parsed)) << error_of(parsed).message;
  EXPECT_EQ(std::get<CompletionRequest>(parsed).prompt, "one string");
}

struct BadBody {
  const char* body;
  const char* code;
  const char* message_part;  // what the message must name
};

TEST(ServeApiRequest, RefusesBadChatBodiesWith400) {
  const char* const user = R"("messages": [{"role": "user", "content": "x"}])";
  const auto with = [&](const std::string& more) { return "{" + std::string(user) + ", " + more + "}"; };
  const std::vector<std::pair<std::string, BadBody>> cases = {
      {"", {"", "invalid_json", "not valid JSON"}},
      {"{\"messages\": [", {"", "invalid_json", "not valid JSON"}},
      {"[1, 2]", {"", "invalid_json", "JSON object"}},
      {"\"text\"", {"", "invalid_json", "JSON object"}},
      // Bytes that are not UTF-8 inside a string: where they are (a cut character too).
      {"{\"messages\": [{\"role\": \"user\", \"content\": \"hi \xff\xfe\"}]}", {"", "invalid_json", "not UTF-8 (byte 46 "}},
      {"{\"messages\": [{\"role\": \"user\", \"content\": \"\xc3\"}]}", {"", "invalid_json", "not UTF-8 (byte 43 "}},
      {"{}", {"", "missing_field", "'messages'"}},
      {R"({"messages": "hi"})", {"", "invalid_type", "'messages'"}},
      {R"({"messages": []})", {"", "invalid_value", "'messages'"}},
      {R"({"messages": [3]})", {"", "invalid_type", "messages[0]"}},
      {R"({"messages": [{"content": "x"}]})", {"", "missing_field", "messages[0].role"}},
      {R"({"messages": [{"role": 1, "content": "x"}]})", {"", "invalid_type", "messages[0].role"}},
      {R"({"messages": [{"role": "wizard", "content": "x"}]})", {"", "invalid_value", "messages[0].role"}},
      {R"({"messages": [{"role": "user"}]})", {"", "missing_field", "messages[0].content"}},
      {R"({"messages": [{"role": "user", "content": 5}]})", {"", "invalid_type", "messages[0].content"}},
      {R"({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]})", {"", "invalid_value", "text"}},
      {with(R"("max_tokens": "10")"), {"", "invalid_type", "'max_tokens'"}},
      {with(R"("max_tokens": 1.5)"), {"", "invalid_type", "'max_tokens'"}},
      {with(R"("max_tokens": 0)"), {"", "invalid_value", "'max_tokens'"}},
      {with(R"("max_tokens": -4)"), {"", "invalid_value", "'max_tokens'"}},
      {with(R"("max_tokens": 2049)"), {"", "context_length_exceeded", "context"}},
      {with(R"("max_tokens": 18446744073709551615)"), {"", "context_length_exceeded", "context"}},
      {with(R"("max_completion_tokens": true)"), {"", "invalid_type", "'max_completion_tokens'"}},
      {with(R"("temperature": "hot")"), {"", "invalid_type", "'temperature'"}},
      {with(R"("temperature": 2.5)"), {"", "invalid_value", "'temperature'"}},
      {with(R"("temperature": -1)"), {"", "invalid_value", "'temperature'"}},
      {with(R"("top_p": 0)"), {"", "invalid_value", "'top_p'"}},
      {with(R"("top_p": 1.5)"), {"", "invalid_value", "'top_p'"}},
      {with(R"("top_p": [1])"), {"", "invalid_type", "'top_p'"}},
      {with(R"("top_k": -1)"), {"", "invalid_value", "'top_k'"}},
      {with(R"("top_k": 0.5)"), {"", "invalid_type", "'top_k'"}},
      {with(R"("top_k": 3000000000)"), {"", "invalid_value", "'top_k'"}},
      {with(R"("min_p": 2)"), {"", "invalid_value", "'min_p'"}},
      {with(R"("min_p": false)"), {"", "invalid_type", "'min_p'"}},
      {with(R"("seed": "7")"), {"", "invalid_type", "'seed'"}},
      {with(R"("seed": 1.25)"), {"", "invalid_type", "'seed'"}},
      {with(R"("stop": 7)"), {"", "invalid_type", "'stop'"}},
      {with(R"("stop": ["a", 7])"), {"", "invalid_type", "'stop'"}},
      {with(R"("stop": [""])"), {"", "invalid_value", "'stop'"}},
      {with(R"("stop": ["a", "b", "c", "d", "e"])"), {"", "invalid_value", "'stop'"}},
      {with(R"("stream": "yes")"), {"", "invalid_type", "'stream'"}},
      {with(R"("stream_options": true)"), {"", "invalid_type", "'stream_options'"}},
      {with(R"("stream_options": {"include_usage": 1})"), {"", "invalid_type", "include_usage"}},
      {with(R"("n": 2)"), {"", "invalid_value", "'n'"}},
      {with(R"("model": 3)"), {"", "invalid_type", "'model'"}},
      {with(R"("presence_penalty": 0.5)"), {"", "invalid_value", "'presence_penalty'"}},
      {with(R"("logprobs": true)"), {"", "invalid_value", "'logprobs'"}},
  };
  for (const auto& [body, expected] : cases) {
    const auto parsed = parse_chat_request(body, kLimits);
    ASSERT_TRUE(std::holds_alternative<ApiError>(parsed)) << body;
    const ApiError& error = std::get<ApiError>(parsed);
    EXPECT_EQ(error.status, 400) << body;
    EXPECT_EQ(error.type, "invalid_request_error") << body;
    EXPECT_EQ(error.code, expected.code) << body << ": " << error.message;
    EXPECT_NE(error.message.find(expected.message_part), std::string::npos) << body << ": " << error.message;
    EXPECT_EQ(error.message.find('\n'), std::string::npos) << "one line: " << error.message;
  }
}

TEST(ServeApiRequest, RefusesBadCompletionBodiesWith400) {
  for (const char* body : {R"({})", R"({"prompt": 3})", R"({"prompt": ""})", R"({"prompt": ["a", "b"]})",
                           R"({"prompt": [1, 2, 3]})", R"({"prompt": "x", "suffix": "y"})",
                           R"({"prompt": "x", "echo": true})", R"({"prompt": "x", "max_tokens": {}})"}) {
    const auto parsed = parse_completion_request(body, kLimits);
    ASSERT_TRUE(std::holds_alternative<ApiError>(parsed)) << body;
    EXPECT_EQ(std::get<ApiError>(parsed).status, 400) << body;
  }
}

TEST(ServeApiRequest, ErrorBodyIsOpenAIsShape) {
  const ApiError error{429, "busy", "server_busy", "queue_full"};
  const nlohmann::json body = error.body();
  EXPECT_EQ(body.at("error").at("message"), "busy");
  EXPECT_EQ(body.at("error").at("type"), "server_busy");
  EXPECT_EQ(body.at("error").at("code"), "queue_full");
}

TEST(ServeApiRequest, ContextChecksNeedRoomForTheAnswer) {
  EXPECT_FALSE(check_fits_context(10, std::nullopt, 64).has_value());
  EXPECT_FALSE(check_fits_context(10, 54, 64).has_value());
  const auto too_long_answer = check_fits_context(10, 55, 64);
  ASSERT_TRUE(too_long_answer.has_value());
  EXPECT_EQ(too_long_answer->status, 400);
  EXPECT_EQ(too_long_answer->code, "context_length_exceeded");
  const auto too_long_prompt = check_fits_context(64, std::nullopt, 64);
  ASSERT_TRUE(too_long_prompt.has_value());
  EXPECT_NE(too_long_prompt->message.find("64 tokens"), std::string::npos) << too_long_prompt->message;
  EXPECT_TRUE(check_fits_context(100, 1, 64).has_value());
}

}  // namespace
}  // namespace hlwq::server
