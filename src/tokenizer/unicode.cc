// UTF-8 stepping, character classes and NFC over the generated tables in unicode_tables.cc.
#include "tokenizer/unicode.h"

#include <algorithm>
#include <vector>

namespace hlwq {
namespace {

constexpr char32_t kReplacement = 0xFFFD;

// Hangul syllables compose and decompose by arithmetic (Unicode chapter 3.12).
constexpr char32_t kHangulSBase = 0xAC00, kHangulLBase = 0x1100, kHangulVBase = 0x1161,
                   kHangulTBase = 0x11A7;
constexpr char32_t kHangulLCount = 19, kHangulVCount = 21, kHangulTCount = 28;
constexpr char32_t kHangulNCount = kHangulVCount * kHangulTCount;
constexpr char32_t kHangulSCount = kHangulLCount * kHangulNCount;

const CanonicalDecomposition* find_decomposition(char32_t c) {
  const auto it = std::lower_bound(kCanonicalDecompositions.begin(), kCanonicalDecompositions.end(), c,
                                   [](const CanonicalDecomposition& entry, char32_t value) { return entry.code_point < value; });
  return it != kCanonicalDecompositions.end() && it->code_point == c ? &*it : nullptr;
}

uint8_t combining_class(char32_t c) {
  if (c < 0x300) return 0;
  const auto it = std::lower_bound(kCombiningClasses.begin(), kCombiningClasses.end(), c,
                                   [](const CombiningClass& entry, char32_t value) { return entry.code_point < value; });
  return it != kCombiningClasses.end() && it->code_point == c ? it->value : 0;
}

// 0 when the pair does not compose.
char32_t compose_pair(char32_t first, char32_t second) {
  if (first >= kHangulLBase && first < kHangulLBase + kHangulLCount && second >= kHangulVBase &&
      second < kHangulVBase + kHangulVCount) {
    return kHangulSBase + ((first - kHangulLBase) * kHangulVCount + (second - kHangulVBase)) * kHangulTCount;
  }
  if (first >= kHangulSBase && first < kHangulSBase + kHangulSCount && (first - kHangulSBase) % kHangulTCount == 0 &&
      second > kHangulTBase && second < kHangulTBase + kHangulTCount) {
    return first + (second - kHangulTBase);
  }
  const auto it = std::lower_bound(kPrimaryComposites.begin(), kPrimaryComposites.end(), std::pair{first, second},
                                   [](const PrimaryComposite& entry, std::pair<char32_t, char32_t> value) {
                                     return std::pair{entry.first, entry.second} < value;
                                   });
  return it != kPrimaryComposites.end() && it->first == first && it->second == second ? it->composite : 0;
}

// Code points that can be a composition's second half, sorted: their presence means text that
// looks composed may still change.
const std::vector<char32_t>& composition_seconds() {
  static const std::vector<char32_t> seconds = [] {
    std::vector<char32_t> values;
    for (const PrimaryComposite& entry : kPrimaryComposites) values.push_back(entry.second);
    std::sort(values.begin(), values.end());
    values.erase(std::unique(values.begin(), values.end()), values.end());
    return values;
  }();
  return seconds;
}

const std::vector<char32_t>& composites() {
  static const std::vector<char32_t> values = [] {
    std::vector<char32_t> list;
    for (const PrimaryComposite& entry : kPrimaryComposites) list.push_back(entry.composite);
    std::sort(list.begin(), list.end());
    return list;
  }();
  return values;
}

// NFC quick check: false for code points that NFC might alter or that might combine with what
// precedes them.
bool is_nfc_stable(char32_t c) {
  if (c < 0x300) return true;
  if (combining_class(c) != 0) return false;
  if (c >= kHangulVBase && c < kHangulVBase + kHangulVCount) return false;
  if (c > kHangulTBase && c < kHangulTBase + kHangulTCount) return false;
  if (std::binary_search(composition_seconds().begin(), composition_seconds().end(), c)) return false;
  if (find_decomposition(c) != nullptr) return std::binary_search(composites().begin(), composites().end(), c);
  return true;
}

void decompose(char32_t c, std::vector<char32_t>& out) {
  if (c >= kHangulSBase && c < kHangulSBase + kHangulSCount) {
    const char32_t index = c - kHangulSBase;
    out.push_back(kHangulLBase + index / kHangulNCount);
    out.push_back(kHangulVBase + (index % kHangulNCount) / kHangulTCount);
    if (index % kHangulTCount != 0) out.push_back(kHangulTBase + index % kHangulTCount);
    return;
  }
  const CanonicalDecomposition* entry = find_decomposition(c);
  if (entry == nullptr) {
    out.push_back(c);
    return;
  }
  decompose(entry->first, out);
  if (entry->second != 0) decompose(entry->second, out);
}

}  // namespace

DecodedCodePoint decode_utf8(std::string_view text, size_t position) {
  const auto byte = [&](size_t i) { return static_cast<unsigned char>(text[i]); };
  const unsigned char lead = byte(position);
  if (lead < 0x80) return {lead, 1};
  uint32_t length = 0;
  char32_t value = 0, minimum = 0;
  if ((lead & 0xE0) == 0xC0) {
    length = 2, value = lead & 0x1F, minimum = 0x80;
  } else if ((lead & 0xF0) == 0xE0) {
    length = 3, value = lead & 0x0F, minimum = 0x800;
  } else if ((lead & 0xF8) == 0xF0) {
    length = 4, value = lead & 0x07, minimum = 0x10000;
  } else {
    return {kReplacement, 1};
  }
  if (position + length > text.size()) return {kReplacement, 1};
  for (uint32_t i = 1; i < length; ++i) {
    const unsigned char next = byte(position + i);
    if ((next & 0xC0) != 0x80) return {kReplacement, 1};
    value = (value << 6) | (next & 0x3F);
  }
  if (value < minimum || value > 0x10FFFF || (value >= 0xD800 && value <= 0xDFFF)) return {kReplacement, 1};
  return {value, length};
}

void append_utf8(char32_t c, std::string& out) {
  if (c < 0x80) {
    out += static_cast<char>(c);
  } else if (c < 0x800) {
    out += static_cast<char>(0xC0 | (c >> 6));
    out += static_cast<char>(0x80 | (c & 0x3F));
  } else if (c < 0x10000) {
    out += static_cast<char>(0xE0 | (c >> 12));
    out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (c & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (c >> 18));
    out += static_cast<char>(0x80 | ((c >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (c & 0x3F));
  }
}

UnicodeClass unicode_class(char32_t c) {
  if (c < 0x80) {
    if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') return UnicodeClass::kLetter;
    if (c >= '0' && c <= '9') return UnicodeClass::kNumber;
    return UnicodeClass::kOther;
  }
  const auto it = std::upper_bound(kUnicodeClassRanges.begin(), kUnicodeClassRanges.end(), c,
                                   [](char32_t value, const UnicodeClassRange& range) { return value < range.first; });
  if (it == kUnicodeClassRanges.begin()) return UnicodeClass::kOther;
  const UnicodeClassRange& range = *(it - 1);
  return c <= range.last ? range.kind : UnicodeClass::kOther;
}

namespace {

// Full NFC of a short region: decompose, reorder, recompose.
void nfc_region(std::string_view text, std::string& out) {
  std::vector<char32_t> code_points;
  code_points.reserve(text.size());
  for (size_t position = 0; position < text.size();) {
    const DecodedCodePoint decoded = decode_utf8(text, position);
    decompose(decoded.value, code_points);
    position += decoded.length;
  }
  // Canonical ordering: each run of non-starters sorted stably by combining class.
  for (size_t start = 0; start < code_points.size();) {
    if (combining_class(code_points[start]) == 0) {
      ++start;
      continue;
    }
    size_t end = start;
    while (end < code_points.size() && combining_class(code_points[end]) != 0) ++end;
    std::stable_sort(code_points.begin() + start, code_points.begin() + end,
                     [](char32_t a, char32_t b) { return combining_class(a) < combining_class(b); });
    start = end;
  }
  // Canonical composition: a character joins the last starter unless something between blocks it.
  std::vector<char32_t> composed;
  composed.reserve(code_points.size());
  size_t starter = SIZE_MAX;
  for (const char32_t c : code_points) {
    const uint8_t c_class = combining_class(c);
    if (starter != SIZE_MAX) {
      const bool adjacent = composed.size() == starter + 1;
      if (adjacent || combining_class(composed.back()) < c_class) {
        if (const char32_t joined = compose_pair(composed[starter], c); joined != 0) {
          composed[starter] = joined;
          continue;
        }
      }
    }
    if (c_class == 0) starter = composed.size();
    composed.push_back(c);
  }
  for (const char32_t c : composed) append_utf8(c, out);
}

}  // namespace

// Text outside regions around unstable code points is copied as is. A region starts at the last
// stable code point before an unstable one (a starter it may combine with) and ends before the
// next stable one (which, being a starter that combines with nothing before it, starts afresh).
std::string nfc_normalize(std::string_view text) {
  std::string out;
  size_t copied = 0, last_stable = 0;
  for (size_t position = 0; position < text.size();) {
    if (static_cast<unsigned char>(text[position]) < 0x80) {
      last_stable = position++;
      continue;
    }
    const DecodedCodePoint decoded = decode_utf8(text, position);
    if (is_nfc_stable(decoded.value)) {
      last_stable = position;
      position += decoded.length;
      continue;
    }
    const size_t region_start = std::max(copied, last_stable);
    size_t region_end = position + decoded.length;
    while (region_end < text.size()) {
      const DecodedCodePoint next = decode_utf8(text, region_end);
      if (static_cast<unsigned char>(text[region_end]) < 0x80 || is_nfc_stable(next.value)) break;
      region_end += next.length;
    }
    if (out.empty()) out.reserve(text.size());
    out.append(text.substr(copied, region_start - copied));
    nfc_region(text.substr(region_start, region_end - region_start), out);
    copied = position = last_stable = region_end;
  }
  if (copied == 0) return std::string(text);
  out.append(text.substr(copied));
  return out;
}

}  // namespace hlwq
