// The hand-written pre-tokenizer matchers against the splits HF `tokenizers` 0.23.3 makes with
// the regexes they implement (expected pieces printed by its pre_tokenize_str), and recognition
// of the regex spellings.
#include "tokenizer/pre_tokenizer.h"

#include <gtest/gtest.h>

#include "core/error.h"

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

TEST(PreTokenizer, RecognizesSpellingsAndRejectsOthers) {
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
  EXPECT_EQ(parse_pre_tokenizer(qwen, byte_level, "t"), std::vector<SplitPattern>{SplitPattern::kQwen2});
  EXPECT_TRUE(byte_level);
  const json gpt2 = {{"type", "ByteLevel"}, {"add_prefix_space", false}};
  EXPECT_EQ(parse_pre_tokenizer(gpt2, byte_level, "t"), std::vector<SplitPattern>{SplitPattern::kGpt2});
  EXPECT_TRUE(parse_pre_tokenizer(nullptr, byte_level, "t").empty());
  EXPECT_FALSE(byte_level);
  const json other = {{"type", "Split"}, {"pattern", {{"Regex", "\\w+"}}}, {"behavior", "Isolated"}};
  try {
    parse_pre_tokenizer(other, byte_level, "x.json");
    ADD_FAILURE() << "no error";
  } catch (const Error& error) {
    const std::string message = error.what();
    EXPECT_NE(message.find("\\w+"), std::string::npos) << message;
    EXPECT_NE(message.find("x.json"), std::string::npos) << message;
    EXPECT_NE(message.find("\\p{N}{1,3}"), std::string::npos) << message;  // lists the supported ones
  }
  EXPECT_THROW(parse_pre_tokenizer({{"type", "Whitespace"}}, byte_level, "t"), Error);
  EXPECT_THROW(parse_pre_tokenizer({{"type", "ByteLevel"}, {"add_prefix_space", true}}, byte_level, "t"), Error);
}

}  // namespace
}  // namespace hlwq
