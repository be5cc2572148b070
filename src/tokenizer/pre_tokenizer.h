// The text splitting ("pre-tokenization") before BPE, read from a tokenizer.json pre_tokenizer.
// The regexes of the common tokenizer families (recognized by their exact text) run as
// hand-written matchers over code points, which are fast; any other Split regex, and any Split
// with another behaviour or inverted, runs on the general PCRE2 path (regex_split.h).
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "tokenizer/regex_split.h"
#include "tokenizer/text_range.h"

namespace hlwq {

enum class SplitPattern {
  // 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
  kGpt2,
  // (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|
  // \s*[\r\n]+|\s+(?!\S)|\s+
  kLlama3,
  // Llama-3's pattern with \p{N} instead of \p{N}{1,3} (Qwen2, Qwen3).
  kQwen2,
  // kLlama3 and kQwen2 with the contractions spelled (?:'[sS]|'[tT]|...) as llama.cpp writes them:
  // only ASCII case varies, so 'ſ (long s) is not a contraction as it is under (?i:...).
  kLlama3AsciiCase,
  kQwen2AsciiCase,
  // \p{N}: every digit alone (SmolLM, StarCoder; HF Digits with individual_digits).
  kEachDigit,
  // \p{N}+: runs of digits (HF Digits without individual_digits).
  kDigitRuns,
};

// Appends the pieces of text[range] to `pieces`: the pattern's matches and the text between
// them (HF Split with behavior "Isolated").
void split_text(SplitPattern pattern, std::string_view text, TextRange range, std::vector<TextRange>& pieces);

// One step of the splitting: a hand-written matcher, or (when `regex` is set) the general path.
struct SplitStep {
  SplitPattern pattern = SplitPattern::kGpt2;
  std::shared_ptr<const RegexSplitter> regex;

  bool is_fast() const { return regex == nullptr; }
};

// Appends the pieces of text[range] that `step` makes.
void split_text(const SplitStep& step, std::string_view text, TextRange range, std::vector<TextRange>& pieces);

// The hand-written matcher for a Split regex spelled exactly `regex` (Isolated, not inverted);
// nothing for any other regex.
std::optional<SplitPattern> fast_split_pattern(std::string_view regex);

// The splitting a tokenizer.json "pre_tokenizer" value describes, in order; null means none.
// Whether it ends with a ByteLevel step is returned in `byte_level`. Throws hlwq::Error naming
// `source_name` for a step it does not know or a regex PCRE2 rejects.
std::vector<SplitStep> parse_pre_tokenizer(const nlohmann::json& pre_tokenizer, bool& byte_level,
                                           std::string_view source_name);

}  // namespace hlwq
