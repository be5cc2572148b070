// Tests of src/io/safetensors.cc: random round trips of every dtype, the exact bytes the
// writer produces, rejection of every kind of malformed header, and cross-checks against the
// reference Python `safetensors` package.
#include "io/safetensors.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <algorithm>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/file_writer.h"
#include "test_util.h"

namespace hlwq {
namespace {

namespace fs = std::filesystem;

constexpr DType kAllDTypes[] = {DType::F64, DType::F32, DType::F16, DType::BF16, DType::I64,
                                DType::I32, DType::I16, DType::I8,  DType::U64,  DType::U32,
                                DType::U16, DType::U8,  DType::BOOL};
constexpr char kBadFile[] = "bad.safetensors";

uint32_t fresh_seed() {
  const uint32_t seed = std::random_device{}();
  std::printf("random seed %u\n", seed);
  return seed;
}

std::vector<std::byte> random_bytes(size_t count, std::mt19937& generator) {
  std::vector<std::byte> bytes(count);
  for (std::byte& byte : bytes) byte = static_cast<std::byte>(generator() & 0xff);
  return bytes;
}

// Rank 0..4, each dimension 0..5 (zero about one time in six).
std::vector<int64_t> random_shape(std::mt19937& generator) {
  std::vector<int64_t> shape(generator() % 5);
  for (int64_t& dimension : shape) dimension = static_cast<int64_t>(generator() % 6);
  return shape;
}

uint64_t element_product(const std::vector<int64_t>& shape) {
  uint64_t product = 1;
  for (int64_t dimension : shape) product *= static_cast<uint64_t>(dimension);
  return product;
}

// A file laid out by hand: little-endian length, header text, then `data`.
std::vector<std::byte> raw_file(std::string_view header, std::span<const std::byte> data = {}) {
  std::vector<std::byte> bytes(8);
  for (size_t i = 0; i < 8; ++i) bytes[i] = static_cast<std::byte>(header.size() >> (8 * i));
  for (char character : header) bytes.push_back(static_cast<std::byte>(character));
  bytes.insert(bytes.end(), data.begin(), data.end());
  return bytes;
}

std::vector<std::byte> zeros(size_t count) { return std::vector<std::byte>(count); }

std::vector<std::byte> read_file(const fs::path& path) {
  std::ifstream stream(path, std::ios::binary);
  std::vector<char> chars((std::istreambuf_iterator<char>(stream)), std::istreambuf_iterator<char>());
  std::vector<std::byte> bytes(chars.size());
  std::transform(chars.begin(), chars.end(), bytes.begin(),
                 [](char c) { return static_cast<std::byte>(c); });
  return bytes;
}

std::string read_file_text(const fs::path& path) {
  const std::vector<std::byte> bytes = read_file(path);
  return std::string(reinterpret_cast<const char*>(bytes.data()), bytes.size());
}

void write_file(const fs::path& path, std::span<const std::byte> bytes) {
  FileWriter writer(path);
  writer.write(bytes);
  writer.close();
}

// Asserts that parsing throws hlwq::Error with a one-line message naming the file and
// containing `fragment`.
void expect_rejected(std::span<const std::byte> bytes, std::string_view fragment) {
  try {
    parse_safetensors_header(bytes, kBadFile);
    ADD_FAILURE() << "accepted a bad file; expected an error containing: " << fragment;
  } catch (const Error& error) {
    const std::string message = error.what();
    EXPECT_NE(message.find(kBadFile), std::string::npos) << message;
    EXPECT_NE(message.find(fragment), std::string::npos) << message;
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
  }
}

void expect_header_rejected(std::string_view header, std::string_view fragment,
                            size_t data_bytes = 0) {
  SCOPED_TRACE(std::string(header.substr(0, 200)));
  expect_rejected(raw_file(header, zeros(data_bytes)), fragment);
}

struct TensorData {
  TensorDeclaration declaration;
  std::vector<std::byte> bytes;
};

void write_tensors(const fs::path& path, const std::vector<TensorData>& tensors,
                   const std::map<std::string, std::string>& metadata) {
  std::vector<TensorDeclaration> declarations;
  for (const TensorData& tensor : tensors) declarations.push_back(tensor.declaration);
  SafetensorsWriter writer(path, declarations, metadata);
  for (const TensorData& tensor : tensors) writer.write(tensor.declaration.name, tensor.bytes);
  writer.close();
}

void expect_file_holds(const SafetensorsFile& file, const std::vector<TensorData>& tensors) {
  ASSERT_EQ(file.tensors().size(), tensors.size());
  for (const TensorData& tensor : tensors) {
    SCOPED_TRACE(tensor.declaration.name);
    const TensorInfo* info = file.find(tensor.declaration.name);
    ASSERT_NE(info, nullptr);
    EXPECT_EQ(info->dtype, tensor.declaration.dtype);
    EXPECT_EQ(info->shape, tensor.declaration.shape);
    EXPECT_EQ(info->element_count(), element_product(tensor.declaration.shape));
    EXPECT_EQ(info->byte_size(), tensor.bytes.size());
    const auto data = file.data(*info);
    ASSERT_EQ(data.size(), tensor.bytes.size());
    EXPECT_TRUE(std::equal(data.begin(), data.end(), tensor.bytes.begin()));
  }
}

std::vector<TensorData> random_tensors(std::mt19937& generator, std::span<const DType> dtypes,
                                       size_t count) {
  std::vector<TensorData> tensors;
  for (size_t i = 0; i < count; ++i) {
    TensorData tensor;
    tensor.declaration.name = concat("layers.", i, ".weight_", generator() % 1000);
    tensor.declaration.dtype = dtypes[generator() % dtypes.size()];
    tensor.declaration.shape = random_shape(generator);
    tensor.bytes = random_bytes(tensor.declaration.byte_size(), generator);
    tensors.push_back(std::move(tensor));
  }
  return tensors;
}

// A small valid file with metadata and three tensors, as bytes.
std::vector<std::byte> small_valid_file(std::mt19937& generator) {
  TemporaryFolder folder;
  std::vector<TensorData> tensors = {
      {{"embed", DType::BF16, {3, 2}}, random_bytes(12, generator)},
      {{"scale", DType::F32, {}}, random_bytes(4, generator)},
      {{"ids", DType::I64, {2}}, random_bytes(16, generator)},
  };
  write_tensors(folder.path() / "small.safetensors", tensors, {{"format", "pt"}});
  return read_file(folder.path() / "small.safetensors");
}

TEST(Safetensors, RoundTripsEveryDTypeWithScalarsAndEmptyTensors) {
  std::mt19937 generator(fresh_seed());
  TemporaryFolder folder;
  for (DType dtype : kAllDTypes) {
    SCOPED_TRACE(std::string(dtype_name(dtype)));
    std::vector<TensorData> tensors = random_tensors(generator, std::span(&dtype, 1), 3);
    TensorData scalar{{"scalar", dtype, {}}, random_bytes(dtype_size(dtype), generator)};
    TensorData empty{{"empty", dtype, {4, 0, 3}}, {}};
    tensors.insert(tensors.begin() + 1, scalar);
    tensors.push_back(empty);
    const std::map<std::string, std::string> metadata = {
        {"format", "pt"}, {"seed", std::to_string(generator())}};
    const fs::path path = folder.path() / concat(dtype_name(dtype), ".safetensors");
    write_tensors(path, tensors, metadata);
    const SafetensorsFile file = SafetensorsFile::open(path);
    expect_file_holds(file, tensors);
    EXPECT_EQ(file.metadata(), metadata);
    EXPECT_EQ(file.find("absent"), nullptr);
  }
}

TEST(Safetensors, RoundTripsRandomMixedFiles) {
  std::mt19937 generator(fresh_seed());
  TemporaryFolder folder;
  for (int trial = 0; trial < 50; ++trial) {
    SCOPED_TRACE(trial);
    const std::vector<TensorData> tensors =
        random_tensors(generator, kAllDTypes, 1 + generator() % 8);
    const fs::path path = folder.path() / concat(trial, ".safetensors");
    write_tensors(path, tensors, {});
    const SafetensorsFile file = SafetensorsFile::open(path);
    expect_file_holds(file, tensors);
    EXPECT_TRUE(file.metadata().empty());
    // Offsets follow declaration order; tensors() is sorted by offset.
    for (size_t i = 1; i < file.tensors().size(); ++i)
      EXPECT_LE(file.tensors()[i - 1].data_end, file.tensors()[i].data_begin);
  }
}

TEST(Safetensors, WriterProducesTheReferenceLayout) {
  TemporaryFolder folder;
  const fs::path path = folder.path() / "a.safetensors";
  const std::vector<std::byte> a_bytes = {std::byte{1}, std::byte{2}, std::byte{3},
                                          std::byte{4}, std::byte{5}, std::byte{6}};
  const std::vector<std::byte> b_bytes = {std::byte{7}, std::byte{8}};
  write_tensors(path, {{{"b", DType::U8, {2, 3}}, a_bytes}, {{"a", DType::F16, {}}, b_bytes}},
                {{"k", "v"}});
  // Entries in declaration order, offsets back to back, JSON padded with spaces to 8 bytes.
  std::string header =
      R"({"__metadata__":{"k":"v"},"b":{"dtype":"U8","shape":[2,3],"data_offsets":[0,6]},)"
      R"("a":{"dtype":"F16","shape":[],"data_offsets":[6,8]}})";
  header.append((8 - header.size() % 8) % 8, ' ');
  std::vector<std::byte> data = a_bytes;
  data.insert(data.end(), b_bytes.begin(), b_bytes.end());
  EXPECT_EQ(read_file(path), raw_file(header, data));
}

TEST(Safetensors, AcceptsMinimalAndPaddedHeaders) {
  const SafetensorsHeader empty = parse_safetensors_header(raw_file("{}"), kBadFile);
  EXPECT_TRUE(empty.tensors.empty());
  EXPECT_EQ(empty.data_area_begin, 10u);
  const SafetensorsHeader padded = parse_safetensors_header(
      raw_file(R"(  {"x":{"dtype":"I16","shape":[2],"data_offsets":[0,4]}}      )", zeros(4)),
      kBadFile);
  ASSERT_EQ(padded.tensors.size(), 1u);
  EXPECT_EQ(padded.tensors[0].name, "x");
  EXPECT_EQ(padded.tensors[0].shape, std::vector<int64_t>{2});
  // Zero-size tensors may share an offset, also the end of the data area.
  const SafetensorsHeader shared = parse_safetensors_header(
      raw_file(R"({"a":{"dtype":"F32","shape":[0],"data_offsets":[4,4]},)"
               R"("b":{"dtype":"I8","shape":[4],"data_offsets":[0,4]},)"
               R"("c":{"dtype":"U8","shape":[0,7],"data_offsets":[4,4]}})",
               zeros(4)),
      kBadFile);
  ASSERT_EQ(shared.tensors.size(), 3u);
  EXPECT_EQ(shared.tensors[0].name, "b");
  EXPECT_EQ(shared.tensors[2].element_count(), 0u);
}

TEST(Safetensors, RejectsEveryTruncationAndTrailingBytes) {
  std::mt19937 generator(fresh_seed());
  const std::vector<std::byte> valid = small_valid_file(generator);
  EXPECT_NO_THROW(parse_safetensors_header(valid, kBadFile));
  for (size_t length = 0; length < valid.size(); ++length) {
    SCOPED_TRACE(length);
    expect_rejected(std::span(valid).first(length), "");
  }
  std::vector<std::byte> longer = valid;
  longer.push_back(std::byte{0});
  expect_rejected(longer, "1 bytes after the last tensor");
}

TEST(Safetensors, RejectsBadHeaderLengths) {
  expect_rejected(zeros(7), "too short");
  std::vector<std::byte> past_end = raw_file("{}    ");
  past_end[0] = std::byte{15};
  expect_rejected(past_end, "past the end");
  std::vector<std::byte> huge = raw_file("{}");
  for (size_t i = 0; i < 8; ++i) huge[i] = std::byte{0xff};
  expect_rejected(huge, "exceeds the limit");
  std::vector<std::byte> just_over = raw_file("{}");
  const uint64_t over = 100'000'001;
  for (size_t i = 0; i < 8; ++i) just_over[i] = static_cast<std::byte>(over >> (8 * i));
  expect_rejected(just_over, "exceeds the limit");
}

TEST(Safetensors, RejectsInvalidJson) {
  expect_header_rejected(R"({"a":)", "not valid JSON");
  expect_header_rejected("safetensors", "not valid JSON");
  expect_header_rejected(std::string_view("{}\0\0", 4), "not valid JSON");  // NUL padding
  expect_header_rejected("{\"\xff\xfe\":1}", "not valid JSON");            // not UTF-8
  expect_header_rejected("", "not valid JSON");
}

TEST(Safetensors, RejectsNonObjectJson) {
  for (const char* header : {"[]", "\"text\"", "42", "null", "true"})
    expect_header_rejected(header, "not an object");
}

TEST(Safetensors, RejectsUnknownDType) {
  expect_header_rejected(R"({"w":{"dtype":"F8_E4M3","shape":[4],"data_offsets":[0,4]}})",
                         R"(unknown dtype "F8_E4M3" of tensor "w")", 4);
  expect_header_rejected(R"({"w":{"dtype":7,"shape":[4],"data_offsets":[0,4]}})",
                         "dtype of tensor \"w\" is not a string", 4);
}

TEST(Safetensors, RejectsShapeSizeMismatch) {
  expect_header_rejected(R"({"w":{"dtype":"F32","shape":[2,3],"data_offsets":[0,20]}})",
                         "tensor \"w\" has 20 bytes but its shape and dtype need 24", 20);
  expect_header_rejected(R"({"w":{"dtype":"BF16","shape":[],"data_offsets":[0,4]}})",
                         "need 2", 4);
}

TEST(Safetensors, RejectsBadOffsets) {
  expect_header_rejected(R"({"w":{"dtype":"U8","shape":[4],"data_offsets":[0,4]}})",
                         "past the data area", 3);
  expect_header_rejected(R"({"w":{"dtype":"U8","shape":[0],"data_offsets":[4,0]}})",
                         "end before they begin", 4);
  expect_header_rejected(R"({"w":{"dtype":"U8","shape":[4],"data_offsets":[0]}})",
                         "not a pair", 4);
  expect_header_rejected(R"({"w":{"dtype":"U8","shape":[4],"data_offsets":[-1,3]}})",
                         "not a pair", 4);
  expect_header_rejected(R"({"w":{"dtype":"U8","shape":[4],"data_offsets":[0,4.0]}})",
                         "not a pair", 4);
  expect_header_rejected(
      R"({"w":{"dtype":"U8","shape":[1],"data_offsets":[0,18446744073709551615]}})",
      "past the data area", 4);
}

TEST(Safetensors, RejectsOverlapsAndHoles) {
  expect_header_rejected(R"({"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},)"
                         R"("b":{"dtype":"U8","shape":[4],"data_offsets":[2,6]}})",
                         R"(data of tensor "b" overlaps tensor "a")", 6);
  expect_header_rejected(R"({"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},)"
                         R"("b":{"dtype":"U8","shape":[4],"data_offsets":[0,4]}})",
                         "overlaps", 4);
  expect_header_rejected(R"({"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},)"
                         R"("b":{"dtype":"U8","shape":[0],"data_offsets":[2,2]}})",
                         "overlaps", 4);
  expect_header_rejected(R"({"a":{"dtype":"U8","shape":[4],"data_offsets":[2,6]}})",
                         "unused bytes 0..2 before tensor \"a\"", 6);
  expect_header_rejected(R"({"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]}})",
                         "4 bytes after the last tensor", 8);
}

