// Generated Unicode tables (src/tokenizer/unicode_tables.cc, from scripts/make_unicode_tables.py):
// the character classes the pre-tokenizers test and the data NFC normalization needs.
#pragma once

#include <array>
#include <cstdint>

namespace hlwq {

enum class UnicodeClass : uint8_t { kOther, kLetter, kNumber, kMark };

struct UnicodeClassRange {
  char32_t first, last;
  UnicodeClass kind;
};

// `second` is 0 for a singleton decomposition.
struct CanonicalDecomposition {
  char32_t code_point, first, second;
};

struct CombiningClass {
  char32_t code_point;
  uint8_t value;
};

struct PrimaryComposite {
  char32_t first, second, composite;
};

// All sorted by their first field.
extern const std::array<UnicodeClassRange, 1081> kUnicodeClassRanges;
extern const std::array<CanonicalDecomposition, 2061> kCanonicalDecompositions;
extern const std::array<CombiningClass, 912> kCombiningClasses;
extern const std::array<PrimaryComposite, 941> kPrimaryComposites;

}  // namespace hlwq
