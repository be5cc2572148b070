// GGUF parsing: metadata of every value type, the tensor directory, the demo model, and bad
// input (every malformation must throw one hlwq::Error naming the file, never crash).
#include "io/gguf.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <optional>
#include <random>

#include "core/error.h"
#include "test_util.h"

namespace hlwq {
namespace {

const std::filesystem::path kFixture =
    std::filesystem::path(HLWQ_SOURCE_DIR) / "tests/fixtures/gguf/all_types.gguf";
constexpr std::string_view kBadName = "bad.gguf";

std::vector<std::byte> read_file(const std::filesystem::path& path) {
  std::ifstream stream(path, std::ios::binary);
  std::vector<char> chars((std::istreambuf_iterator<char>(stream)), std::istreambuf_iterator<char>());
  std::vector<std::byte> bytes(chars.size());
  std::memcpy(bytes.data(), chars.data(), chars.size());
  return bytes;
}

// ---- A writer of small GGUF files, with knobs to break each part. ----

template <class Scalar>
void append(std::vector<std::byte>& out, Scalar value) {
  const auto* bytes = reinterpret_cast<const std::byte*>(&value);
  out.insert(out.end(), bytes, bytes + sizeof value);
}

void append_string(std::vector<std::byte>& out, std::string_view text) {
  append<uint64_t>(out, text.size());
  const auto* bytes = reinterpret_cast<const std::byte*>(text.data());
  out.insert(out.end(), bytes, bytes + text.size());
}

struct BuilderTensor {
  std::string name;
  std::vector<uint64_t> dims;
  uint32_t type = 0;
  uint64_t offset = 0;
  uint64_t byte_size = 0;  // bytes the builder reserves in the data area
};

class GgufBuilder {
 public:
  uint32_t magic = 0x46554747;
  uint32_t version = 3;
  uint64_t alignment = 32;  // used for padding; the key is only written by add_alignment
  std::optional<uint64_t> tensor_count;  // overrides the real counts when set
  std::optional<uint64_t> key_value_count;
  std::vector<BuilderTensor> tensors;

  // A raw key-value pair: key, type, then the value's bytes as given.
  void add_raw(std::string_view key, uint32_t type, const std::vector<std::byte>& value) {
    append_string(metadata_, key);
    append<uint32_t>(metadata_, type);
    metadata_.insert(metadata_.end(), value.begin(), value.end());
    ++pairs_;
  }
  void add_u32(std::string_view key, uint32_t value) { add_raw(key, 4, encode(value)); }
  void add_string(std::string_view key, std::string_view value) {
    std::vector<std::byte> bytes;
    append_string(bytes, value);
    add_raw(key, 8, bytes);
  }
  void add_alignment(uint64_t value) {
    alignment = value;
    add_u32("general.alignment", static_cast<uint32_t>(value));
  }
  // Appends an F32 tensor laid out after the previous one (aligned).
  void add_f32(std::string name, std::vector<uint64_t> dims) {
    uint64_t count = 1;
    for (uint64_t d : dims) count *= d;
    add_tensor(std::move(name), std::move(dims), 0, count * 4);
  }
  void add_tensor(std::string name, std::vector<uint64_t> dims, uint32_t type, uint64_t byte_size) {
    uint64_t offset = 0;
    if (!tensors.empty()) {
      const BuilderTensor& last = tensors.back();
      offset = (last.offset + last.byte_size + alignment - 1) / alignment * alignment;
    }
    tensors.push_back({std::move(name), std::move(dims), type, offset, byte_size});
  }