TEST(Safetensors, RejectsBadShapes) {
  const std::string before = R"({"w":{"dtype":"U8","shape":)";
  const std::string after = R"(,"data_offsets":[0,0]}})";
  for (const char* shape : {"[-1]", "[1.5]", "[\"2\"]", "[null]", "[1e30]", "[true]",
                            "[9223372036854775808,0]", "[[1]]", "[{}]"}) {
    SCOPED_TRACE(shape);
    expect_rejected(raw_file(before + shape + after), "\"w\"");
  }
  expect_header_rejected(before + "[0,1,1,1,1,1,1,1,1]" + after, "more than 8 elements");
  expect_header_rejected(before + "\"0\"" + after, "not an array");
  // 2^32 * 2^32 overflows 64 bits even though a 0-byte size would match.
  expect_header_rejected(before + "[4294967296,4294967296]" + after, "overflows 64 bits");
  // A zero dimension makes huge dimensions harmless.
  EXPECT_NO_THROW(parse_safetensors_header(
      raw_file(before + "[0,9223372036854775807,9223372036854775807]" + after), kBadFile));
}

TEST(Safetensors, RejectsBadMetadata) {
  expect_header_rejected(R"({"__metadata__":{"format":1}})",
                         "__metadata__ value of \"format\" is not a string");
  expect_header_rejected(R"({"__metadata__":["a"]})", "__metadata__ is not an object");
  expect_header_rejected(R"({"__metadata__":null})", "__metadata__ is not an object");
  expect_header_rejected(R"({"__metadata__":{"a":{"b":"c"}}})", "not a string");
  const SafetensorsHeader good =
      parse_safetensors_header(raw_file(R"({"__metadata__":{"a":"1","b":""}})"), kBadFile);
  EXPECT_EQ(good.metadata, (std::map<std::string, std::string>{{"a", "1"}, {"b", ""}}));
}

