// Dequantization of every supported GGUF type, checked bit for bit against gguf-py's reference
// (tests/fixtures/gguf, made by scripts/make_gguf_fixtures.py), plus hand-built blocks.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <fstream>
#include <iterator>
#include <map>
#include <random>

#include "core/dtype.h"
#include "core/error.h"
#include "io/gguf.h"

namespace hlwq {
namespace {

const std::filesystem::path kFixtures = std::filesystem::path(HLWQ_SOURCE_DIR) / "tests/fixtures/gguf";

std::vector<float> read_floats(const std::filesystem::path& path) {
  std::ifstream stream(path, std::ios::binary);
  std::vector<char> bytes((std::istreambuf_iterator<char>(stream)), std::istreambuf_iterator<char>());
  std::vector<float> values(bytes.size() / 4);
  std::memcpy(values.data(), bytes.data(), values.size() * 4);
  return values;
}

struct FixtureTensor {
  GgufTensorType type;
  std::vector<int64_t> torch_shape;
};

// What scripts/make_gguf_fixtures.py writes (TENSORS there).
const std::map<std::string, FixtureTensor>& fixture_tensors() {
  static const std::map<std::string, FixtureTensor> tensors = {
      {"f32.weight", {GgufTensorType::F32, {3, 5}}},
      {"f16.weight", {GgufTensorType::F16, {4, 7}}},
      {"bf16.weight", {GgufTensorType::BF16, {2, 3, 8}}},
      {"q4_0.weight", {GgufTensorType::Q4_0, {3, 64}}},
      {"q4_1.weight", {GgufTensorType::Q4_1, {2, 2, 32}}},
      {"q5_0.weight", {GgufTensorType::Q5_0, {4, 32}}},
      {"q5_1.weight", {GgufTensorType::Q5_1, {2, 96}}},
      {"q8_0.weight", {GgufTensorType::Q8_0, {3, 2, 32}}},
      {"q4_k.weight", {GgufTensorType::Q4_K, {2, 256}}},
      {"q5_k.weight", {GgufTensorType::Q5_K, {2, 1, 256}}},
      {"q6_k.weight", {GgufTensorType::Q6_K, {3, 256}}},
      {"f64.weight", {GgufTensorType::F64, {5}}},
      {"i8.weight", {GgufTensorType::I8, {16}}},
      {"i16.weight", {GgufTensorType::I16, {2, 8}}},
      {"i32.weight", {GgufTensorType::I32, {10}}},
      {"four_d.weight", {GgufTensorType::F16, {1, 2, 3, 4}}},
  };
  return tensors;
}

// Every supported type equals gguf-py's dequantization exactly (0 ulp; compared as bits so
// infinities and signed zeros count too).
TEST(GgufDequantize, MatchesGgufPyBitForBit) {
  const GgufFile file = GgufFile::open(kFixtures / "all_types.gguf");
  ASSERT_EQ(file.tensors().size(), fixture_tensors().size());
  for (const GgufTensorInfo& tensor : file.tensors()) {
    SCOPED_TRACE(tensor.name);
    const auto wanted = fixture_tensors().find(tensor.name);
    ASSERT_NE(wanted, fixture_tensors().end());
    EXPECT_EQ(tensor.type, static_cast<uint32_t>(wanted->second.type));
    EXPECT_EQ(tensor.torch_shape(), wanted->second.torch_shape);
    EXPECT_TRUE(gguf_type_is_supported(wanted->second.type));
    const std::vector<float> expected = read_floats(kFixtures / "expected" / (tensor.name + ".f32"));
    const std::vector<float> actual = file.dequantize(tensor);
    ASSERT_EQ(actual.size(), expected.size());
    ASSERT_EQ(actual.size(), tensor.element_count());
    size_t mismatches = 0;
    for (size_t i = 0; i < actual.size(); ++i) {
      if (std::bit_cast<uint32_t>(actual[i]) != std::bit_cast<uint32_t>(expected[i])) {
        if (++mismatches <= 5) ADD_FAILURE() << "element " << i << ": " << actual[i] << " vs " << expected[i];
      }
    }
    EXPECT_EQ(mismatches, 0u);
  }
}

// A Q4_0 block written by hand: d = 0.5, element j (< 16) is the low nibble of byte j, element
// j + 16 the high nibble; value = d * (nibble - 8).
TEST(GgufDequantize, HandBuiltQ4_0Block) {
  std::vector<std::byte> block(18);
  const uint16_t half = float_to_f16(0.5f);
  std::memcpy(block.data(), &half, 2);
  for (int j = 0; j < 16; ++j) block[2 + j] = static_cast<std::byte>(j | (15 - j) << 4);
  std::vector<float> values(32);
  dequantize_gguf(GgufTensorType::Q4_0, block, values);
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(values[j], 0.5f * static_cast<float>(j - 8));
    EXPECT_EQ(values[j + 16], 0.5f * static_cast<float>(7 - j));
  }
}

// A Q8_0 block of random codes: value = code * d, for a scale that is an exact power of two.
TEST(GgufDequantize, HandBuiltQ8_0Blocks) {
  std::mt19937 generator(11);
  std::vector<std::byte> blocks(3 * 34);
  std::vector<float> expected;
  for (int block = 0; block < 3; ++block) {
    const float scale = std::ldexp(1.0f, -3 - block);
    const uint16_t half = float_to_f16(scale);
    std::memcpy(blocks.data() + 34 * block, &half, 2);
    for (int j = 0; j < 32; ++j) {
      const auto code = static_cast<int8_t>(generator());
      blocks[34 * block + 2 + j] = static_cast<std::byte>(code);
      expected.push_back(static_cast<float>(code) * scale);
    }
  }
  std::vector<float> values(96);
  dequantize_gguf(GgufTensorType::Q8_0, blocks, values);
  EXPECT_EQ(values, expected);
}

// Q6_K with d = 1 and scale k in sub-block k: the 6-bit codes are ql | qh << 4 minus 32.
// All low nibbles 0x5 and all high pairs 0b10 give code 0x25 - 32 = 5 everywhere.
TEST(GgufDequantize, HandBuiltQ6_KBlock) {
  std::vector<std::byte> block(210);
  for (int i = 0; i < 128; ++i) block[i] = std::byte{0x55};
  for (int i = 0; i < 64; ++i) block[128 + i] = std::byte{0xaa};
  for (int k = 0; k < 16; ++k) block[192 + k] = static_cast<std::byte>(static_cast<int8_t>(k - 8));
  const uint16_t one = float_to_f16(1.0f);
  std::memcpy(block.data() + 208, &one, 2);
  std::vector<float> values(256);
  dequantize_gguf(GgufTensorType::Q6_K, block, values);
  for (int i = 0; i < 256; ++i) EXPECT_EQ(values[i], 5.0f * static_cast<float>(i / 16 - 8)) << i;
}

TEST(GgufDequantize, TypeTable) {
  EXPECT_EQ(gguf_type_name(12), "Q4_K");
  EXPECT_EQ(gguf_type_name(30), "BF16");
  EXPECT_EQ(gguf_type_name(99), "type 99");
  EXPECT_EQ(gguf_type_name(4), "type 4");  // removed Q4_2
  EXPECT_TRUE(gguf_type_is_known(16));
  EXPECT_FALSE(gguf_type_is_known(31));
  EXPECT_EQ(gguf_block_elements(GgufTensorType::Q6_K), 256u);
  EXPECT_EQ(gguf_block_bytes(GgufTensorType::Q6_K), 210u);
  EXPECT_EQ(gguf_block_bytes(GgufTensorType::Q5_1), 24u);
  EXPECT_EQ(gguf_block_bytes(GgufTensorType::Q2_K), 84u);  // known size, not dequantized
  EXPECT_FALSE(gguf_type_is_supported(GgufTensorType::Q2_K));
  EXPECT_FALSE(gguf_type_is_supported(GgufTensorType::IQ4_XS));
  EXPECT_FALSE(gguf_type_is_supported(static_cast<GgufTensorType>(99)));
  EXPECT_THROW(gguf_block_elements(static_cast<GgufTensorType>(99)), Error);
}

TEST(GgufDequantize, RejectsUnsupportedTypesAndWrongSizes) {
  std::vector<std::byte> bytes(210);
  std::vector<float> values(256);
  try {
    dequantize_gguf(GgufTensorType::Q3_K, std::span(bytes).first(110), values);
    FAIL() << "Q3_K dequantized";
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find("Q3_K"), std::string::npos) << error.what();
  }
  EXPECT_THROW(dequantize_gguf(GgufTensorType::Q6_K, std::span(bytes).first(209), values), Error);
  EXPECT_THROW(dequantize_gguf(GgufTensorType::Q6_K, bytes, std::span(values).first(255)), Error);
  EXPECT_THROW(dequantize_gguf(static_cast<GgufTensorType>(77), bytes, values), Error);
}

}  // namespace
}  // namespace hlwq