  std::vector<std::byte> build() const {
    std::vector<std::byte> out;
    append<uint32_t>(out, magic);
    append<uint32_t>(out, version);
    append<uint64_t>(out, tensor_count.value_or(tensors.size()));
    append<uint64_t>(out, key_value_count.value_or(pairs_));
    out.insert(out.end(), metadata_.begin(), metadata_.end());
    for (const BuilderTensor& tensor : tensors) {
      append_string(out, tensor.name);
      append<uint32_t>(out, static_cast<uint32_t>(tensor.dims.size()));
      for (uint64_t d : tensor.dims) append<uint64_t>(out, d);
      append<uint32_t>(out, tensor.type);
      append<uint64_t>(out, tensor.offset);
    }
    out.resize((out.size() + alignment - 1) / alignment * alignment);
    const size_t data_begin = out.size();
    uint64_t data_end = 0;
    for (const BuilderTensor& tensor : tensors) {
      data_end = std::max(data_end, tensor.offset + tensor.byte_size);
    }
    // Random (never all-zero) data so dequantized values are checkable.
    std::mt19937 generator(5);
    out.resize(data_begin + data_end);
    for (size_t i = data_begin; i < out.size(); ++i) out[i] = static_cast<std::byte>(generator());
    return out;
  }

  template <class Scalar>
  static std::vector<std::byte> encode(Scalar value) {
    std::vector<std::byte> bytes;
    append(bytes, value);
    return bytes;
  }