TEST(Safetensors, RejectsMalformedEntries) {
  expect_header_rejected(R"({"w":[1,2]})", "entry of tensor \"w\" is not an object");
  expect_header_rejected(R"({"w":{"dtype":"U8","shape":[0]}})", "has no \"data_offsets\"");
  expect_header_rejected(
      R"({"w":{"dtype":"U8","shape":[0],"data_offsets":[0,0],"offsets":[0,0]}})",
      "unexpected key \"offsets\" in tensor \"w\"");
  expect_header_rejected(R"({"w":{"dtype":"U8","shape":[0],"data_offsets":[0,0]},)"
                         R"("w":{"dtype":"U8","shape":[0],"data_offsets":[0,0]}})",
                         "duplicate entry \"w\"");
}

TEST(Safetensors, RejectsDeepNestingWithoutCrashing) {
  const std::string deep_open(1'000'000, '[');
  expect_header_rejected(deep_open, "");
  expect_header_rejected(deep_open + std::string(1'000'000, ']'), "");
  expect_header_rejected(R"({"w":{"shape":)" + std::string(100'000, '[') +
                             std::string(100'000, ']') + "}}",
                         "nested deeper than the format allows in entry \"w\"");
  expect_header_rejected(R"({"__metadata__":{"k":[1,2,3,4,5,6,7,8,9,10]}})",
                         R"("k" of entry "__metadata__" has more than 8 elements)");
}

TEST(Safetensors, HostileNamesKeepMessagesOnOneLine) {
  const std::string long_name(10'000, 'n');
  try {
    parse_safetensors_header(
        raw_file(R"({"a\nb":{"dtype":"X","shape":[],"data_offsets":[0,0]}})"), kBadFile);
    ADD_FAILURE() << "accepted an unknown dtype";
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find(R"("a\x0ab")"), std::string::npos) << error.what();
  }
  try {
    parse_safetensors_header(
        raw_file(R"({")" + long_name + R"(":{"dtype":"X","shape":[],"data_offsets":[0,0]}})"),
        kBadFile);
    ADD_FAILURE() << "accepted an unknown dtype";
  } catch (const Error& error) {
    EXPECT_LT(std::string(error.what()).size(), 400u);
  }
}

TEST(Safetensors, OpenNamesTheFileInErrors) {
  TemporaryFolder folder;
  std::mt19937 generator(fresh_seed());
  const fs::path missing = folder.path() / "missing.safetensors";
  EXPECT_THROW(SafetensorsFile::open(missing), Error);
  std::vector<std::byte> truncated = small_valid_file(generator);
  truncated.pop_back();
  const fs::path path = folder.path() / "truncated.safetensors";
  write_file(path, truncated);
  try {
    SafetensorsFile::open(path);
    ADD_FAILURE() << "opened a truncated file";
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find(path.string()), std::string::npos) << error.what();
  }
}

// Asserts that `action` throws hlwq::Error whose message contains `fragment`.
template <class Action>
void expect_error(Action action, std::string_view fragment) {
  try {
    action();
    ADD_FAILURE() << "no error; expected one containing: " << fragment;
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find(fragment), std::string::npos) << error.what();
  }
}

