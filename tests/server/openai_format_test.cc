// The answer shapes OpenAI's clients read, and the server-sent-events framing.
#include "server/openai_format.h"

#include <gtest/gtest.h>

namespace hlwq::server {
namespace {

using nlohmann::json;

const AnswerHeader kHeader{"chatcmpl-1", "demo", 1765000000};

TEST(ServeSse, EventIsOneDataLineAndABlankLine) {
  const std::string event = sse_event(json{{"a", 1}});
  EXPECT_EQ(event, "data: {\"a\":1}\n\n");
  EXPECT_EQ(sse_done(), "data: [DONE]\n\n");
  // Text with newlines stays on the one data line (JSON escapes it), so the framing holds.
  const std::string text_event = sse_event(text_chunk_json(kHeader, "two\n\nlines", std::nullopt));
  EXPECT_EQ(text_event.find('\n'), text_event.size() - 2);
}

TEST(ServeSse, InvalidUtf8BecomesReplacementCharacters) {
  const std::string event = sse_event(text_chunk_json(kHeader, "ok\xC3", std::nullopt));
  const json parsed = json::parse(event.substr(6));
  EXPECT_EQ(parsed.at("choices")[0].at("text"), "ok\xEF\xBF\xBD");
}

TEST(ServeSse, ChatChunksHaveOpenAIsShape) {
  const json role = chat_chunk_json(kHeader, {{"role", "assistant"}, {"content", ""}}, std::nullopt);
  EXPECT_EQ(role.at("object"), "chat.completion.chunk");
  EXPECT_EQ(role.at("id"), "chatcmpl-1");
  EXPECT_EQ(role.at("model"), "demo");
  EXPECT_EQ(role.at("created"), 1765000000);
  EXPECT_EQ(role.at("choices")[0].at("delta").at("role"), "assistant");
  EXPECT_TRUE(role.at("choices")[0].at("finish_reason").is_null());
  const json last = chat_chunk_json(kHeader, json::object(), FinishReason::length);
  EXPECT_EQ(last.at("choices")[0].at("finish_reason"), "length");
  EXPECT_TRUE(last.at("choices")[0].at("delta").empty());
  const json usage = usage_chunk_json(kHeader, true, 7, 5);
  EXPECT_TRUE(usage.at("choices").empty());
  EXPECT_EQ(usage.at("usage").at("total_tokens"), 12);
}

TEST(ServeSse, WholeAnswersCarryUsageAndFinishReason) {
  const json chat = chat_completion_json(kHeader, "Paris.", FinishReason::stop, 20, 3);
  EXPECT_EQ(chat.at("object"), "chat.completion");
  EXPECT_EQ(chat.at("choices")[0].at("message").at("content"), "Paris.");
  EXPECT_EQ(chat.at("choices")[0].at("message").at("role"), "assistant");
  EXPECT_EQ(chat.at("choices")[0].at("finish_reason"), "stop");
  EXPECT_EQ(chat.at("usage"), (json{{"prompt_tokens", 20}, {"completion_tokens", 3}, {"total_tokens", 23}}));
  const json text = text_completion_json(kHeader, " Paris", FinishReason::length, 6, 16);
  EXPECT_EQ(text.at("object"), "text_completion");
  EXPECT_EQ(text.at("choices")[0].at("text"), " Paris");
  EXPECT_EQ(text.at("choices")[0].at("finish_reason"), "length");
  EXPECT_EQ(text.at("usage").at("completion_tokens"), 16);
}

}  // namespace
}  // namespace hlwq::server