 private:
  std::vector<std::byte> metadata_;
  uint64_t pairs_ = 0;
};

GgufBuilder valid_builder() {
  GgufBuilder builder;
  builder.add_string("general.architecture", "llama");
  builder.add_u32("llama.block_count", 2);
  builder.add_f32("a.weight", {4, 3});
  builder.add_f32("b.weight", {8});
  return builder;
}

// Expects parse_gguf to throw an hlwq::Error of one line that names the file and contains
// `fragment`.
void expect_rejected(const std::vector<std::byte>& bytes, std::string_view fragment) {
  try {
    parse_gguf(bytes, kBadName);
    ADD_FAILURE() << "accepted; expected an error containing '" << fragment << "'";
  } catch (const Error& error) {
    const std::string message = error.what();
    EXPECT_NE(message.find(fragment), std::string::npos) << message;
    EXPECT_TRUE(message.ends_with(std::string(", ") + std::string(kBadName))) << message;
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
  }
}

// ---- The fixture made by gguf-py (scripts/make_gguf_fixtures.py). ----

TEST(Gguf, FixtureHeaderAndTensorDirectory) {
  const GgufFile file = GgufFile::open(kFixture);
  const GgufContents& contents = file.contents();
  EXPECT_EQ(contents.version, 3u);
  EXPECT_EQ(contents.alignment, 64u);
  EXPECT_EQ(contents.data_area_begin % 64, 0u);
  EXPECT_EQ(file.path(), kFixture);
  ASSERT_EQ(file.tensors().size(), 16u);
  EXPECT_EQ(file.tensors()[0].name, "f32.weight");  // file order kept
  const GgufTensorInfo* q5k = file.find("q5_k.weight");
  ASSERT_NE(q5k, nullptr);
  EXPECT_EQ(q5k->dims, (std::vector<uint64_t>{256, 1, 2}));
  EXPECT_EQ(q5k->torch_shape(), (std::vector<int64_t>{2, 1, 256}));
  EXPECT_EQ(q5k->element_count(), 512u);
  EXPECT_EQ(q5k->byte_size, 2u * 176u);
  EXPECT_EQ(file.data(*q5k).size(), 2u * 176u);
  EXPECT_EQ(q5k->offset % 64, 0u);
  const GgufTensorInfo* four_d = file.find("four_d.weight");
  ASSERT_NE(four_d, nullptr);
  EXPECT_EQ(four_d->dims, (std::vector<uint64_t>{4, 3, 2, 1}));
  EXPECT_EQ(file.find("missing.weight"), nullptr);
  EXPECT_EQ(file.find(""), nullptr);
  for (const GgufTensorInfo& tensor : file.tensors()) EXPECT_EQ(file.find(tensor.name), &tensor);
}

TEST(Gguf, FixtureMetadataOfEveryValueType) {
  const GgufFile file = GgufFile::open(kFixture);
  const nlohmann::json& metadata = file.metadata();
  EXPECT_EQ(metadata.at("general.architecture"), "hlwq-test");
  EXPECT_EQ(metadata.at("general.alignment"), 64);
  EXPECT_TRUE(metadata.at("test.u8").is_number_unsigned());
  EXPECT_EQ(metadata.at("test.u8").get<uint64_t>(), 200u);
  EXPECT_EQ(metadata.at("test.i8").get<int64_t>(), -100);
  EXPECT_EQ(metadata.at("test.u16").get<uint64_t>(), 60000u);
  EXPECT_EQ(metadata.at("test.i16").get<int64_t>(), -30000);
  EXPECT_EQ(metadata.at("test.u32").get<uint64_t>(), 4000000000u);
  EXPECT_EQ(metadata.at("test.i32").get<int64_t>(), -2000000000);
  EXPECT_EQ(metadata.at("test.u64").get<uint64_t>(), UINT64_MAX);
  EXPECT_EQ(metadata.at("test.i64").get<int64_t>(), INT64_MIN);
  EXPECT_EQ(metadata.at("test.f32").get<double>(), static_cast<double>(0.1f));
  EXPECT_EQ(metadata.at("test.f64").get<double>(), 1.0 / 3.0);
  EXPECT_EQ(metadata.at("test.bool_true"), true);
  EXPECT_EQ(metadata.at("test.bool_false"), false);
  EXPECT_EQ(metadata.at("test.string"), "h\xc3\xa9llo \xe2\x9c\x93 \xf0\x9f\x99\x82");
  EXPECT_EQ(metadata.at("test.string_empty"), "");
  EXPECT_EQ(metadata.at("test.string_raw").get_ref<const std::string&>(), std::string("\xff\xfe" "ab\xc3"));
  EXPECT_EQ(metadata.at("test.array_u8"), nlohmann::json({1, 2, 255}));
  EXPECT_EQ(metadata.at("test.array_i8"), nlohmann::json({-128, 0, 127}));
  EXPECT_EQ(metadata.at("test.array_u16"), nlohmann::json({0, 65535}));
  EXPECT_EQ(metadata.at("test.array_i16"), nlohmann::json({-32768, 32767}));
  EXPECT_EQ(metadata.at("test.array_u32"), nlohmann::json({7u, 4294967295u}));
  EXPECT_EQ(metadata.at("test.array_i32"), nlohmann::json({-5, 2147483647}));
  EXPECT_EQ(metadata.at("test.array_u64"), nlohmann::json({UINT64_MAX, uint64_t{0}}));
  EXPECT_EQ(metadata.at("test.array_i64"), nlohmann::json({INT64_MIN, INT64_MAX}));
  EXPECT_EQ(metadata.at("test.array_f32"), nlohmann::json({1.5, -0.25}));
  EXPECT_EQ(metadata.at("test.array_f64"), nlohmann::json({2.5, -1e300}));
  EXPECT_EQ(metadata.at("test.array_bool"), nlohmann::json({true, false, true}));
  const auto& strings = metadata.at("test.array_string");
  ASSERT_EQ(strings.size(), 4u);
  EXPECT_EQ(strings[2], "\xc3\xbc");
  EXPECT_EQ(strings[3].get_ref<const std::string&>(), std::string("\x80\0z", 3));  // NUL kept
  EXPECT_EQ(metadata.at("test.array_nested"), nlohmann::json::parse("[[1,2],[3],[4,5,6]]"));
  EXPECT_EQ(metadata.at("test.array_nested_string"), nlohmann::json::parse(R"([["x"],["y","z"]])"));
  EXPECT_EQ(metadata.at("test.array_nested_deep"), nlohmann::json::parse("[[[1]],[[2,3]]]"));
}

// Raw bytes make plain dump() throw nlohmann's error; dump_gguf_metadata replaces them.
TEST(Gguf, DumpingMetadataWithRawBytesNeverThrows) {
  const GgufFile file = GgufFile::open(kFixture);
  EXPECT_THROW((void)file.metadata().dump(), nlohmann::json::type_error);
  std::string text;
  ASSERT_NO_THROW(text = dump_gguf_metadata(file.metadata()));
  EXPECT_NE(text.find("\xef\xbf\xbd"), std::string::npos);  // U+FFFD
  EXPECT_NE(text.find("\"hlwq-test\""), std::string::npos);
  EXPECT_NE(dump_gguf_metadata(file.metadata(), 2).find('\n'), std::string::npos);
}

// Every prefix of the file that ends before the last tensor's data throws; prefixes that only
// drop the trailing padding still parse.
TEST(Gguf, EveryTruncationThrows) {
  const std::vector<std::byte> bytes = read_file(kFixture);
  const GgufContents contents = parse_gguf(bytes, kBadName);
  uint64_t needed = 0;
  for (const auto& tensor : contents.tensors) {
    needed = std::max(needed, contents.data_area_begin + tensor.offset + tensor.byte_size);
  }
  ASSERT_LE(needed, bytes.size());
  for (size_t length = 0; length < bytes.size(); ++length) {
    const std::span<const std::byte> prefix(bytes.data(), length);
    if (length < needed) {
      EXPECT_THROW(parse_gguf(prefix, kBadName), Error) << "length " << length;
    } else {
      EXPECT_NO_THROW(parse_gguf(prefix, kBadName)) << "length " << length;
    }
  }
}

// Random byte changes: each result parses or throws hlwq::Error; whatever parses also
// dequantizes or throws hlwq::Error. (ASan/UBSan builds and the fuzzer check memory safety.)
TEST(Gguf, RandomCorruptionThrowsOnlyHlwqErrors) {
  const std::vector<std::byte> original = read_file(kFixture);
  const uint64_t header_size = parse_gguf(original, kBadName).data_area_begin;
  std::mt19937 generator(99);
  int parsed = 0;
  for (int trial = 0; trial < 3000; ++trial) {
    std::vector<std::byte> bytes = original;
    const int changes = 1 + static_cast<int>(generator() % 4);
    for (int c = 0; c < changes; ++c) {
      // Mostly the header (where the structure is), sometimes anywhere.
      const size_t limit = generator() % 4 == 0 ? bytes.size() : header_size;
      bytes[generator() % limit] = static_cast<std::byte>(generator());
    }
    try {
      const GgufContents contents = parse_gguf(bytes, kBadName);
      ++parsed;
      for (const GgufTensorInfo& tensor : contents.tensors) {
        try {
          (void)dequantize_gguf_tensor(contents, tensor, bytes, kBadName);
        } catch (const Error&) {
        }
      }
    } catch (const Error& error) {
      const std::string message = error.what();
      EXPECT_TRUE(message.ends_with(", bad.gguf")) << message;
      EXPECT_EQ(message.find_first_of(std::string("\n\r\0", 3)), std::string::npos) << message;
    }
  }
  EXPECT_GT(parsed, 0);
  EXPECT_LT(parsed, 3000);
}

// ---- Files written by hand. ----

TEST(Gguf, HandBuiltFileParses) {
  GgufBuilder builder = valid_builder();
  builder.add_raw("empty.array", 9, [] {
    std::vector<std::byte> bytes = GgufBuilder::encode<uint32_t>(4);
    append<uint64_t>(bytes, 0);
    return bytes;
  }());
  builder.add_f32("scalar", {});  // zero dimensions: one element
  const std::vector<std::byte> bytes = builder.build();
  const GgufContents contents = parse_gguf(bytes, kBadName);
  EXPECT_EQ(contents.alignment, 32u);
  EXPECT_EQ(contents.metadata.at("llama.block_count"), 2);
  EXPECT_EQ(contents.metadata.at("empty.array"), nlohmann::json::array());
  ASSERT_EQ(contents.tensors.size(), 3u);
  EXPECT_EQ(contents.tensors[0].torch_shape(), (std::vector<int64_t>{3, 4}));
  EXPECT_EQ(contents.tensors[0].byte_size, 48u);
  EXPECT_EQ(contents.tensors[2].element_count(), 1u);
  EXPECT_TRUE(contents.tensors[2].torch_shape().empty());
  // F32 values come back exactly as stored.
  const GgufTensorInfo& b = contents.tensors[1];
  const std::vector<float> values = dequantize_gguf_tensor(contents, b, bytes, kBadName);
  ASSERT_EQ(values.size(), 8u);
  EXPECT_EQ(std::memcmp(values.data(), bytes.data() + contents.data_area_begin + b.offset, 32), 0);
}

TEST(Gguf, MetadataOnlyFileWithoutPaddingParses) {
  GgufBuilder builder;
  builder.add_string("general.architecture", "llama");
  std::vector<std::byte> bytes = builder.build();
  // Drop the padding after the header: no tensor needs the data area.
  bytes.resize(4 + 4 + 8 + 8 + (8 + 20) + 4 + (8 + 5));
  const GgufContents contents = parse_gguf(bytes, kBadName);
  EXPECT_TRUE(contents.tensors.empty());
  EXPECT_EQ(contents.metadata.at("general.architecture"), "llama");
}

TEST(Gguf, RejectsWrongMagicAndVersions) {
  GgufBuilder builder = valid_builder();
  builder.magic = 0x46554746;
  expect_rejected(builder.build(), "not a GGUF file");
  expect_rejected({}, "truncated");
  for (uint32_t version : {0u, 1u, 4u, 1000u}) {
    builder = valid_builder();
    builder.version = version;
    expect_rejected(builder.build(), concat("unsupported GGUF version ", version));
  }
  builder = valid_builder();
  builder.version = 0x03000000;
  expect_rejected(builder.build(), "big-endian");
  builder.version = 2;  // version 2 has the same layout as 3
  EXPECT_NO_THROW(parse_gguf(builder.build(), kBadName));
}

TEST(Gguf, RejectsHugeCountsAndLengths) {
  GgufBuilder builder = valid_builder();
  builder.tensor_count = uint64_t{1} << 60;
  expect_rejected(builder.build(), "tensor count");
  builder = valid_builder();
  builder.key_value_count = UINT64_MAX;
  expect_rejected(builder.build(), "metadata count");
  builder = valid_builder();
  builder.key_value_count = 3;  // one more than present: the tensor infos read as a pair
  EXPECT_THROW(parse_gguf(builder.build(), kBadName), Error);

  builder = valid_builder();  // huge string length
  std::vector<std::byte> value = GgufBuilder::encode<uint64_t>(uint64_t{1} << 62);
  builder.add_raw("general.name", 8, value);
  expect_rejected(builder.build(), "length 4611686018427387904 of general.name");

  builder = valid_builder();  // huge array count
  value = GgufBuilder::encode<uint32_t>(4);
  append<uint64_t>(value, uint64_t{1} << 61);
  builder.add_raw("tokenizer.ggml.scores", 9, value);
  expect_rejected(builder.build(), "array length for key 'tokenizer.ggml.scores'");

  builder = valid_builder();  // a count that fits 1-byte elements but not 12-byte arrays
  value = GgufBuilder::encode<uint32_t>(9);
  append<uint64_t>(value, 40);
  for (int i = 0; i < 40; ++i) append<uint8_t>(value, 0);
  builder.add_raw("nested", 9, value);
  expect_rejected(builder.build(), "array length for key 'nested'");
}

TEST(Gguf, RejectsBadMetadataValues) {
  GgufBuilder builder = valid_builder();
  builder.add_raw("x", 13, GgufBuilder::encode<uint32_t>(0));
  expect_rejected(builder.build(), "unknown metadata value type 13 for key 'x'");

  builder = valid_builder();
  std::vector<std::byte> value = GgufBuilder::encode<uint32_t>(77);
  append<uint64_t>(value, 1);
  builder.add_raw("x", 9, value);
  expect_rejected(builder.build(), "unknown metadata array element type 77");

  builder = valid_builder();
  builder.add_raw("flag", 7, {std::byte{2}});
  expect_rejected(builder.build(), "bool value 2");

  builder = valid_builder();
  builder.add_u32("llama.block_count", 3);
  expect_rejected(builder.build(), "duplicate metadata key 'llama.block_count'");

  builder = valid_builder();
  builder.add_u32("", 3);
  expect_rejected(builder.build(), "empty metadata key");

  // Arrays nested 17 deep: [[[...[]...]]].
  builder = valid_builder();
  value.clear();
  for (int depth = 0; depth < 17; ++depth) {
    append<uint32_t>(value, 9);
    append<uint64_t>(value, 1);
  }
  append<uint32_t>(value, 4);
  append<uint64_t>(value, 0);
  builder.add_raw("deep", 9, value);
  expect_rejected(builder.build(), "nested deeper than 16");
}

TEST(Gguf, RejectsBadAlignment) {
  for (uint32_t alignment : {0u, 48u, 3u}) {
    GgufBuilder builder;
    builder.add_u32("general.alignment", alignment);
    expect_rejected(builder.build(), concat("general.alignment ", alignment, " is not a power of two"));
  }
  GgufBuilder builder;
  builder.add_raw("general.alignment", 10, GgufBuilder::encode<uint64_t>(64));
  expect_rejected(builder.build(), "general.alignment must be a uint32");

  builder = GgufBuilder();  // a custom alignment moves the data area and the offsets
  builder.add_alignment(256);
  builder.add_f32("a", {3});
  builder.add_f32("b", {5});
  const GgufContents contents = parse_gguf(builder.build(), kBadName);
  EXPECT_EQ(contents.data_area_begin, 256u);
  EXPECT_EQ(contents.tensors[1].offset, 256u);
}

TEST(Gguf, RejectsBadTensorShapes) {
  GgufBuilder builder = valid_builder();
  builder.tensors[1].dims = {4, 0};
  expect_rejected(builder.build(), "tensor b.weight has a zero dimension");

  builder = valid_builder();
  builder.add_tensor("huge", {uint64_t{1} << 32, uint64_t{1} << 32}, 0, 0);
  expect_rejected(builder.build(), "tensor huge has more than 2^63 elements");

  builder = valid_builder();
  builder.add_tensor("five", {1, 1, 1, 1, 1}, 0, 4);
  expect_rejected(builder.build(), "tensor five has 5 dimensions");

  builder = valid_builder();
  builder.add_tensor("q", {48, 2}, static_cast<uint32_t>(GgufTensorType::Q4_0), 6 * 18);
  expect_rejected(builder.build(), "row length 48 of tensor q is not a multiple of the Q4_0 block size 32");

  builder = valid_builder();
  builder.add_f32("", {2});
  expect_rejected(builder.build(), "tensor 2 has an empty name");

  builder = valid_builder();
  builder.add_f32("bad\xff", {2});
  expect_rejected(builder.build(), "tensor 2 name is not valid UTF-8");

  builder = valid_builder();
  builder.add_f32("a.weight", {2});
  expect_rejected(builder.build(), "duplicate tensor name a.weight");
}

TEST(Gguf, RejectsBadTensorPlacement) {
  GgufBuilder builder = valid_builder();
  std::vector<std::byte> bytes = builder.build();
  bytes.pop_back();
  expect_rejected(bytes, "tensor b.weight (offset 64, 32 bytes) extends past the end of the file");

  builder = valid_builder();
  builder.tensors[1].offset = UINT64_MAX - 31;  // aligned, and offset + size would wrap
  expect_rejected(builder.build(), "extends past the end of the file");

  builder = valid_builder();
  builder.tensors[1].offset = 48;
  expect_rejected(builder.build(), "offset 48 of tensor b.weight is not a multiple of the alignment 32");

  builder = valid_builder();
  builder.tensors[1].offset = 32;  // a.weight is 48 bytes at 0
  expect_rejected(builder.build(), "tensors a.weight and b.weight overlap");

  builder = valid_builder();
  builder.tensors[0].offset = 64;  // file order need not be data order, but overlap still counts
  builder.tensors[1].offset = 0;
  builder.tensors[1].dims = {24};
  builder.tensors[1].byte_size = 96;
  expect_rejected(builder.build(), "tensors b.weight and a.weight overlap");
}

// An unknown tensor type keeps the file readable; only reading that tensor fails.
TEST(Gguf, UnknownTensorTypeFailsOnlyWhenRead) {
  GgufBuilder builder = valid_builder();
  builder.add_tensor("mystery", {64}, 99, 0);
  const TemporaryFolder folder;
  const std::filesystem::path path = folder.path() / "unknown_type.gguf";
  const std::vector<std::byte> bytes = builder.build();
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()), bytes.size());

