// Hand-written matchers for the common pre-tokenizer regexes, and the reading of tokenizer.json
// pre_tokenizer steps. Each matcher returns the end of the match that the regex (leftmost
// alternative first, greedy quantifiers) finds at a position; the patterns cover every character,
// so consecutive matches tile the text.
#include "tokenizer/pre_tokenizer.h"

#include <array>
#include <cctype>

#include "core/error.h"
#include "tokenizer/unicode.h"

namespace hlwq {
namespace {

using nlohmann::json;

enum class Kind : uint8_t { kLetter, kNumber, kSpace, kOther };

struct Char {
  uint32_t length;
  Kind kind;
  char32_t value;
};

// Classifies the character at text[position]; position < end.
Char char_at(std::string_view text, size_t position) {
  const DecodedCodePoint decoded = decode_utf8(text, position);
  Kind kind = Kind::kOther;
  if (is_unicode_whitespace(decoded.value)) {
    kind = Kind::kSpace;
  } else {
    const UnicodeClass unicode = unicode_class(decoded.value);
    if (unicode == UnicodeClass::kLetter) kind = Kind::kLetter;
    if (unicode == UnicodeClass::kNumber) kind = Kind::kNumber;
  }
  return {decoded.length, kind, decoded.value};
}

// End of the run of characters of `kind` starting at `position` (at most `limit` characters).
size_t run_end(std::string_view text, size_t position, size_t end, Kind kind, size_t limit = SIZE_MAX) {
  for (size_t count = 0; position < end && count < limit; ++count) {
    const Char c = char_at(text, position);
    if (c.kind != kind) break;
    position += c.length;
  }
  return position;
}

bool is_line_break(char32_t c) { return c == '\r' || c == '\n'; }

// 's|'t|'re|'ve|'m|'ll|'d after the apostrophe at `position`; returns the match end or 0.
// Case-insensitive matching with Unicode folding also accepts U+017F (long s), which folds to s.
size_t contraction_end(std::string_view text, size_t position, size_t end, bool ignore_case, bool unicode_case) {
  const auto letter = [&](size_t at) -> char {
    if (at >= end) return 0;
    const char c = text[at];
    if (ignore_case && c >= 'A' && c <= 'Z') return static_cast<char>(c + 32);
    return c;
  };
  const char first = letter(position + 1);
  if (first == 's' || first == 't' || first == 'm' || first == 'd') return position + 2;
  const char second = letter(position + 2);
  if ((first == 'r' || first == 'v') && second == 'e') return position + 3;
  if (first == 'l' && second == 'l') return position + 3;
  if (unicode_case && position + 3 <= end && text.substr(position + 1, 2) == "\xC5\xBF") return position + 3;
  return 0;
}

// \s+(?!\S)|\s+ at a whitespace character: the whole run at the end of the text, otherwise the
// run less its last character (which then leads the next piece), or one character alone.
size_t whitespace_end(std::string_view text, size_t position, size_t end) {
  size_t last_start = position, cursor = position;
  while (cursor < end) {
    const Char c = char_at(text, cursor);
    if (c.kind != Kind::kSpace) break;
    last_start = cursor;
    cursor += c.length;
  }
  if (cursor == end || last_start == position) return cursor;
  return last_start;
}

size_t match_gpt2(std::string_view text, size_t position, size_t end) {
  const Char c = char_at(text, position);
  if (c.value == '\'') {
    if (const size_t contraction = contraction_end(text, position, end, false, false)) return contraction;
  }
  size_t start = position;
  Kind kind = c.kind;
  if (c.value == ' ' && position + 1 < end) {
    const Char next = char_at(text, position + 1);
    if (next.kind != Kind::kSpace) start = position + 1, kind = next.kind;
  }
  if (kind != Kind::kSpace) return run_end(text, start, end, kind);
  return whitespace_end(text, position, end);
}

size_t match_llama3(std::string_view text, size_t position, size_t end, size_t digit_limit, bool unicode_case) {
  const Char c = char_at(text, position);
  if (c.value == '\'') {
    if (const size_t contraction = contraction_end(text, position, end, true, unicode_case)) return contraction;
  }
  if (c.kind == Kind::kLetter) return run_end(text, position, end, Kind::kLetter);
  const size_t after = position + c.length;
  const Char next = after < end ? char_at(text, after) : Char{0, Kind::kOther, 0};
  if (c.kind != Kind::kNumber && !is_line_break(c.value) && after < end && next.kind == Kind::kLetter) {
    return run_end(text, after, end, Kind::kLetter);
  }
  if (c.kind == Kind::kNumber) return run_end(text, position, end, Kind::kNumber, digit_limit);
  // ` ?[^\s\p{L}\p{N}]+[\r\n]*`
  size_t other_start = SIZE_MAX;
  if (c.kind == Kind::kOther) other_start = position;
  if (c.value == ' ' && after < end && next.kind == Kind::kOther) other_start = after;
  if (other_start != SIZE_MAX) {
    size_t cursor = run_end(text, other_start, end, Kind::kOther);
    while (cursor < end && (text[cursor] == '\r' || text[cursor] == '\n')) ++cursor;
    return cursor;
  }
  // `\s*[\r\n]+`: the whitespace run up to and including its last line break.
  size_t cursor = position, past_last_break = 0;
  while (cursor < end) {
    const Char space = char_at(text, cursor);
    if (space.kind != Kind::kSpace) break;
    cursor += space.length;
    if (is_line_break(space.value)) past_last_break = cursor;
  }
  if (past_last_break != 0) return past_last_break;
  return whitespace_end(text, position, end);
}

// Pieces at every character of `kind`-run boundaries: each digit alone, or each run of digits.
void split_digits(std::string_view text, TextRange range, bool each_digit, std::vector<TextRange>& pieces) {
  size_t piece_start = range.first;
  for (size_t position = range.first; position < range.second;) {
    const Char c = char_at(text, position);
    if (c.kind != Kind::kNumber) {
      position += c.length;
      continue;
    }
    if (piece_start < position) pieces.emplace_back(piece_start, position);
    const size_t digits_end = each_digit ? position + c.length : run_end(text, position, range.second, Kind::kNumber);
    pieces.emplace_back(position, digits_end);
    position = piece_start = digits_end;
  }
  if (piece_start < range.second) pieces.emplace_back(piece_start, range.second);
}

struct KnownRegex {
  std::string_view regex;
  SplitPattern pattern;
};

// The spellings found in tokenizer.json files: the models' own, and the ones hlwq writes when it
// converts a GGUF vocabulary (io/gguf_pre_tokenizer.cc, case-insensitivity spelled out).
constexpr std::array<KnownRegex, 8> kKnownRegexes = {{
    {R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)", SplitPattern::kGpt2},
    {R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S))", SplitPattern::kGpt2},
    {R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)",
     SplitPattern::kLlama3},
    {R"((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)",
     SplitPattern::kLlama3AsciiCase},
    {R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)",
     SplitPattern::kQwen2},
    {R"((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)",
     SplitPattern::kQwen2AsciiCase},
    {R"(\p{N})", SplitPattern::kEachDigit},
    {R"(\p{N}+)", SplitPattern::kDigitRuns},
}};

