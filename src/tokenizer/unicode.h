// Code-point level text helpers for the tokenizer: UTF-8 stepping, the \p{L} / \p{N} / \s classes
// the pre-tokenizer patterns use, and NFC normalization (Qwen's tokenizer.json asks for it).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "tokenizer/unicode_tables.h"

namespace hlwq {

struct DecodedCodePoint {
  char32_t value;
  uint32_t length;  // bytes consumed, 1..4; an invalid byte is consumed alone as U+FFFD
};

// Decodes the code point starting at text[position] (position < text.size()). Never reads past
// the end; malformed or overlong sequences and surrogates come back as one-byte U+FFFD.
DecodedCodePoint decode_utf8(std::string_view text, size_t position);

void append_utf8(char32_t code_point, std::string& out);

// L, N, M or other, by the general category (binary search over ~1,100 ranges; ASCII inline).
UnicodeClass unicode_class(char32_t code_point);

// The Unicode White_Space property, which is what \s matches in the regex engines HF uses.
constexpr bool is_unicode_whitespace(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F ||
         c == 0x3000;
}

// Unicode normalization form C. Text made only of code points that NFC never touches (all of
// ASCII, most Latin-1) is returned unchanged after one scan; otherwise the text is decomposed,
// reordered and recomposed, costing a few table look-ups per code point.
std::string nfc_normalize(std::string_view text);

}  // namespace hlwq