  const GgufFile file = GgufFile::open(path);
  EXPECT_EQ(file.metadata().at("general.architecture"), "llama");
  const GgufTensorInfo* mystery = file.find("mystery");
  ASSERT_NE(mystery, nullptr);
  EXPECT_EQ(mystery->type, 99u);
  EXPECT_EQ(mystery->byte_size, 0u);
  EXPECT_EQ(file.dequantize(*file.find("a.weight")).size(), 12u);
  for (int attempt = 0; attempt < 2; ++attempt) {
    try {
      if (attempt == 0) (void)file.dequantize(*mystery);
      else (void)file.data(*mystery);
      ADD_FAILURE() << "read a tensor of unknown type";
    } catch (const Error& error) {
      const std::string message = error.what();
      EXPECT_NE(message.find("tensor mystery"), std::string::npos) << message;
      EXPECT_NE(message.find("99"), std::string::npos) << message;
      EXPECT_TRUE(message.ends_with(path.string())) << message;
    }
  }
}

// A known type hlwq cannot dequantize (Q2_K): its bytes are located, dequantizing names it.
TEST(Gguf, KnownButUnsupportedTypeHasBytesButDoesNotDequantize) {
  GgufBuilder builder = valid_builder();
  builder.add_tensor("k2", {256, 2}, static_cast<uint32_t>(GgufTensorType::Q2_K), 2 * 84);
  const std::vector<std::byte> bytes = builder.build();
  const GgufContents contents = parse_gguf(bytes, kBadName);
  const GgufTensorInfo& k2 = contents.tensors.back();
  EXPECT_EQ(k2.byte_size, 168u);
  EXPECT_EQ(gguf_tensor_data(contents, k2, bytes, kBadName).size(), 168u);
  try {
    (void)dequantize_gguf_tensor(contents, k2, bytes, kBadName);
    ADD_FAILURE() << "dequantized Q2_K";
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find("tensor k2 of type Q2_K"), std::string::npos) << error.what();
  }
}

