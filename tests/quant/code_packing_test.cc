#include "quant/code_packing.h"

#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "core/error.h"

namespace hlwq {
namespace {

TEST(CodePacking, PlanesSplitGreedilyFromTheLowestBit) {
  const std::vector<std::vector<int>> widths = {{1}, {2}, {2, 1}, {4}, {4, 1}, {4, 2}, {4, 2, 1}, {4, 4}};
  for (int bits = 1; bits <= 8; ++bits) {
    std::vector<int> got;
    int expected_shift = 0;
    for (const CodePlane& plane : code_planes(bits)) {
      EXPECT_EQ(plane.shift, expected_shift) << bits;
      expected_shift += plane.width;
      got.push_back(plane.width);
    }
    EXPECT_EQ(got, widths[static_cast<size_t>(bits - 1)]) << bits;
    EXPECT_EQ(expected_shift, bits);
  }
}

TEST(CodePacking, RoundTripsRandomCodesForEveryWidthAndBlock) {
  std::mt19937 generator(42);
  for (int bits = 1; bits <= 8; ++bits) {
    for (int block = 32; block <= 1024; block *= 2) {
      std::uniform_int_distribution<int> code(0, (1 << bits) - 1);
      std::vector<uint8_t> codes(static_cast<size_t>(block));
      for (uint8_t& value : codes) value = static_cast<uint8_t>(code(generator));
      std::vector<uint8_t> packed(packed_block_bytes(bits, block));
      ASSERT_EQ(packed.size(), static_cast<size_t>(block * bits / 8));
      pack_block_codes(bits, codes, packed);
      std::vector<uint8_t> unpacked(codes.size(), 0xAB);
      unpack_block_codes(bits, packed, unpacked);
      EXPECT_EQ(unpacked, codes) << bits << " bits, block " << block;
    }
  }
}

TEST(CodePacking, IgnoresBitsAboveTheWidth) {
  std::vector<uint8_t> codes(32, 0xFF);
  std::vector<uint8_t> packed(packed_block_bytes(3, 32));
  pack_block_codes(3, codes, packed);
  std::vector<uint8_t> unpacked(32);
  unpack_block_codes(3, packed, unpacked);
  EXPECT_EQ(unpacked, std::vector<uint8_t>(32, 7));
}

// Golden bytes computed by hand from docs/FORMAT.md ("Packed HLWQ codes").
TEST(CodePacking, Q5GoldenLayout) {
  // Block 32, code j = j: nibble plane (16 bytes) byte j = (code j & 15) | (code j+16 & 15) << 4
  // = 0x00, 0x11, ..., 0xFF; bit plane (4 bytes) bit k of byte j = bit 4 of code j + 4k, which is
  // 1 exactly for k >= 4: 0xF0 each.
  std::vector<uint8_t> codes(32);
  for (int j = 0; j < 32; ++j) codes[static_cast<size_t>(j)] = static_cast<uint8_t>(j);
  std::vector<uint8_t> packed(20);
  pack_block_codes(5, codes, packed);
  const std::vector<uint8_t> expected = {0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99,
                                         0xAA, 0xBB, 0xCC, 0xDD, 0xEE, 0xFF, 0xF0, 0xF0, 0xF0, 0xF0};
  EXPECT_EQ(packed, expected);

  // Block 128, one code 22 = 0b10110 at position 70, all others 0. Nibble plane (64 bytes):
  // 70 = 6 + 64 * 1 -> high nibble of byte 6 = 0110 -> 0x60. Bit plane (16 bytes at offset 64):
  // 70 = 6 + 16 * 4 -> bit 4 of byte 64 + 6 -> 0x10.
  std::vector<uint8_t> one_code(128, 0);
  one_code[70] = 22;
  std::vector<uint8_t> packed_one(80);
  pack_block_codes(5, one_code, packed_one);
  std::vector<uint8_t> expected_one(80, 0);
  expected_one[6] = 0x60;
  expected_one[70] = 0x10;
  EXPECT_EQ(packed_one, expected_one);
}

TEST(CodePacking, Q3GoldenLayout) {
  // Block 32, code j = j & 7: 2-bit plane (8 bytes) field k of byte j = bits 0-1 of code j + 8k
  // = j & 3 for every k -> (j & 3) * 0x55; bit plane (4 bytes) bit k of byte j = bit 2 of code
  // j + 4k = k & 1 -> 0xAA.
  std::vector<uint8_t> codes(32);
  for (int j = 0; j < 32; ++j) codes[static_cast<size_t>(j)] = static_cast<uint8_t>(j & 7);
  std::vector<uint8_t> packed(12);
  pack_block_codes(3, codes, packed);
  const std::vector<uint8_t> expected = {0x00, 0x55, 0xAA, 0xFF, 0x00, 0x55, 0xAA, 0xFF, 0xAA, 0xAA, 0xAA, 0xAA};
  EXPECT_EQ(packed, expected);

  // Block 64, one code 5 = 0b101 at position 41. 2-bit plane (16 bytes): 41 = 9 + 16 * 2 -> bits
  // 4-5 of byte 9 = 01 -> 0x10. Bit plane (8 bytes at offset 16): 41 = 1 + 8 * 5 -> bit 5 of byte
  // 16 + 1 -> 0x20.
  std::vector<uint8_t> one_code(64, 0);
  one_code[41] = 5;
  std::vector<uint8_t> packed_one(24);
  pack_block_codes(3, one_code, packed_one);
  std::vector<uint8_t> expected_one(24, 0);
  expected_one[9] = 0x10;
  expected_one[17] = 0x20;
  EXPECT_EQ(packed_one, expected_one);
}

TEST(CodePacking, RejectsInconsistentSizes) {
  std::vector<uint8_t> codes(128), packed(80), wrong(79), odd_codes(100);
  EXPECT_THROW(pack_block_codes(5, codes, wrong), Error);
  EXPECT_THROW(unpack_block_codes(5, wrong, codes), Error);
  EXPECT_THROW(pack_block_codes(0, codes, packed), Error);
  EXPECT_THROW(pack_block_codes(9, codes, packed), Error);
  EXPECT_THROW(pack_block_codes(5, odd_codes, packed), Error);
  EXPECT_THROW(packed_block_bytes(5, 12), Error);
  EXPECT_EQ(code_planes(0).count, 0);
  EXPECT_EQ(code_planes(9).count, 0);
  static_assert(code_planes(5).count == 2 && code_planes(7).planes[2].shift == 6);
}

}  // namespace
}  // namespace hlwq