TEST(SafetensorsWriter, RejectsMisuse) {
  TemporaryFolder folder;
  const fs::path path = folder.path() / "w.safetensors";
  const std::vector<TensorDeclaration> declarations = {{"a", DType::F32, {2}},
                                                       {"b", DType::U8, {3}}};
  const std::vector<std::byte> eight(8), three(3), two(2);
  expect_error([&] {
    SafetensorsWriter writer(path, declarations, {});
    writer.write("b", three);
  }, "tensor \"b\" written out of order (expected \"a\")");
  expect_error([&] {
    SafetensorsWriter writer(path, declarations, {});
    writer.write("a", three);
  }, "tensor \"a\" has 3 bytes, its declaration needs 8");
  expect_error([&] {
    SafetensorsWriter writer(path, declarations, {});
    writer.write("a", eight);
    writer.close();
  }, "tensor \"b\" declared but never written, " + path.string());
  expect_error([&] {
    SafetensorsWriter writer(path, declarations, {});
    writer.write("a", eight);
    writer.write("b", three);
    writer.write("b", three);
  }, "written after all declared tensors");
  expect_error([&] {
    SafetensorsWriter writer(path, {{"a", DType::U8, {1}}, {"a", DType::U8, {1}}}, {});
  }, "declared twice");
  expect_error([&] { SafetensorsWriter writer(path, {{"__metadata__", DType::U8, {1}}}, {}); },
               "__metadata__");
  expect_error([&] { SafetensorsWriter writer(path, {{"a", DType::U8, {2, -1}}}, {}); },
               "negative dimension");
  expect_error([&] {
    SafetensorsWriter writer(path, {{"a", DType::U8, {1, 1, 1, 1, 1, 1, 1, 1, 1}}}, {});
  }, "more than 8 dimensions");
  expect_error([&] { SafetensorsWriter writer(path, {{"bad\xff", DType::U8, {1}}}, {}); },
               "not valid UTF-8");
  expect_error([&] {
    SafetensorsWriter writer(folder.path() / "no" / "such" / "folder.safetensors", {}, {});
  }, "cannot create file");
  // A partly written file is never mistaken for a valid one.
  {
    SafetensorsWriter writer(path, declarations, {});
    writer.write("a", eight);
  }
  EXPECT_THROW(SafetensorsFile::open(path), Error);
}