TEST(Gguf, OpenNamesMissingFile) {
  try {
    (void)GgufFile::open("/nonexistent/model.gguf");
    ADD_FAILURE() << "opened a missing file";
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find("/nonexistent/model.gguf"), std::string::npos);
  }
}

// ---- The demo model (SmolLM2-135M-Instruct, Q4_1 + Q8_0 + F32). ----

struct DemoTensor {
  std::string_view name;
  GgufTensorType type;
  uint64_t element_count;
  double sum;
  double sum_of_squares;
  std::vector<std::pair<size_t, float>> samples;
};

// From `scripts/make_gguf_fixtures.py --demo models/SmolLM2-135M-Instruct.Q4_1.gguf` (gguf-py
// 0.19 gguf.quants.dequantize; sums in float64).
const std::vector<DemoTensor>& demo_tensors() {
  static const std::vector<DemoTensor> tensors = {
      {"token_embd.weight", GgufTensorType::Q8_0, 28311552, -15353.04449415207, 520415.71544763993,
       {{0, -0x1.b468p-4f}, {1, 0x1.0e28p-5f}, {31, -0x1.9a6ep-3f}, {32, -0x1.7eecp-4f},
        {14155776, -0x1.0388p-5f}, {28311551, -0x1.55ap-5f}}},
      {"blk.0.attn_norm.weight", GgufTensorType::F32, 576, 0.6129436492919922, 0.9180835409024439,
       {{0, 0x1.cap-7f}, {1, 0x1.86p-6f}, {31, -0x1.4ap-6f}, {32, 0x1.f2p-6f}, {288, 0x1.48p-6f},
        {575, -0x1.3ap-5f}}},
      {"blk.0.attn_q.weight", GgufTensorType::Q4_1, 331776, 59.22322082519531, 26749.573275085306,
       {{0, -0x1.8a8p-4f}, {1, 0x1.424p-3f}, {31, -0x1.8a8p-4f}, {32, -0x1.628p-2f},
        {165888, 0x1.6p-3f}, {331775, -0x1.06p-2f}}},
      {"blk.29.ffn_down.weight", GgufTensorType::Q4_1, 884736, 49.83570861816406, 29667.074891592143,
       {{0, -0x1.17ep-2f}, {1, 0x1.7d8p-3f}, {31, -0x1.17ep-2f}, {32, 0x1.b4p-6f},
        {442368, 0x1.154p-5f}, {884735, 0x1.dp-5f}}},
      {"output_norm.weight", GgufTensorType::F32, 576, 1038.33203125, 1921.7355499267578,
       {{0, 0x1.c2p+0f}, {1, 0x1.d2p+0f}, {31, 0x1.d4p+0f}, {32, 0x1.ep+0f}, {288, 0x1.c8p+0f},
        {575, 0x1.fcp+0f}}},
  };
  return tensors;
}