void parse_step(const json& step, std::vector<SplitStep>& steps, bool& byte_level, std::string_view source_name) {
  check(step.is_object() && step.contains("type") && step["type"].is_string(),
        "pre_tokenizer step without a type, ", source_name);
  const std::string type = step["type"];
  if (type == "Sequence") {
    check(step.contains("pretokenizers") && step["pretokenizers"].is_array(),
          "pre_tokenizer Sequence without pretokenizers, ", source_name);
    for (const json& inner : step["pretokenizers"]) parse_step(inner, steps, byte_level, source_name);
  } else if (type == "ByteLevel") {
    check(!step.value("add_prefix_space", false), "ByteLevel add_prefix_space is not supported, ", source_name);
    byte_level = true;
    if (step.value("use_regex", true)) steps.push_back({SplitPattern::kGpt2, nullptr});
  } else if (type == "Digits") {
    steps.push_back({step.value("individual_digits", false) ? SplitPattern::kEachDigit : SplitPattern::kDigitRuns, nullptr});
  } else if (type == "Split") {
    const std::string behavior_name = step.value("behavior", std::string());
    const auto behavior = parse_split_behavior(behavior_name);
    check(behavior.has_value(), "unsupported Split behavior '", behavior_name,
          "' (supported: Isolated, Removed, MergedWithPrevious, MergedWithNext, Contiguous), ", source_name);
    const bool invert = step.value("invert", false);
    const json& pattern = step.value("pattern", json::object());
    std::string regex;
    if (pattern.contains("Regex") && pattern["Regex"].is_string()) {
      regex = pattern["Regex"];
    } else {
      // A plain string splits where it occurs, as the regex that matches it literally.
      check(pattern.contains("String") && pattern["String"].is_string() && !pattern["String"].get<std::string>().empty(),
            "Split pattern is neither a regex nor a non-empty string, ", source_name);
      for (const char c : pattern["String"].get<std::string>()) {
        if (static_cast<unsigned char>(c) < 0x80 && !std::isalnum(static_cast<unsigned char>(c))) regex += '\\';
        regex += c;
      }
    }
    if (const auto fast = fast_split_pattern(regex); fast && *behavior == SplitBehavior::kIsolated && !invert) {
      steps.push_back({*fast, nullptr});
    } else {
      steps.push_back({SplitPattern::kGpt2, std::make_shared<const RegexSplitter>(regex, *behavior, invert, source_name)});
    }
  } else {
    fail("unsupported pre-tokenizer ", type, " (supported: ByteLevel, Digits, Split, Sequence of them), ", source_name);
  }
}

}  // namespace

