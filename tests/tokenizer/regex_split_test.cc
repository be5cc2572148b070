// The general (PCRE2) pre-tokenizer: HF's Split behaviours, whitespace and end-of-piece rules,
// errors; and the hand-written fast paths against it on the same regexes over WikiText-2, hard
// strings and random text.
#include "tokenizer/regex_split.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "core/error.h"
#include "tokenizer/pre_tokenizer.h"

namespace hlwq {
namespace {

namespace fs = std::filesystem;
using Pieces = std::vector<std::string>;

Pieces pieces_of(std::string_view text, const std::vector<TextRange>& ranges) {
  Pieces pieces;
  for (const auto& [begin, end] : ranges) pieces.emplace_back(text.substr(begin, end - begin));
  return pieces;
}

Pieces split(std::string_view regex, std::string_view text, SplitBehavior behavior = SplitBehavior::kIsolated,
             bool invert = false) {
  const RegexSplitter splitter(regex, behavior, invert, "test");
  std::vector<TextRange> ranges;
  splitter.split(text, {0, text.size()}, ranges);
  return pieces_of(text, ranges);
}

// The examples of HF `tokenizers`' SplitDelimiterBehavior documentation.
TEST(RegexSplit, BehavioursMatchHuggingFace) {
  const std::string text = "the-final--countdown";
  EXPECT_EQ(split("-", text, SplitBehavior::kRemoved), (Pieces{"the", "final", "countdown"}));
  EXPECT_EQ(split("-", text, SplitBehavior::kIsolated), (Pieces{"the", "-", "final", "-", "-", "countdown"}));
  EXPECT_EQ(split("-", text, SplitBehavior::kMergedWithPrevious), (Pieces{"the-", "final-", "-", "countdown"}));
  EXPECT_EQ(split("-", text, SplitBehavior::kMergedWithNext), (Pieces{"the", "-final", "-", "-countdown"}));
  EXPECT_EQ(split("-", text, SplitBehavior::kContiguous), (Pieces{"the", "-", "final", "--", "countdown"}));
  // Inverted: the text between matches is what splits.
  EXPECT_EQ(split("[a-z]+", text, SplitBehavior::kRemoved, true), (Pieces{"the", "final", "countdown"}));
  EXPECT_EQ(split("[a-z]+", text, SplitBehavior::kMergedWithPrevious, true), (Pieces{"the-", "final--", "countdown"}));
  EXPECT_EQ(split("-", "-a-", SplitBehavior::kMergedWithNext), (Pieces{"-a", "-"}));
  EXPECT_EQ(split("-", "-a-", SplitBehavior::kMergedWithPrevious), (Pieces{"-", "a-"}));
  EXPECT_EQ(parse_split_behavior("Contiguous"), SplitBehavior::kContiguous);
  EXPECT_FALSE(parse_split_behavior("isolated").has_value());
}

TEST(RegexSplit, UnicodeClassesWhitespaceAndPieceEnds) {
  // \p{L} and \p{M}: a combining mark stays with its letter only where the class allows it.
  EXPECT_EQ(split(R"(\p{L}+)", "e\u0301t\u00e9"), (Pieces{"e", "\u0301", "t\u00e9"}));
  EXPECT_EQ(split(R"([\p{L}\p{M}]+)", "e\u0301t\u00e9 x"), (Pieces{"e\u0301t\u00e9", " ", "x"}));
  // \s is Unicode's White_Space, U+0085 included, inside and outside classes; \S excludes it.
  EXPECT_EQ(split(R"(\s+)", "a\u0085\u3000b"), (Pieces{"a", "\u0085\u3000", "b"}));
  EXPECT_EQ(split(R"([\s,]+)", "a\u0085,b"), (Pieces{"a", "\u0085,", "b"}));
  EXPECT_EQ(split(R"(\S+)", "a\u0085b"), (Pieces{"a", "\u0085", "b"}));
  // `$` is the end of the piece only, never before a final newline.
  EXPECT_EQ(split(R"(\s+$)", "a  \n"), (Pieces{"a", "  \n"}));
  EXPECT_EQ(split(R"(b$)", "ab\n"), (Pieces{"ab\n"}));
  // The regex sees only its range: a lookahead does not look past it.
  const RegexSplitter splitter(R"(\s+(?!\S))", SplitBehavior::kIsolated, false, "test");
  const std::string text = "x  y";
  std::vector<TextRange> ranges;
  splitter.split(text, {0, 3}, ranges);
  EXPECT_EQ(pieces_of(text, ranges), (Pieces{"x", "  "}));
  // Case-insensitive groups fold as in Unicode (long s folds to s).
  EXPECT_EQ(split("(?i:'s)", "it'\u017f"), (Pieces{"it", "'\u017f"}));
}

TEST(RegexSplit, InvalidUtf8StaysBetweenMatchesAndPiecesTile) {
  const std::string text = "ab\xff\xfe cd\xc3";
  const RegexSplitter splitter(R"(\p{L}+|\s+)", SplitBehavior::kIsolated, false, "test");
  std::vector<TextRange> ranges;
  splitter.split(text, {0, text.size()}, ranges);
  EXPECT_EQ(pieces_of(text, ranges), (Pieces{"ab", "\xff\xfe", " ", "cd", "\xc3"}));
  // An empty match never loops.
  EXPECT_EQ(split("x*", "abxxc"), (Pieces{"a", "b", "xx", "c"}));
}

TEST(RegexSplit, BadRegexIsOneLineErrorNamingTheSource) {
  try {
    RegexSplitter("[\r\n(", SplitBehavior::kIsolated, false, "tokenizer.json");
    ADD_FAILURE() << "no error";
  } catch (const Error& error) {
    const std::string message = error.what();
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
    EXPECT_EQ(message.find('\r'), std::string::npos) << message;
    EXPECT_NE(message.find("[\\r\\n("), std::string::npos) << message;
    EXPECT_NE(message.find("tokenizer.json"), std::string::npos) << message;
  }
}

fs::path wikitext() {
  return fs::path(HLWQ_SOURCE_DIR) / ".." / "shared" / "data" / "wikitext-2-raw" / "wiki.test.raw";
}

// Hard strings for splitting: contractions in every case, marks, scripts, emoji, digits, spaces.
const std::vector<std::string>& hard_strings() {
  static const std::vector<std::string> strings = {
      "", " ", "\n", "  \n\n \t", "I'M you'Ve THEY'LL she'S it'\u017f we'RE 'd 'll's", "'''s ' s",
      "e\u0301 combining\u0301\u0301 marks \u0915\u094d\u0937", "\u00dcn\u00efc\u00f6d\u00e9",
      "\u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8 \ud55c\uad6d\uc5b4 \u0627\u0644\u0639\u0631\u0628\u064a\u0629",
      "\U0001f636\u200d\U0001f32b\ufe0f \U0001f44d\U0001f3fd \U0001f1ef\U0001f1f5",
      "1 22 333 4444 55555 1234567890123 \u0663\u0664 \u00bd\u00b2 \u2167", "x\u00a0y\u2009z\u3000w\u0085v",
      "a\r\n\r\nb \n\n  c   ", "   leading and trailing   ", "def f(x):\n\treturn x**2  # sq\n",
      "(word) ...\n\n x ?!\n", "\t\t\n\r\r\n  \u2028\u2029", "$+<=>^`|~ \u00a7\u00b6",
  };
  return strings;
}

std::string read_file(const fs::path& path) {
  std::ifstream stream(path, std::ios::binary);
  std::ostringstream contents;
  contents << stream.rdbuf();
  return contents.str();
}

// Random text from characters that sit on every class boundary the patterns test.
std::string random_text(std::mt19937& random) {
  static const std::vector<std::string> alphabet = {
      "a", "Z", "'", "s", "S", "t", "l", "L", "e", "v", "m", "d", "r", "7", " ", " ", "\t", "\n", "\r", "!",
      ".", "(", "_", "\u00e9", "\u0301", "\u0663", "\u00bd", "\u3000", "\u00a0", "\u0085", "\u4e2d",
      "\U0001f999", "\u200d", "\u017f", "\u0130", "\u2167", "\xff",
  };
  std::string text;
  const int length = std::uniform_int_distribution<int>(0, 24)(random);
  for (int k = 0; k < length; ++k) text += alphabet[std::uniform_int_distribution<size_t>(0, alphabet.size() - 1)(random)];
  return text;
}

struct FastPathCase {
  const char* name;
  const char* regex;
};

class FastPathAgreesWithPcre2 : public testing::TestWithParam<FastPathCase> {};

// Each regex the hand-written matchers stand for, split both ways: the pieces must be identical
// on the whole WikiText-2 test split (as one text and line by line), the hard strings and 20,000
// random strings.
TEST_P(FastPathAgreesWithPcre2, SamePieces) {
  const std::string regex = GetParam().regex;
  const auto fast = fast_split_pattern(regex);
  ASSERT_TRUE(fast.has_value()) << "not a fast path: " << regex;
  const RegexSplitter general(regex, SplitBehavior::kIsolated, false, "test");
  const auto compare = [&](const std::string& text) {
    std::vector<TextRange> by_hand, by_pcre2;
    split_text(*fast, text, {0, text.size()}, by_hand);
    general.split(text, {0, text.size()}, by_pcre2);
    return by_hand == by_pcre2;
  };
  size_t texts = 0;
  for (const std::string& text : hard_strings()) {
    EXPECT_TRUE(compare(text)) << GetParam().name << ": " << testing::PrintToString(text);
    ++texts;
  }
  std::mt19937 random(7);
  for (int i = 0; i < 20000; ++i) {
    // Invalid UTF-8 is left out: the two paths treat stray bytes differently by design.
    std::string text = random_text(random);
    if (text.find('\xff') != std::string::npos) continue;
    ASSERT_TRUE(compare(text)) << GetParam().name << ": " << testing::PrintToString(text);
    ++texts;
  }
  size_t pieces = 0;
  if (fs::exists(wikitext())) {
    const std::string text = read_file(wikitext());
    std::vector<TextRange> by_hand, by_pcre2;
    split_text(*fast, text, {0, text.size()}, by_hand);
    general.split(text, {0, text.size()}, by_pcre2);
    EXPECT_TRUE(by_hand == by_pcre2) << GetParam().name << ": WikiText-2 test split differs";
    pieces = by_pcre2.size();
    std::istringstream lines(text);
    for (std::string line; std::getline(lines, line);) {
      EXPECT_TRUE(compare(line + "\n")) << GetParam().name << ": " << testing::PrintToString(line);
      ++texts;
    }
  } else {
    std::printf("WikiText-2 not found at %s: only hard and random strings compared\n", wikitext().c_str());
  }
  std::printf("%s: %zu texts and WikiText-2 (%zu pieces) split identically\n", GetParam().name, texts, pieces);
}

INSTANTIATE_TEST_SUITE_P(
    KnownRegexes, FastPathAgreesWithPcre2,
    testing::Values(
        FastPathCase{"gpt2", R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)"},
        FastPathCase{"gpt2_llama_cpp", R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S))"},
        FastPathCase{"llama3",
                     R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)"},
        FastPathCase{"llama3_llama_cpp",
                     R"((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)"},
        FastPathCase{"qwen2",
                     R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)"},
        FastPathCase{"qwen2_llama_cpp",
                     R"((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)"},
        FastPathCase{"each_digit", R"(\p{N})"}, FastPathCase{"digit_runs", R"(\p{N}+)"}),
    [](const testing::TestParamInfo<FastPathCase>& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace hlwq
