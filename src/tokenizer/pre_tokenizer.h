// The text splitting ("pre-tokenization") before BPE: the regex patterns of the supported
// tokenizer families, implemented as hand-written matchers over code points (std::regex has no
// Unicode classes), recognized from a tokenizer.json pre_tokenizer by their exact regex text.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace hlwq {

enum class SplitPattern {
  // 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
  kGpt2,
  // (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|
  // \s*[\r\n]+|\s+(?!\S)|\s+
  kLlama3,
  // Llama-3's pattern with \p{N} instead of \p{N}{1,3} (Qwen2, Qwen3).
  kQwen2,
  // \p{N}: every digit alone (SmolLM, StarCoder; HF Digits with individual_digits).
  kEachDigit,
  // \p{N}+: runs of digits (HF Digits without individual_digits).
  kDigitRuns,
};

// Byte offsets [begin, end) of one piece of the text.
using TextRange = std::pair<size_t, size_t>;

// Appends the pieces of text[range] to `pieces`: the pattern's matches and the text between
// them (HF Split with behavior "Isolated").
void split_text(SplitPattern pattern, std::string_view text, TextRange range, std::vector<TextRange>& pieces);

// The splitting a tokenizer.json "pre_tokenizer" value describes, in order; null means none.
// Whether it ends with a ByteLevel step is returned in `byte_level`. Throws hlwq::Error naming
// `source_name` for a pattern or step it does not know, listing the supported ones.
std::vector<SplitPattern> parse_pre_tokenizer(const nlohmann::json& pre_tokenizer, bool& byte_level,
                                              std::string_view source_name);

}  // namespace hlwq