TEST(SafetensorsWriter, FullDiskIsAnError) {
  if (!fs::exists("/dev/full")) GTEST_SKIP() << "/dev/full not available";
  const std::vector<std::byte> block(1 << 20, std::byte{1});
  expect_error([&] {
    SafetensorsWriter writer("/dev/full", {{"a", DType::U8, {1 << 20}}}, {});
    writer.write("a", block);
    writer.close();
  }, "/dev/full");
}

// ---- Cross-checks against the reference implementation (the Python package). ----


CommandResult run_python(const fs::path& script, const fs::path& folder) {
  CommandResult result;
  const std::string command = "python3 '" + script.string() + "' '" + folder.string() + "' 2>&1";
  std::FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) return result;
  char buffer[4096];
  size_t got;
  while ((got = std::fread(buffer, 1, sizeof buffer, pipe)) > 0) result.output.append(buffer, got);
  const int status = ::pclose(pipe);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

// Writes from_python.safetensors with the reference writer (numpy arrays through
// safetensors.numpy, BF16 through the raw TensorSpec API since numpy lacks it), plus each
// tensor's raw bytes in NAME.bin and a manifest of dtypes and shapes.
constexpr char kPythonWriter[] = R"PY(
import json, os, sys
import numpy as np
from safetensors import TensorSpec, serialize_file
from safetensors.numpy import save_file
folder = sys.argv[1]
rng = np.random.default_rng()
types = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "I64": np.int64,
         "I32": np.int32, "I16": np.int16, "I8": np.int8, "U64": np.uint64,
         "U32": np.uint32, "U16": np.uint16, "U8": np.uint8, "BOOL": np.bool_}
