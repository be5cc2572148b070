#include "quant/lsb_first_packing.h"

#include <gtest/gtest.h>

#include <random>
#include <vector>

namespace hlwq {
namespace {

// Plain reference: stream bit b of the packed form is bit (b % 32) of word b / 32, set one bit at a time.
std::vector<uint32_t> pack_bit_by_bit(const std::vector<uint8_t>& codes, int bits) {
  std::vector<uint32_t> words(codes.size() * static_cast<size_t>(bits) / 32, 0);
  for (size_t i = 0; i < codes.size(); ++i) {
    for (int bit = 0; bit < bits; ++bit) {
      const size_t stream_bit = i * static_cast<size_t>(bits) + static_cast<size_t>(bit);
      if ((codes[i] >> bit) & 1) words[stream_bit / 32] |= uint32_t{1} << (stream_bit % 32);
    }
  }
  return words;
}

TEST(LsbFirstPacking, HandWorkedExamples) {
  // 4 bits: code i in nibble i, lowest first.
  std::vector<uint8_t> nibbles = {0, 1, 2, 3, 4, 5, 6, 7};
  std::vector<uint32_t> word(1);
  pack_lsb_first(nibbles, 4, word);
  EXPECT_EQ(word[0], 0x76543210u);
  // 3 bits: code 0 = 7 fills bits 0-2; code 10 = 5 (binary 101) starts at bit 30, so its low bits
  // "01" end word 0 (bit 30 set) and its high bit "1" is bit 0 of word 1.
  std::vector<uint8_t> triples(32, 0);
  triples[0] = 7;
  triples[10] = 5;
  std::vector<uint32_t> words(3);
  pack_lsb_first(triples, 3, words);
  EXPECT_EQ(words[0], 0x40000007u);
  EXPECT_EQ(words[1], 0x00000001u);
  EXPECT_EQ(words[2], 0x00000000u);
}

TEST(LsbFirstPacking, MatchesBitByBitReferenceAndRoundTrips) {
  std::mt19937 generator(5);
  for (int bits = 1; bits <= 8; ++bits) {
    std::uniform_int_distribution<int> code(0, (1 << bits) - 1);
    std::vector<uint8_t> codes(32 * 7);
    for (uint8_t& value : codes) value = static_cast<uint8_t>(code(generator));
    std::vector<uint32_t> words(codes.size() * static_cast<size_t>(bits) / 32);
    pack_lsb_first(codes, bits, words);
    EXPECT_EQ(words, pack_bit_by_bit(codes, bits)) << bits;
    std::vector<uint8_t> back(codes.size());
    unpack_lsb_first(words, bits, back);
    EXPECT_EQ(back, codes) << bits;
  }
}

TEST(LsbFirstPacking, MismatchedSizesThrow) {
  std::vector<uint8_t> codes(31);
  std::vector<uint32_t> words(4);
  EXPECT_THROW(pack_lsb_first(codes, 4, words), Error);
  EXPECT_THROW(unpack_lsb_first(words, 3, codes), Error);
  EXPECT_THROW(
      pack_lsb_first(std::span<const uint8_t>(codes).first(0), 0, std::span<uint32_t>(words).first(0)),
      Error);
}

}  // namespace
}  // namespace hlwq
