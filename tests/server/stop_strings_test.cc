// Stop strings over streamed text: nothing of a stop string is ever shown, text that cannot start
// one is shown at once, and the shown text equals the whole text cut at the first stop string.
#include "server/stop_strings.h"

#include <gtest/gtest.h>

#include <random>

#include "server/answer_text.h"

namespace hlwq::server {
namespace {

TEST(ServeStopStrings, HoldsBackOnlyAPossibleStart) {
  StopStringMatcher matcher({"END", "\n\n"});
  EXPECT_EQ(matcher.push("Hello"), "Hello");
  EXPECT_EQ(matcher.push(" E"), " ");  // "E" may start END
  EXPECT_EQ(matcher.push("x"), "Ex");  // it did not
  EXPECT_EQ(matcher.push("\n"), "");
  EXPECT_EQ(matcher.push("EN"), "\n");
  EXPECT_FALSE(matcher.stopped());
  EXPECT_EQ(matcher.push("D and more"), "");
  EXPECT_TRUE(matcher.stopped());
  EXPECT_EQ(matcher.push("later"), "");
  EXPECT_EQ(matcher.flush(), "");
}

TEST(ServeStopStrings, FlushGivesTheHeldTailWhenNoStopCame) {
  StopStringMatcher matcher({"STOP"});
  EXPECT_EQ(matcher.push("abc ST"), "abc ");
  EXPECT_EQ(matcher.flush(), "ST");
  StopStringMatcher none({});
  EXPECT_EQ(none.push("anything"), "anything");
}

TEST(ServeStopStrings, RandomSplitsGiveTheTextCutAtTheFirstStop) {
  std::mt19937 random(7);
  const std::vector<std::string> stops = {"ab", "bca", "cc"};
  for (int trial = 0; trial < 500; ++trial) {
    std::string text;
    for (int i = 0; i < 20; ++i) text += "abcx"[random() % 4];
    size_t first = std::string::npos;
    for (const std::string& stop : stops) first = std::min(first, text.find(stop));
    const std::string expected = text.substr(0, first);
    StopStringMatcher matcher(stops);
    std::string shown;
    for (size_t position = 0; position < text.size();) {
      const size_t length = 1 + random() % 3;
      shown += matcher.push(text.substr(position, length));
      // Shown text never runs past the cut.
      ASSERT_EQ(shown, expected.substr(0, shown.size())) << text;
      position += length;
    }
    shown += matcher.flush();
    EXPECT_EQ(shown, expected) << text;
    EXPECT_EQ(matcher.stopped(), first != std::string::npos) << text;
  }
}

// A byte-level tokenizer (one token per printable ASCII character) for AnswerText.
Tokenizer ascii_tokenizer() {
  nlohmann::json vocab = nlohmann::json::object();
  int id = 0;
  for (int byte = 33; byte < 127; ++byte) vocab[std::string(1, static_cast<char>(byte))] = id++;
  return Tokenizer::from_json({{"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", nlohmann::json::array()}}}},
                              nullptr, "test/tokenizer.json");
}

TEST(ServeStopStrings, AnswerTextStopsAndCountsTokens) {
  const Tokenizer tokenizer = ascii_tokenizer();
  AnswerText text(tokenizer, {"XY"});
  std::string shown;
  for (const int32_t token : tokenizer.encode("abXcXYdef")) {
    shown += text.push(token);
    if (text.stopped()) break;
  }
  shown += text.finish();
  EXPECT_EQ(shown, "abXc");
  EXPECT_TRUE(text.stopped());
  EXPECT_EQ(text.tokens(), 6);  // a b X c X Y
}

}  // namespace
}  // namespace hlwq::server
