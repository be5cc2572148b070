// Character classes and NFC against Python's unicodedata (values printed by
// unicodedata.normalize('NFC', ...)); UTF-8 decoding of malformed input.
#include "tokenizer/unicode.h"

#include <gtest/gtest.h>

namespace hlwq {
namespace {

std::u32string code_points(std::string_view text) {
  std::u32string out;
  for (size_t position = 0; position < text.size();) {
    const DecodedCodePoint decoded = decode_utf8(text, position);
    out += decoded.value;
    position += decoded.length;
  }
  return out;
}

std::string utf8(std::u32string_view text) {
  std::string out;
  for (const char32_t c : text) append_utf8(c, out);
  return out;
}

TEST(Unicode, Classes) {
  EXPECT_EQ(unicode_class('a'), UnicodeClass::kLetter);
  EXPECT_EQ(unicode_class('7'), UnicodeClass::kNumber);
  EXPECT_EQ(unicode_class('_'), UnicodeClass::kOther);
  EXPECT_EQ(unicode_class(0x00E9), UnicodeClass::kLetter);   // é
  EXPECT_EQ(unicode_class(0x0663), UnicodeClass::kNumber);   // Arabic-Indic 3
  EXPECT_EQ(unicode_class(0x00BD), UnicodeClass::kNumber);   // ½ (No)
  EXPECT_EQ(unicode_class(0x0301), UnicodeClass::kMark);     // combining acute
  EXPECT_EQ(unicode_class(0x65E5), UnicodeClass::kLetter);   // 日
  EXPECT_EQ(unicode_class(0x1F999), UnicodeClass::kOther);   // llama emoji
  EXPECT_EQ(unicode_class(0x10FFFF), UnicodeClass::kOther);
  EXPECT_TRUE(is_unicode_whitespace(0x3000));
  EXPECT_TRUE(is_unicode_whitespace(0x85));
  EXPECT_FALSE(is_unicode_whitespace(0x200B));  // zero width space is not White_Space
  EXPECT_FALSE(is_unicode_whitespace(0x1C));    // Python's isspace() says yes; \s does not
}

TEST(Unicode, NfcMatchesPython) {
  EXPECT_EQ(code_points(nfc_normalize(utf8(U"e\u0323\u0301"))), U"\u1EB9\u0301");
  EXPECT_EQ(code_points(nfc_normalize(utf8(U"\u00E9\u0323"))), U"\u1EB9\u0301");
  EXPECT_EQ(code_points(nfc_normalize(utf8(U"\u1100\u1161\u11A8"))), U"\uAC01");
  EXPECT_EQ(code_points(nfc_normalize(utf8(U"A\u030A\u212B"))), U"\u00C5\u00C5");
  EXPECT_EQ(code_points(nfc_normalize(utf8(U"q\u0307\u0323"))), U"q\u0323\u0307");
  EXPECT_EQ(code_points(nfc_normalize(utf8(U"\u0958"))), U"\u0915\u093C");  // composition exclusion
  EXPECT_EQ(code_points(nfc_normalize(utf8(U"abc e\u0301 xyz \u212B!"))), U"abc \u00E9 xyz \u00C5!");
  const std::string stable = "plain ASCII, caf\xC3\xA9, \xE6\x97\xA5\xE6\x9C\xAC";
  EXPECT_EQ(nfc_normalize(stable), stable);
}

TEST(Unicode, MalformedUtf8IsOneReplacementPerByte) {
  const std::string bad = "\xC3(\xE2\x82\xF0\x9F\x98\x80\xED\xA0\x80\xC0\xAF";
  const DecodedCodePoint first = decode_utf8(bad, 0);
  EXPECT_EQ(first.value, 0xFFFDu);
  EXPECT_EQ(first.length, 1u);
  EXPECT_EQ(decode_utf8(bad, 4).value, 0x1F600u);                    // a valid emoji after the junk
  EXPECT_EQ(decode_utf8(bad, 8).value, 0xFFFDu);                     // surrogate
  EXPECT_EQ(decode_utf8(bad, 11).value, 0xFFFDu);                    // overlong
  EXPECT_EQ(decode_utf8(std::string_view(bad).substr(0, 3), 2).value, 0xFFFDu);  // cut at the end
}

}  // namespace
}  // namespace hlwq