tensors, manifest = {}, {}
for i, (name, numpy_type) in enumerate(types.items()):
    shape = tuple(int(d) for d in rng.integers(0, 5, size=i % 4))
    raw = rng.integers(0, 256, size=int(np.prod(shape)) * np.dtype(numpy_type).itemsize,
                       dtype=np.uint8)
    array = raw.view(numpy_type).reshape(shape) if numpy_type != np.bool_ else \
        (raw % 2).astype(np.bool_).reshape(shape)
    tensors["t_" + name] = array
    manifest["t_" + name] = {"dtype": name, "shape": list(shape)}
    array.tofile(os.path.join(folder, "t_" + name + ".bin"))
save_file(tensors, os.path.join(folder, "numpy.safetensors"), metadata={"writer": "numpy"})
bf16 = rng.integers(0, 65536, size=(3, 5), dtype=np.uint16)
bf16.tofile(os.path.join(folder, "t_BF16.bin"))
serialize_file({"t_BF16": TensorSpec(dtype="bfloat16", shape=(3, 5), data_ptr=bf16.ctypes.data,
                                     data_len=bf16.nbytes)},
               os.path.join(folder, "bf16.safetensors"), metadata=None)
manifest["t_BF16"] = {"dtype": "BF16", "shape": [3, 5]}
json.dump(manifest, open(os.path.join(folder, "manifest.json"), "w"))
print("WROTE")
)PY";

