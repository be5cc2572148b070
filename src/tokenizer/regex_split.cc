// Split regexes run with PCRE2. The pattern is compiled once (UTF-8, Unicode properties, JIT
// where available); each piece is matched on its own, like HF and llama.cpp do.
#include "tokenizer/regex_split.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <algorithm>
#include <cstdio>

#include "core/error.h"

namespace hlwq {

struct RegexSplitter::Compiled {
  pcre2_code* code = nullptr;
  bool jit = false;
  Compiled() = default;
  Compiled(const Compiled&) = delete;
  Compiled& operator=(const Compiled&) = delete;
  ~Compiled() { pcre2_code_free(code); }
};

namespace {

// The pattern with control characters written as escapes, for one-line messages.
std::string printable(std::string_view pattern) {
  std::string out;
  for (const char c : pattern) {
    if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (static_cast<unsigned char>(c) < 0x20 || c == 0x7F) {
      char escaped[8];
      std::snprintf(escaped, sizeof escaped, "\\x%02X", static_cast<unsigned>(static_cast<unsigned char>(c)));
      out += escaped;
    } else {
      out += c;
    }
  }
  return out;
}

// PCRE2's \s (with UCP) is tab, line feed, vertical tab, form feed, carriage return and the Z
// categories; the White_Space property that the other engines use adds U+0085. Outside a class
// \s becomes [\s\x{85}] and \S becomes [^\s\x{85}]; inside one, \s gains \x{85}.
std::string with_unicode_whitespace(std::string_view pattern) {
  std::string out;
  out.reserve(pattern.size() + 16);
  bool in_class = false;
  for (size_t i = 0; i < pattern.size(); ++i) {
    const char c = pattern[i];
    if (c == '\\' && i + 1 < pattern.size()) {
      const char next = pattern[++i];
      if (next == 's') {
        out += in_class ? "\\s\\x{85}" : "[\\s\\x{85}]";
      } else if (next == 'S' && !in_class) {
        out += "[^\\s\\x{85}]";
      } else {
        out += c;
        out += next;
      }
      continue;
    }
    out += c;
    if (!in_class && c == '[') {
      in_class = true;
      // A ']' right after '[' or '[^' is a literal member.
      if (i + 1 < pattern.size() && pattern[i + 1] == '^') out += pattern[++i];
      if (i + 1 < pattern.size() && pattern[i + 1] == ']') out += pattern[++i];
    } else if (in_class && c == ']') {
      in_class = false;
    }
  }
  return out;
}

std::string pcre2_message(int code) {
  PCRE2_UCHAR buffer[256];
  if (pcre2_get_error_message(code, buffer, sizeof buffer) < 0) return concat("PCRE2 error ", code);
  return reinterpret_cast<const char*>(buffer);
}

struct MatchDataFree {
  void operator()(pcre2_match_data* data) const { pcre2_match_data_free(data); }
};

// One match-data block per thread; every pattern needs only the whole-match offsets.
pcre2_match_data* thread_match_data() {
  thread_local const std::unique_ptr<pcre2_match_data, MatchDataFree> data(pcre2_match_data_create(1, nullptr));
  check(data != nullptr, "out of memory for regex matching");
  return data.get();
}

struct Segment {
  size_t begin, end;
  bool is_match;
};

}  // namespace

std::optional<SplitBehavior> parse_split_behavior(std::string_view name) {
  if (name == "Isolated") return SplitBehavior::kIsolated;
  if (name == "Removed") return SplitBehavior::kRemoved;
  if (name == "MergedWithPrevious") return SplitBehavior::kMergedWithPrevious;
  if (name == "MergedWithNext") return SplitBehavior::kMergedWithNext;
  if (name == "Contiguous") return SplitBehavior::kContiguous;
  return std::nullopt;
}

RegexSplitter::RegexSplitter(std::string_view pattern, SplitBehavior behavior, bool invert, std::string_view source_name)
    : pattern_(pattern), behavior_(behavior), invert_(invert) {
  const std::string translated = with_unicode_whitespace(pattern);
  int error = 0;
  PCRE2_SIZE error_offset = 0;
  auto compiled = std::make_shared<Compiled>();
  compiled->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(translated.data()), translated.size(),
                                 PCRE2_UTF | PCRE2_UCP | PCRE2_DOLLAR_ENDONLY | PCRE2_MATCH_INVALID_UTF |
                                     PCRE2_NEVER_BACKSLASH_C,
                                 &error, &error_offset, nullptr);
  if (compiled->code == nullptr) {
    fail("bad pre-tokenizer regex ", printable(pattern), " (", pcre2_message(error), "), ", source_name);
  }
  compiled->jit = pcre2_jit_compile(compiled->code, PCRE2_JIT_COMPLETE) == 0;
  compiled_ = std::move(compiled);
}

