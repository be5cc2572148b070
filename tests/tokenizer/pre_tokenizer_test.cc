// The hand-written pre-tokenizer matchers against the splits HF `tokenizers` 0.23.3 makes with
// the regexes they implement (expected pieces printed by its pre_tokenize_str), and recognition
// of the regex spellings.
#include "tokenizer/pre_tokenizer.h"

#include <gtest/gtest.h>

#include "core/error.h"
#include "test_util.h"

namespace hlwq {
namespace {

using nlohmann::json;

std::vector<std::string> split(SplitPattern pattern, std::string_view text) {
  std::vector<TextRange> ranges;
  split_text(pattern, text, {0, text.size()}, ranges);
  std::vector<std::string> pieces;
  size_t expected_start = 0;
  for (const auto& [begin, end] : ranges) {
    EXPECT_EQ(begin, expected_start) << "pieces must tile the text";
    EXPECT_LT(begin, end);
    pieces.emplace_back(text.substr(begin, end - begin));
    expected_start = end;
  }
  EXPECT_EQ(expected_start, text.size());
  return pieces;
}

using Pieces = std::vector<std::string>;

TEST(PreTokenizer, Llama3MatchesHuggingFace) {
  EXPECT_EQ(split(SplitPattern::kLlama3, "it'\u017fx x'Sy 'll"), (Pieces{"it", "'\u017f", "x", " x", "'S", "y", " '", "ll"}));
  EXPECT_EQ(split(SplitPattern::kLlama3, "  \n  word"), (Pieces{"  \n", " ", " word"}));
  EXPECT_EQ(split(SplitPattern::kLlama3, "a\t\tb  "), (Pieces{"a", "\t", "\tb", "  "}));
  EXPECT_EQ(split(SplitPattern::kLlama3, "(word) 12345 ...\n\n x"), (Pieces{"(word", ")", " ", "123", "45", " ...\n\n", " x"}));
  EXPECT_EQ(split(SplitPattern::kLlama3, "\u3000\u3000x"), (Pieces{"\u3000", "\u3000x"}));
  EXPECT_EQ(split(SplitPattern::kLlama3, "I'M  \r\n\r\n  ok?!\n"), (Pieces{"I", "'M", "  \r\n\r\n", " ", " ok", "?!\n"}));
}

TEST(PreTokenizer, Qwen2SplitsEveryDigit) {
  EXPECT_EQ(split(SplitPattern::kQwen2, "(word) 12345 ...\n\n x"),
            (Pieces{"(word", ")", " ", "1", "2", "3", "4", "5", " ...\n\n", " x"}));
}

TEST(PreTokenizer, Gpt2MatchesHuggingFace) {
  EXPECT_EQ(split(SplitPattern::kGpt2, "it'\u017fx x'Sy 'll"), (Pieces{"it", "'", "\u017fx", " x", "'", "Sy", " '", "ll"}));
  EXPECT_EQ(split(SplitPattern::kGpt2, "  \n  word"), (Pieces{"  \n ", " word"}));
  EXPECT_EQ(split(SplitPattern::kGpt2, "a\t\tb  "), (Pieces{"a", "\t", "\t", "b", "  "}));
  EXPECT_EQ(split(SplitPattern::kGpt2, "(word) 12345 ...\n\n x"), (Pieces{"(", "word", ")", " 12345", " ...", "\n\n", " x"}));
  EXPECT_EQ(split(SplitPattern::kGpt2, "\u3000\u3000x"), (Pieces{"\u3000", "\u3000", "x"}));
  EXPECT_EQ(split(SplitPattern::kGpt2, "I'M  \r\n\r\n  ok?!\n"), (Pieces{"I", "'", "M", "  \r\n\r\n ", " ok", "?!", "\n"}));
}

TEST(PreTokenizer, Digits) {
  EXPECT_EQ(split(SplitPattern::kEachDigit, "ab12 3"), (Pieces{"ab", "1", "2", " ", "3"}));
  EXPECT_EQ(split(SplitPattern::kDigitRuns, "ab12 3"), (Pieces{"ab", "12", " ", "3"}));
  // Non-ASCII digits count (\p{N}): Arabic-Indic three.
  EXPECT_EQ(split(SplitPattern::kEachDigit, "x\u0663y"), (Pieces{"x", "\u0663", "y"}));
}

std::vector<SplitPattern> fast_patterns(const std::vector<SplitStep>& steps) {
  std::vector<SplitPattern> patterns;
  for (const SplitStep& step : steps) {
    EXPECT_TRUE(step.is_fast());
    patterns.push_back(step.pattern);
  }
  return patterns;
}

// llama.cpp spells the case-insensitive contractions out; then 'ſ is no contraction, and the
// apostrophe leads the word instead.
TEST(PreTokenizer, SpelledOutContractionsDoNotFoldLongS) {
  EXPECT_EQ(split(SplitPattern::kLlama3AsciiCase, "it'\u017fx x'Sy"), (Pieces{"it", "'\u017fx", " x", "'S", "y"}));
  EXPECT_EQ(split(SplitPattern::kQwen2AsciiCase, "I'M 12"), (Pieces{"I", "'M", " ", "1", "2"}));
}

TEST(PreTokenizer, RecognizesFastSpellingsAndRunsOtherRegexesWithPcre2) {
  bool byte_level = false;
  const json qwen = {{"type", "Sequence"},
                     {"pretokenizers",
                      {{{"type", "Split"},
                        {"pattern",
                         {{"Regex",
                           R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)"}}},
                        {"behavior", "Isolated"},
                        {"invert", false}},
                       {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}}}}};
  EXPECT_EQ(fast_patterns(parse_pre_tokenizer(qwen, byte_level, "t")), std::vector<SplitPattern>{SplitPattern::kQwen2});
  EXPECT_TRUE(byte_level);
  const json gpt2 = {{"type", "ByteLevel"}, {"add_prefix_space", false}};
  EXPECT_EQ(fast_patterns(parse_pre_tokenizer(gpt2, byte_level, "t")), std::vector<SplitPattern>{SplitPattern::kGpt2});
  EXPECT_TRUE(parse_pre_tokenizer(nullptr, byte_level, "t").empty());
  EXPECT_FALSE(byte_level);

  // Any other regex, and a fast regex with another behaviour, take the general path.
  const json words = {{"type", "Split"}, {"pattern", {{"Regex", "\\w+"}}}, {"behavior", "Removed"}, {"invert", true}};
  const auto steps = parse_pre_tokenizer(words, byte_level, "x.json");
  ASSERT_EQ(steps.size(), 1u);
  ASSERT_FALSE(steps[0].is_fast());
  EXPECT_EQ(steps[0].regex->pattern(), "\\w+");
  EXPECT_EQ(steps[0].regex->behavior(), SplitBehavior::kRemoved);
  EXPECT_TRUE(steps[0].regex->inverted());
  const std::string text = "ab, cd";
  std::vector<TextRange> ranges;
  split_text(steps[0], text, {0, text.size()}, ranges);
  EXPECT_EQ(ranges, (std::vector<TextRange>{{0, 2}, {4, 6}}));
  const json digits_removed = {{"type", "Split"}, {"pattern", {{"Regex", "\\p{N}"}}}, {"behavior", "Removed"}};
  EXPECT_FALSE(parse_pre_tokenizer(digits_removed, byte_level, "t")[0].is_fast());
  // A String pattern matches literally.
  const json literal = {{"type", "Split"}, {"pattern", {{"String", "a.b"}}}, {"behavior", "Isolated"}};
  ranges.clear();
  split_text(parse_pre_tokenizer(literal, byte_level, "t")[0], "xa.bxaxb", {0, 8}, ranges);
  EXPECT_EQ(ranges, (std::vector<TextRange>{{0, 1}, {1, 4}, {4, 8}}));

  const json bad = {{"type", "Split"}, {"pattern", {{"Regex", "(\\p{L}"}}}, {"behavior", "Isolated"}};
  const std::string message = error_message([&] { parse_pre_tokenizer(bad, byte_level, "x.json"); });
  EXPECT_NE(message.find("(\\p{L}"), std::string::npos) << message;
  EXPECT_NE(message.find("x.json"), std::string::npos) << message;
  const json odd_behavior = {{"type", "Split"}, {"pattern", {{"Regex", "a"}}}, {"behavior", "Sideways"}};
  EXPECT_NE(error_message([&] { parse_pre_tokenizer(odd_behavior, byte_level, "t"); }).find("Sideways"), std::string::npos);
  EXPECT_THROW(parse_pre_tokenizer({{"type", "Whitespace"}}, byte_level, "t"), Error);
  EXPECT_THROW(parse_pre_tokenizer({{"type", "ByteLevel"}, {"add_prefix_space", true}}, byte_level, "t"), Error);
}

}  // namespace
}  // namespace hlwq