// Loads from_cpp.safetensors with the reference reader and compares with NAME.bin files.
constexpr char kPythonReader[] = R"PY(
import json, os, sys
import numpy as np
import safetensors
from safetensors import safe_open
folder = sys.argv[1]
path = os.path.join(folder, "from_cpp.safetensors")
manifest = json.load(open(os.path.join(folder, "manifest.json")))
raw = dict(safetensors.deserialize(open(path, "rb").read()))
assert sorted(raw) == sorted(manifest), (sorted(raw), sorted(manifest))
for name, entry in manifest.items():
    expected = open(os.path.join(folder, name + ".bin"), "rb").read()
    assert raw[name]["dtype"] == entry["dtype"], (name, raw[name]["dtype"])
    assert list(raw[name]["shape"]) == entry["shape"], (name, raw[name]["shape"])
    assert bytes(raw[name]["data"]) == expected, name
with safe_open(path, framework="np") as f:  # numpy views of every dtype numpy has
    assert f.metadata() == {"writer": "hlwq", "note": "x"}, f.metadata()
    for name, entry in manifest.items():
        if entry["dtype"] == "BF16":
            continue
        array = f.get_tensor(name)
        assert list(array.shape) == entry["shape"], name
        assert array.tobytes() == open(os.path.join(folder, name + ".bin"), "rb").read(), name