bool RegexSplitter::jit_compiled() const { return compiled_->jit; }

void RegexSplitter::split(std::string_view text, TextRange range, std::vector<TextRange>& pieces) const {
  const size_t base = range.first;
  const size_t length = range.second - range.first;
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data() + base);
  pcre2_match_data* data = thread_match_data();
  const bool direct = behavior_ == SplitBehavior::kIsolated && !invert_;
  std::vector<Segment> segments;
  size_t previous = 0;
  for (size_t offset = 0; offset <= length;) {
    const int found = pcre2_match(compiled_->code, subject, length, offset, 0, data, nullptr);
    if (found == PCRE2_ERROR_NOMATCH) break;
    // (Not check(): its message arguments would be built on every match.)
    if (found < 0) fail("pre-tokenizer regex ", printable(pattern_), " failed (", pcre2_message(found), ")");
    const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(data);
    const size_t start = ovector[0], end = ovector[1];
    if (start > end || end > length) {
      fail("pre-tokenizer regex ", printable(pattern_), " reported a match outside the text (\\K is not supported)");
    }
    if (direct) {
      if (start > previous) pieces.emplace_back(base + previous, base + start);
      if (end > start) pieces.emplace_back(base + start, base + end);
    } else {
      if (start > previous) segments.push_back({previous, start, false});
      segments.push_back({start, end, true});
    }
    previous = end;
    offset = end;
    if (start == end) {
      // An empty match: search on from the next character.
      ++offset;
      while (offset < length && (static_cast<unsigned char>(text[base + offset]) & 0xC0) == 0x80) ++offset;
    }
  }
  if (direct) {
    if (previous < length) pieces.emplace_back(base + previous, range.second);
    return;
  }
  if (previous < length) segments.push_back({previous, length, false});
  if (invert_) {
    for (Segment& segment : segments) segment.is_match = !segment.is_match;
  }
  // HF's SplitDelimiterBehavior over the alternating match / non-match segments.
  std::vector<Segment> merged;
  bool previous_match = false;
  switch (behavior_) {
    case SplitBehavior::kIsolated: merged = std::move(segments); break;
    case SplitBehavior::kRemoved:
      for (const Segment& segment : segments) {
        if (!segment.is_match) merged.push_back(segment);
      }
      break;
    case SplitBehavior::kMergedWithPrevious:
      for (const Segment& segment : segments) {
        if (segment.is_match && !previous_match && !merged.empty()) {
          merged.back().end = segment.end;
        } else {
          merged.push_back(segment);
        }
        previous_match = segment.is_match;
      }
      break;
    case SplitBehavior::kMergedWithNext:
      for (size_t i = segments.size(); i-- > 0;) {
        const Segment& segment = segments[i];
        if (segment.is_match && !previous_match && !merged.empty()) {
          merged.back().begin = segment.begin;
        } else {
          merged.push_back(segment);
        }
        previous_match = segment.is_match;
      }
      std::reverse(merged.begin(), merged.end());
      break;
    case SplitBehavior::kContiguous:
      for (const Segment& segment : segments) {
        if (!merged.empty() && segment.is_match == previous_match) {
          merged.back().end = segment.end;
        } else {
          merged.push_back(segment);
        }
        previous_match = segment.is_match;
      }
      break;
  }
  for (const Segment& segment : merged) {
    if (segment.end > segment.begin) pieces.emplace_back(base + segment.begin, base + segment.end);
  }
}

}  // namespace hlwq