void split_text(SplitPattern pattern, std::string_view text, TextRange range, std::vector<TextRange>& pieces) {
  if (pattern == SplitPattern::kEachDigit || pattern == SplitPattern::kDigitRuns) {
    split_digits(text, range, pattern == SplitPattern::kEachDigit, pieces);
    return;
  }
  for (size_t position = range.first; position < range.second;) {
    size_t match_end = 0;
    switch (pattern) {
      case SplitPattern::kGpt2: match_end = match_gpt2(text, position, range.second); break;
      case SplitPattern::kLlama3: match_end = match_llama3(text, position, range.second, 3, true); break;
      case SplitPattern::kLlama3AsciiCase: match_end = match_llama3(text, position, range.second, 3, false); break;
      case SplitPattern::kQwen2AsciiCase: match_end = match_llama3(text, position, range.second, 1, false); break;
      default: match_end = match_llama3(text, position, range.second, 1, true); break;
    }
    pieces.emplace_back(position, match_end);
    position = match_end;
  }
}

void split_text(const SplitStep& step, std::string_view text, TextRange range, std::vector<TextRange>& pieces) {
  if (step.regex != nullptr) {
    step.regex->split(text, range, pieces);
  } else {
    split_text(step.pattern, text, range, pieces);
  }
}

std::optional<SplitPattern> fast_split_pattern(std::string_view regex) {
  for (const KnownRegex& known : kKnownRegexes) {
    if (known.regex == regex) return known.pattern;
  }
  return std::nullopt;
}

std::vector<SplitStep> parse_pre_tokenizer(const json& pre_tokenizer, bool& byte_level, std::string_view source_name) {
  byte_level = false;
  std::vector<SplitStep> steps;
  if (!pre_tokenizer.is_null()) parse_step(pre_tokenizer, steps, byte_level, source_name);
  return steps;
}

}  // namespace hlwq