print("READ OK", len(manifest))
)PY";

TEST(SafetensorsCrossCheck, ReadsFilesThePythonPackageWrites) {
  if (!python_has("numpy, safetensors")) GTEST_SKIP() << "python3 with numpy and safetensors missing";
  TemporaryFolder folder;
  write_text_file(folder.path() / "writer.py", kPythonWriter);
  const CommandResult result = run_python(folder.path() / "writer.py", folder.path());
  ASSERT_EQ(result.exit_code, 0) << result.output;
  const nlohmann::json manifest =
      nlohmann::json::parse(read_file_text(folder.path() / "manifest.json"));
  const SafetensorsFile numpy_file = SafetensorsFile::open(folder.path() / "numpy.safetensors");
  const SafetensorsFile bf16_file = SafetensorsFile::open(folder.path() / "bf16.safetensors");
  EXPECT_EQ(numpy_file.metadata().at("writer"), "numpy");
  EXPECT_EQ(numpy_file.tensors().size() + bf16_file.tensors().size(), manifest.size());
  for (const auto& [name, entry] : manifest.items()) {
    SCOPED_TRACE(name);
    const SafetensorsFile& file = name == "t_BF16" ? bf16_file : numpy_file;
    const TensorInfo* info = file.find(name);
    ASSERT_NE(info, nullptr);
    EXPECT_EQ(dtype_name(info->dtype), entry["dtype"].get<std::string>());
    EXPECT_EQ(info->shape, entry["shape"].get<std::vector<int64_t>>());
    const std::vector<std::byte> expected = read_file(folder.path() / (name + ".bin"));
    const auto data = file.data(*info);
    ASSERT_EQ(data.size(), expected.size());
    EXPECT_TRUE(std::equal(data.begin(), data.end(), expected.begin()));
  }
}

TEST(SafetensorsCrossCheck, PythonPackageReadsWhatWeWrite) {
  if (!python_has("numpy, safetensors")) GTEST_SKIP() << "python3 with numpy and safetensors missing";
  std::mt19937 generator(fresh_seed());
  TemporaryFolder folder;
  std::vector<TensorData> tensors;
  nlohmann::json manifest = nlohmann::json::object();
  for (DType dtype : kAllDTypes) {
    TensorData tensor;
    tensor.declaration = {concat("t_", dtype_name(dtype)), dtype, random_shape(generator)};
    tensor.bytes = random_bytes(tensor.declaration.byte_size(), generator);
    if (dtype == DType::BOOL) {  // numpy only accepts 0 and 1 as booleans
      for (std::byte& byte : tensor.bytes) byte &= std::byte{1};
    }
    write_file(folder.path() / (tensor.declaration.name + ".bin"), tensor.bytes);
    manifest[tensor.declaration.name] = {{"dtype", dtype_name(dtype)},
                                         {"shape", tensor.declaration.shape}};
    tensors.push_back(std::move(tensor));
  }
  tensors.push_back({{"t_scalar", DType::F32, {}}, random_bytes(4, generator)});
  write_file(folder.path() / "t_scalar.bin", tensors.back().bytes);
  manifest["t_scalar"] = {{"dtype", "F32"}, {"shape", nlohmann::json::array()}};
  write_text_file(folder.path() / "manifest.json", manifest.dump());
  write_tensors(folder.path() / "from_cpp.safetensors", tensors,
                {{"writer", "hlwq"}, {"note", "x"}});
  write_text_file(folder.path() / "reader.py", kPythonReader);
  const CommandResult result = run_python(folder.path() / "reader.py", folder.path());
  EXPECT_EQ(result.exit_code, 0) << result.output;
  EXPECT_NE(result.output.find("READ OK 14"), std::string::npos) << result.output;
}

}  // namespace
}  // namespace hlwq