TEST(Gguf, DemoModel) {
  const std::filesystem::path path = demo_gguf_path();
  if (path.empty()) GTEST_SKIP() << "demo model absent (scripts/fetch_demo_model.sh)";
  const GgufFile file = GgufFile::open(path);
  const nlohmann::json& metadata = file.metadata();
  EXPECT_EQ(file.contents().version, 3u);
  EXPECT_EQ(metadata.at("general.architecture"), "llama");
  EXPECT_EQ(metadata.at("llama.block_count"), 30);
  EXPECT_EQ(metadata.at("llama.embedding_length"), 576);
  EXPECT_EQ(metadata.at("llama.attention.head_count_kv"), 3);
  EXPECT_EQ(metadata.at("llama.rope.freq_base").get<double>(), 100000.0);
  EXPECT_EQ(metadata.at("tokenizer.ggml.model"), "gpt2");
  EXPECT_EQ(metadata.at("tokenizer.ggml.tokens").size(), 49152u);
  EXPECT_EQ(file.contents().data_area_begin, 1785664u);
  ASSERT_EQ(file.tensors().size(), 272u);
  std::map<std::string, int> type_counts;
  for (const GgufTensorInfo& tensor : file.tensors()) ++type_counts[gguf_type_name(tensor.type)];
  EXPECT_EQ(type_counts, (std::map<std::string, int>{{"F32", 61}, {"Q4_1", 210}, {"Q8_0", 1}}));

  for (const DemoTensor& wanted : demo_tensors()) {
    SCOPED_TRACE(wanted.name);
    const GgufTensorInfo* tensor = file.find(wanted.name);
    ASSERT_NE(tensor, nullptr);
    EXPECT_EQ(tensor->type, static_cast<uint32_t>(wanted.type));
    const std::vector<float> values = file.dequantize(*tensor);
    ASSERT_EQ(values.size(), wanted.element_count);
    double sum = 0.0, sum_of_squares = 0.0;
    for (float value : values) {
      sum += value;
      sum_of_squares += static_cast<double>(value) * value;
    }
    EXPECT_NEAR(sum, wanted.sum, 1e-9 * (std::abs(wanted.sum) + 1.0));
    EXPECT_NEAR(sum_of_squares, wanted.sum_of_squares, 1e-9 * wanted.sum_of_squares);
    for (const auto& [index, value] : wanted.samples) EXPECT_EQ(values[index], value) << index;
  }
}

// Dequantizing the whole demo model on one core; the time is printed for the report.
TEST(Gguf, DemoModelDequantizesQuickly) {
  const std::filesystem::path path = demo_gguf_path();
  if (path.empty()) GTEST_SKIP() << "demo model absent (scripts/fetch_demo_model.sh)";
  const GgufFile file = GgufFile::open(path);
  const auto start = std::chrono::steady_clock::now();
  uint64_t elements = 0;
  double checksum = 0.0;
  for (const GgufTensorInfo& tensor : file.tensors()) {
    const std::vector<float> values = file.dequantize(tensor);
    elements += values.size();
    checksum += values[values.size() / 3];
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_EQ(elements, 134515008u);
  EXPECT_TRUE(std::isfinite(checksum));
  std::printf("dequantized %llu elements of %zu tensors in %.3f s\n",
              static_cast<unsigned long long>(elements), file.tensors().size(), seconds);
  RecordProperty("dequantize_seconds", std::to_string(seconds));
}

}  // namespace
}  // namespace hlwq
