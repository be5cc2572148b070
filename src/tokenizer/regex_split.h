// The general pre-tokenizer: any Split regex (Hugging Face tokenizer.json, llama.cpp's per-model
// regexes), run with PCRE2 (UTF-8, Unicode properties such as \p{L} and \p{N}, JIT where the
// library has it), with the Split behaviours and `invert` of Hugging Face `tokenizers`.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/text_range.h"

namespace hlwq {

// What becomes of the matches (HF SplitDelimiterBehavior).
enum class SplitBehavior {
  kIsolated,            // matches and the text between them are pieces
  kRemoved,             // only the text between matches is kept
  kMergedWithPrevious,  // a match joins the piece before it
  kMergedWithNext,      // a match joins the piece after it
  kContiguous,          // consecutive matches form one piece
};

// "Isolated", "Removed", "MergedWithPrevious", "MergedWithNext", "Contiguous".
std::optional<SplitBehavior> parse_split_behavior(std::string_view name);

class RegexSplitter {
 public:
  // Throws hlwq::Error naming `source_name` when PCRE2 rejects the pattern. `\s` also matches
  // U+0085 (NEXT LINE), as in the Rust and Oniguruma engines HF uses and in llama.cpp; `$` matches
  // only at the very end of a piece.
  RegexSplitter(std::string_view pattern, SplitBehavior behavior, bool invert, std::string_view source_name);

  // Appends the pieces of text[range]; the regex sees only that piece (lookarounds and `$` stop
  // at its ends), as in HF and llama.cpp, which split piece by piece. Empty pieces are dropped.
  // Bytes that are not valid UTF-8 are never matched, so they stay between matches.
  void split(std::string_view text, TextRange range, std::vector<TextRange>& pieces) const;

  const std::string& pattern() const { return pattern_; }
  SplitBehavior behavior() const { return behavior_; }
  bool inverted() const { return invert_; }
  // Whether PCRE2 compiled the pattern to machine code.
  bool jit_compiled() const;

 private:
  struct Compiled;
  std::string pattern_;
  SplitBehavior behavior_;
  bool invert_;
  std::shared_ptr<const Compiled> compiled_;
};

}  // namespace hlwq
